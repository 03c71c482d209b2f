/* tf_fully_connected_s8 - see the header for shapes, layouts and the formula. */
#include "tf_fully_connected_s8.h"

#include "tf_dsp.h"
#include "tf_math.h"

static inline int8_t finish(int32_t acc, int32_t mult, int32_t shift, int32_t zp, int32_t lo,
                            int32_t hi)
{
    return (int8_t)tf_clamp(tf_requantize(acc, mult, shift) + zp, lo, hi);
}

/* One token x one row, for the tokens left over by the tiles. */
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

/* Sign-extend TF_FC_TILE tokens into scratch: group g, token t at words 2*(g*TILE + t). */
static void extend_tile(const int8_t *x, int32_t k, uint32_t *xs)
{
    const int32_t groups = k / 4;
    for (int32_t t = 0; t < TF_FC_TILE; t++) {
        const int8_t *row = x + t * k;
        uint32_t *dst = xs + 2 * t;
        for (int32_t g = 0; g < groups; g++) {
            const uint32_t v = tf_read_u32(row + 4 * g);
            dst[0] = tf_sxtb16(v);
            dst[1] = tf_sxtb16_ror8(v);
            dst += 2 * TF_FC_TILE;
        }
    }
}

/* One weight row against the extended tile: the hot loop. Per 4 weights: LDR, 2 SXTB16,
 * 4 LDRD, 8 SMLAD = 16 MACs. GCC 12 neither pairs the loads into LDRD nor keeps all
 * accumulators in registers here, so on ARM the loop body is written out in assembly. */
static inline void tile_dot(const int8_t *w, const uint32_t *s, int32_t groups, int32_t *p0,
                            int32_t *p1, int32_t *p2, int32_t *p3)
{
    int32_t a0 = *p0, a1 = *p1, a2 = *p2, a3 = *p3;
    const uint32_t *s_end = s + 2 * TF_FC_TILE * groups;
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
    uint32_t we, wo, lo, hi;
    while (s < s_end) {
        __asm__ volatile("ldr %[wo], [%[w]], #4\n\t"
                         "sxtb16 %[we], %[wo]\n\t"
                         "sxtb16 %[wo], %[wo], ror #8\n\t"
                         "ldrd %[lo], %[hi], [%[s]], #8\n\t"
                         "smlad %[a0], %[lo], %[we], %[a0]\n\t"
                         "smlad %[a0], %[hi], %[wo], %[a0]\n\t"
                         "ldrd %[lo], %[hi], [%[s]], #8\n\t"
                         "smlad %[a1], %[lo], %[we], %[a1]\n\t"
                         "smlad %[a1], %[hi], %[wo], %[a1]\n\t"
                         "ldrd %[lo], %[hi], [%[s]], #8\n\t"
                         "smlad %[a2], %[lo], %[we], %[a2]\n\t"
                         "smlad %[a2], %[hi], %[wo], %[a2]\n\t"
                         "ldrd %[lo], %[hi], [%[s]], #8\n\t"
                         "smlad %[a3], %[lo], %[we], %[a3]\n\t"
                         "smlad %[a3], %[hi], %[wo], %[a3]\n\t"
                         : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3),
                           [w] "+r"(w), [s] "+r"(s), [we] "=&r"(we), [wo] "=&r"(wo),
                           [lo] "=&r"(lo), [hi] "=&r"(hi)
                         :
                         : "memory");
    }
#else
    while (s < s_end) {
        const uint32_t wv = tf_read_u32(w);
        const uint32_t we = tf_sxtb16(wv), wo = tf_sxtb16_ror8(wv);
        a0 = tf_smlad(s[1], wo, tf_smlad(s[0], we, a0));
        a1 = tf_smlad(s[3], wo, tf_smlad(s[2], we, a1));
        a2 = tf_smlad(s[5], wo, tf_smlad(s[4], we, a2));
        a3 = tf_smlad(s[7], wo, tf_smlad(s[6], we, a3));
        s += 2 * TF_FC_TILE;
        w += 4;
    }
#endif
    *p0 = a0;
    *p1 = a1;
    *p2 = a2;
    *p3 = a3;
}

void tf_fully_connected_s8(const int8_t *input, const int8_t *weights, const int32_t *bias,
                           const int32_t *multiplier, const int32_t *shift, int32_t output_zp,
                           int32_t act_min, int32_t act_max, int32_t n, int32_t k, int32_t m,
                           int8_t *output, void *scratch)
{
    uint32_t *xs = (uint32_t *)scratch;
    const int32_t groups = k / 4, tail = k - 4 * groups;
    int32_t t = 0;
    for (; t + TF_FC_TILE <= n; t += TF_FC_TILE) {
        const int8_t *x = input + t * k;
        int8_t *out = output + t * m;
        extend_tile(x, k, xs);
        for (int32_t j = 0; j < m; j++) {
            const int8_t *w = weights + j * k;
            int32_t a0 = bias[j], a1 = a0, a2 = a0, a3 = a0;
            tile_dot(w, xs, groups, &a0, &a1, &a2, &a3);
            for (int32_t i = k - tail; i < k; i++) {
                const int32_t wi = w[i];
                a0 += x[i] * wi;
                a1 += x[k + i] * wi;
                a2 += x[2 * k + i] * wi;
                a3 += x[3 * k + i] * wi;
            }
            const int32_t mu = multiplier[j], sh = shift[j];
            out[j] = finish(a0, mu, sh, output_zp, act_min, act_max);
            out[m + j] = finish(a1, mu, sh, output_zp, act_min, act_max);
            out[2 * m + j] = finish(a2, mu, sh, output_zp, act_min, act_max);
            out[3 * m + j] = finish(a3, mu, sh, output_zp, act_min, act_max);
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
