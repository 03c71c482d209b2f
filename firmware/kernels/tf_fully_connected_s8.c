/* tf_fully_connected_s8 - see the header for shapes, layouts and the formula. */
#include "tf_fully_connected_s8.h"

#include "tf_dsp.h"
#include "tf_math.h"

static inline int8_t finish(int32_t acc, int32_t mult, int32_t shift, int32_t zp, int32_t lo,
                            int32_t hi)
{
    return (int8_t)tf_clamp(tf_requantize(acc, mult, shift) + zp, lo, hi);
}

/* One token x one row: used for the odd token and odd row left over by the 2x2 tiles. */
static int32_t dot_1x1(const int8_t *x, const int8_t *w, int32_t k, int32_t acc)
{
    int32_t i = 0;
    for (; i + 4 <= k; i += 4) {
        const uint32_t a = tf_read_u32(x + i), b = tf_read_u32(w + i);
        acc = tf_smlad(tf_sxtb16(a), tf_sxtb16(b), acc);
        acc = tf_smlad(tf_sxtb16_ror8(a), tf_sxtb16_ror8(b), acc);
    }
    for (; i < k; i++) {
        acc += (int32_t)x[i] * (int32_t)w[i];
    }
    return acc;
}

void tf_fully_connected_s8(const int8_t *input, const int8_t *weights, const int32_t *bias,
                           const int32_t *multiplier, const int32_t *shift, int32_t output_zp,
                           int32_t act_min, int32_t act_max, int32_t n, int32_t k, int32_t m,
                           int8_t *output)
{
    int32_t t = 0;
    /* 2 tokens x 2 rows per tile: every weight word loaded feeds two tokens and every
     * input word two rows, halving loads per MAC versus a token-at-a-time loop. */
    for (; t + 2 <= n; t += 2) {
        const int8_t *x0 = input + t * k, *x1 = x0 + k;
        int8_t *o0 = output + t * m, *o1 = o0 + m;
        int32_t j = 0;
        for (; j + 2 <= m; j += 2) {
            const int8_t *w0 = weights + j * k, *w1 = w0 + k;
            int32_t a00 = bias[j], a01 = bias[j + 1], a10 = bias[j], a11 = bias[j + 1];
            int32_t i = 0;
            for (; i + 4 <= k; i += 4) {
                const uint32_t wa = tf_read_u32(w0 + i), wb = tf_read_u32(w1 + i);
                const uint32_t wa_e = tf_sxtb16(wa), wa_o = tf_sxtb16_ror8(wa);
                const uint32_t wb_e = tf_sxtb16(wb), wb_o = tf_sxtb16_ror8(wb);
                uint32_t v = tf_read_u32(x0 + i);
                uint32_t v_e = tf_sxtb16(v), v_o = tf_sxtb16_ror8(v);
                a00 = tf_smlad(v_e, wa_e, a00);
                a00 = tf_smlad(v_o, wa_o, a00);
                a01 = tf_smlad(v_e, wb_e, a01);
                a01 = tf_smlad(v_o, wb_o, a01);
                v = tf_read_u32(x1 + i);
                v_e = tf_sxtb16(v);
                v_o = tf_sxtb16_ror8(v);
                a10 = tf_smlad(v_e, wa_e, a10);
                a10 = tf_smlad(v_o, wa_o, a10);
                a11 = tf_smlad(v_e, wb_e, a11);
                a11 = tf_smlad(v_o, wb_o, a11);
            }
            for (; i < k; i++) {
                const int32_t p = x0[i], q = x1[i], u = w0[i], v = w1[i];
                a00 += p * u;
                a01 += p * v;
                a10 += q * u;
                a11 += q * v;
            }
            o0[j] = finish(a00, multiplier[j], shift[j], output_zp, act_min, act_max);
            o0[j + 1] = finish(a01, multiplier[j + 1], shift[j + 1], output_zp, act_min, act_max);
            o1[j] = finish(a10, multiplier[j], shift[j], output_zp, act_min, act_max);
            o1[j + 1] = finish(a11, multiplier[j + 1], shift[j + 1], output_zp, act_min, act_max);
        }
        for (; j < m; j++) {
            const int8_t *w = weights + j * k;
            o0[j] = finish(dot_1x1(x0, w, k, bias[j]), multiplier[j], shift[j], output_zp, act_min,
                           act_max);
            o1[j] = finish(dot_1x1(x1, w, k, bias[j]), multiplier[j], shift[j], output_zp, act_min,
                           act_max);
        }
    }
    for (; t < n; t++) {
        const int8_t *x = input + t * k;
        for (int32_t j = 0; j < m; j++) {
            output[t * m + j] = finish(dot_1x1(x, weights + j * k, k, bias[j]), multiplier[j],
                                       shift[j], output_zp, act_min, act_max);
        }
    }
}
