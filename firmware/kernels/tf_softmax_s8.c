/* tf_softmax_s8 - see the header for shapes, layouts and the formula. */
#include "tf_softmax_s8.h"

#include "tf_dsp.h"
#include "tf_math.h"

static int32_t row_max(const int8_t *x, int32_t n)
{
    uint32_t lanes = 0x80808080u; /* four running maxima, -128 each */
    int32_t i = 0;
    for (; i + 4 <= n; i += 4) {
        lanes = tf_max_s8x4(tf_read_u32(x + i), lanes);
    }
    int32_t m = -128;
    for (int32_t s = 0; s < 32; s += 8) {
        const int32_t v = (int8_t)(lanes >> s);
        m = v > m ? v : m;
    }
    for (; i < n; i++) {
        m = x[i] > m ? x[i] : m;
    }
    return m;
}

void tf_softmax_s8(const int8_t *input, const int32_t *exp_table, int32_t rows, int32_t n,
                   int8_t *output)
{
    for (int32_t row = 0; row < rows; row++) {
        const int8_t *x = input + row * n;
        int8_t *out = output + row * n;
        /* EXP[m - x] = base[-x] with the row maximum folded into the base. */
        const int32_t *base = exp_table + row_max(x, n);
        uint32_t sum = 0;
        int32_t i = 0;
        for (; i + 4 <= n; i += 4) {
            sum += (uint32_t)base[-x[i]] + (uint32_t)base[-x[i + 1]] + (uint32_t)base[-x[i + 2]] +
                   (uint32_t)base[-x[i + 3]];
        }
        for (; i < n; i++) {
            sum += (uint32_t)base[-x[i]];
        }
        const int32_t bits = 32 - __builtin_clz(sum); /* sum >= EXP[0] >= 1 */
        const int32_t recip = (int32_t)(((((uint64_t)1) << (30 + bits)) - 1) / sum);
        if (bits >= 11) {
            /* tf_requantize(e, recip, 9 - bits) shifts the product right by 21 + bits >= 32:
             * the same as rounding the high word right by k + 1, k = bits - 11 (exact), and
             * the -128 folds into the rounding term as -128 << (k + 1). */
            const int32_t k = bits - 11, round = (1 << k) - (128 << (k + 1));
            for (i = 0; i < n; i++) {
                const int32_t hi = (int32_t)(((int64_t)base[-x[i]] * recip) >> 32);
                out[i] = (int8_t)tf_sat_s8((hi + round) >> (k + 1));
            }
        } else {
            for (i = 0; i < n; i++) {
                out[i] = (int8_t)tf_sat_s8(tf_requantize(base[-x[i]], recip, 9 - bits) - 128);
            }
        }
    }
}
