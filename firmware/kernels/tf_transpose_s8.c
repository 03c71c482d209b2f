/* tf_transpose_s8 - see the header for the layouts. */
#include "tf_transpose_s8.h"

#include <string.h>

void tf_transpose_s8(const int8_t *input, const int32_t shape[4], const int32_t perm[4],
                     int32_t inner, int8_t *output)
{
    /* Input strides (in blocks) seen in output order, so the output is written linearly. */
    int32_t in_stride[4], s[4], n[4];
    in_stride[3] = inner;
    for (int32_t i = 2; i >= 0; i--) {
        in_stride[i] = in_stride[i + 1] * shape[i + 1];
    }
    for (int32_t i = 0; i < 4; i++) {
        s[i] = in_stride[perm[i]];
        n[i] = shape[perm[i]];
    }
    for (int32_t i0 = 0; i0 < n[0]; i0++) {
        for (int32_t i1 = 0; i1 < n[1]; i1++) {
            for (int32_t i2 = 0; i2 < n[2]; i2++) {
                const int8_t *src = input + i0 * s[0] + i1 * s[1] + i2 * s[2];
                for (int32_t i3 = 0; i3 < n[3]; i3++) {
                    memcpy(output, src, (size_t)inner);
                    output += inner;
                    src += s[3];
                }
            }
        }
    }
}
