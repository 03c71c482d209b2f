/* tf_lut_s8 - see the header for the layout and the formula. */
#include "tf_lut_s8.h"

void tf_lut_s8(const int8_t *input, const int8_t *table, int32_t size, int8_t *output)
{
    const int8_t *center = table + 128;
    int32_t i = 0;
    for (; i + 4 <= size; i += 4) {
        const int8_t a = center[input[i]], b = center[input[i + 1]];
        const int8_t c = center[input[i + 2]], d = center[input[i + 3]];
        output[i] = a;
        output[i + 1] = b;
        output[i + 2] = c;
        output[i + 3] = d;
    }
    for (; i < size; i++) {
        output[i] = center[input[i]];
    }
}
