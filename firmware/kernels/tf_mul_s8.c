/* tf_mul_s8 - see the header for the layout and the formula. */
#include "tf_mul_s8.h"

#include "tf_math.h"

void tf_mul_s8(const int8_t *input1, const int32_t s1[4], const int8_t *input2,
               const int32_t s2[4], const int32_t dims[4], int32_t input1_zp, int32_t input2_zp,
               int32_t output_zp, int32_t multiplier, int32_t shift, int32_t act_min,
               int32_t act_max, int8_t *output)
{
    for (int32_t i0 = 0; i0 < dims[0]; i0++) {
        for (int32_t i1 = 0; i1 < dims[1]; i1++) {
            for (int32_t i2 = 0; i2 < dims[2]; i2++) {
                const int8_t *a = input1 + i0 * s1[0] + i1 * s1[1] + i2 * s1[2];
                const int8_t *b = input2 + i0 * s2[0] + i1 * s2[1] + i2 * s2[2];
                for (int32_t i3 = 0; i3 < dims[3]; i3++) {
                    const int32_t p = (a[i3 * s1[3]] - input1_zp) * (b[i3 * s2[3]] - input2_zp);
                    const int32_t r = tf_requantize(p, multiplier, shift) + output_zp;
                    *output++ = (int8_t)tf_clamp(r, act_min, act_max);
                }
            }
        }
    }
}
