/* tf_mean_s8 - see the header for shapes, layouts and the formula. */
#include "tf_mean_s8.h"

#include "tf_dsp.h"
#include "tf_math.h"

void tf_mean_s8(const int8_t *input, int32_t pixels, int32_t channels, int32_t input_zp,
                int32_t output_zp, int32_t multiplier, int32_t shift, int8_t *output)
{
    for (int32_t c = 0; c < channels; c++) {
        const int8_t *x = input + c;
        int32_t sum = 0;
        for (int32_t p = 0; p < pixels; p++, x += channels) {
            sum += *x;
        }
        /* sum of (x - zp) = sum - pixels * zp: one multiply instead of one subtract a pixel */
        const int32_t acc = tf_requantize(sum - pixels * input_zp, multiplier, shift);
        output[c] = (int8_t)tf_sat_s8(acc + output_zp);
    }
}
