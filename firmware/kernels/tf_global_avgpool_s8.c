/* tf_global_avgpool_s8 - see the header for shapes, layouts and the formula. */
#include "tf_global_avgpool_s8.h"

#include "tf_avgpool_s8.h"
#include "tf_math.h"

void tf_global_avgpool_s8(const int8_t *input, int32_t rows, int32_t channels, int32_t act_min,
                          int32_t act_max, int8_t *output)
{
    int32_t c = 0;
    for (; c + 4 <= channels; c += 4) {
        int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        const int8_t *p = input + c;
        for (int32_t r = 0; r < rows; r++, p += channels) {
            s0 += p[0];
            s1 += p[1];
            s2 += p[2];
            s3 += p[3];
        }
        output[c] = (int8_t)tf_clamp(tf_round_div(s0, rows), act_min, act_max);
        output[c + 1] = (int8_t)tf_clamp(tf_round_div(s1, rows), act_min, act_max);
        output[c + 2] = (int8_t)tf_clamp(tf_round_div(s2, rows), act_min, act_max);
        output[c + 3] = (int8_t)tf_clamp(tf_round_div(s3, rows), act_min, act_max);
    }
    for (; c < channels; c++) {
        int32_t s = 0;
        for (int32_t r = 0; r < rows; r++) {
            s += input[r * channels + c];
        }
        output[c] = (int8_t)tf_clamp(tf_round_div(s, rows), act_min, act_max);
    }
}
