/* tf_add_s8 - see the header for shapes, layouts and the formula. */
#include "tf_add_s8.h"

#include "tf_math.h"

void tf_add_s8(const int8_t *input1, const int8_t *input2, int32_t n, int32_t input1_zp,
               int32_t input1_multiplier, int32_t input1_shift, int32_t input2_zp,
               int32_t input2_multiplier, int32_t input2_shift, int32_t output_zp,
               int32_t output_multiplier, int32_t output_shift, int32_t act_min,
               int32_t act_max, int32_t left_shift, int8_t *output)
{
    /* A multiply, not <<: left-shifting a negative value is undefined in C. */
    const int32_t scale = (int32_t)1 << left_shift;
    for (int32_t i = 0; i < n; i++) {
        const int32_t a = tf_requantize((input1[i] - input1_zp) * scale, input1_multiplier,
                                        input1_shift);
        const int32_t b = tf_requantize((input2[i] - input2_zp) * scale, input2_multiplier,
                                        input2_shift);
        const int32_t sum = tf_requantize(a + b, output_multiplier, output_shift);
        output[i] = (int8_t)tf_clamp(sum + output_zp, act_min, act_max);
    }
}
