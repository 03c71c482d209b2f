/* tf_add_s8 - see the header for shapes, layouts and the formula. */
#include "tf_add_s8.h"

#include "tf_math.h"

/* tf_requantize(x, mult, shift) for shift <= 0, bit for bit, without a 64-bit shift: the
 * rounding shift s = 30 - shift is then >= 30, and floor(p / 2^s) is taken from SMULL's two
 * words (for s < 32 the result fits 32 bits since |p| < 2^62 / 2^2, here |x| < 2^29). */
static inline int32_t requantize_right(int32_t x, int32_t mult, int32_t shift)
{
    const int64_t p = (int64_t)x * mult;
    const int32_t hi = (int32_t)(p >> 32);
    const uint32_t lo = (uint32_t)p;
    const int32_t s = 30 - shift;
    const int32_t q = s >= 32 ? hi >> (s - 32) : (int32_t)(((uint32_t)hi << (32 - s)) | (lo >> s));
    return (q + 1) >> 1;
}

void tf_add_s8(const int8_t *input1, const int8_t *input2, int32_t n, int32_t input1_zp,
               int32_t input1_multiplier, int32_t input1_shift, int32_t input2_zp,
               int32_t input2_multiplier, int32_t input2_shift, int32_t output_zp,
               int32_t output_multiplier, int32_t output_shift, int32_t act_min,
               int32_t act_max, int32_t left_shift, int8_t *output)
{
    /* A multiply, not <<: left-shifting a negative value is undefined in C. */
    const int32_t scale = (int32_t)1 << left_shift;
    if (input1_shift > 0 || input2_shift > 0 || output_shift > 0) { /* not from add_params */
        for (int32_t i = 0; i < n; i++) {
            const int32_t a = tf_requantize((input1[i] - input1_zp) * scale, input1_multiplier,
                                            input1_shift);
            const int32_t b = tf_requantize((input2[i] - input2_zp) * scale, input2_multiplier,
                                            input2_shift);
            const int32_t sum = tf_requantize(a + b, output_multiplier, output_shift);
            output[i] = (int8_t)tf_clamp(sum + output_zp, act_min, act_max);
        }
        return;
    }
    for (int32_t i = 0; i < n; i++) {
        const int32_t a = requantize_right((input1[i] - input1_zp) * scale, input1_multiplier,
                                           input1_shift);
        const int32_t b = requantize_right((input2[i] - input2_zp) * scale, input2_multiplier,
                                           input2_shift);
        const int32_t sum = requantize_right(a + b, output_multiplier, output_shift);
        output[i] = (int8_t)tf_clamp(sum + output_zp, act_min, act_max);
    }
}
