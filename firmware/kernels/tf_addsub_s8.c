/* tf_addsub_s8 - see the header for the layout and the formula. */
#include "tf_addsub_s8.h"

#include "tf_math.h"

void tf_addsub_s8(const int8_t *input1, const int32_t s1[4], const int8_t *input2,
                  const int32_t s2[4], const int32_t dims[4], int32_t input1_zp,
                  int32_t input1_multiplier, int32_t input1_shift, int32_t input2_zp,
                  int32_t input2_multiplier, int32_t input2_shift, int32_t output_zp,
                  int32_t output_multiplier, int32_t output_shift, int32_t act_min,
                  int32_t act_max, int32_t left_shift, int32_t mode,
                  int8_t *output)
{
    for (int32_t i0 = 0; i0 < dims[0]; i0++) {
        for (int32_t i1 = 0; i1 < dims[1]; i1++) {
            for (int32_t i2 = 0; i2 < dims[2]; i2++) {
                   const int8_t *a = input1 + i0 * s1[0] + i1 * s1[1] + i2 * s1[2];
                   const int8_t *b = input2 + i0 * s2[0] + i1 * s2[1] + i2 * s2[2];
                   for (int32_t i3 = 0; i3 < dims[3]; i3++) {
                       const int32_t x = tf_requantize((a[i3 * s1[3]] - input1_zp) * (1 << left_shift),
                                                       input1_multiplier, input1_shift);
                       const int32_t y = tf_requantize((b[i3 * s2[3]] - input2_zp) * (1 << left_shift),
                                                       input2_multiplier, input2_shift);
                       const int32_t d = x - y; /* |d| < 2^15 for SQUARED_DIFFERENCE's shift 7 */
                    const int32_t r = tf_requantize(mode == 2 ? d * d : (mode ? d : x + y), output_multiplier, output_shift);
                       *output++ = (int8_t)tf_clamp(r + output_zp, act_min, act_max);
                   }
            }
        }
    }
}
