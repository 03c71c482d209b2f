/* tf_layernorm_s8 - see the header for shapes, layouts and the formula. */
#include "tf_layernorm_s8.h"

#include "tf_dsp.h"

/* Exact floor(sqrt(v)), digit by digit (no float, same result as Python's math.isqrt). */
static uint32_t isqrt64(uint64_t v)
{
    uint64_t res = 0, bit = (uint64_t)1 << 62;
    while (bit > v) {
        bit >>= 2;
    }
    while (bit != 0) {
        if (v >= res + bit) {
            v -= res + bit;
            res = (res >> 1) + bit;
        } else {
            res >>= 1;
        }
        bit >>= 2;
    }
    return (uint32_t)res;
}

static int32_t bitlen64(uint64_t v)
{
    const uint32_t hi = (uint32_t)(v >> 32), lo = (uint32_t)v;
    if (hi != 0) {
        return 64 - __builtin_clz(hi);
    }
    return lo != 0 ? 32 - __builtin_clz(lo) : 0;
}

/* m * 2^(p-32) ~= 2^F / sqrt(S) for 0 < S < 2^62. */
static void rsqrt_multiplier(uint64_t s_val, int32_t *mult, int32_t *pre_shift)
{
    const int32_t e = (62 - bitlen64(s_val)) / 2;
    const uint32_t q = (uint32_t)((((uint64_t)1 << 61) - 1) / isqrt64(s_val << (2 * e)));
    if (e + TF_LN_F_BITS >= 29) {
        *mult = (int32_t)q;
        *pre_shift = e + TF_LN_F_BITS - 29;
    } else {
        *mult = (int32_t)(q >> (29 - e - TF_LN_F_BITS));
        *pre_shift = 0;
    }
}

void tf_layernorm_s8(const int8_t *input, const int32_t *gamma, const int32_t *beta, int32_t eps,
                     int32_t output_zp, int32_t t, int32_t d, int8_t *output)
{
    const uint32_t ones = 0x00010001u;
    for (int32_t row = 0; row < t; row++) {
        const int8_t *x = input + row * d;
        int8_t *out = output + row * d;
        int32_t sum = 0, sq = 0, i = 0;
        for (; i + 4 <= d; i += 4) {
            const uint32_t v = tf_read_u32(x + i);
            const uint32_t ev = tf_sxtb16(v), od = tf_sxtb16_ror8(v);
            sum = tf_smlad(od, ones, tf_smlad(ev, ones, sum));
            sq = tf_smlad(od, od, tf_smlad(ev, ev, sq));
        }
        for (; i < d; i++) {
            sum += x[i];
            sq += x[i] * x[i];
        }
        const int64_t s_val = (int64_t)d * sq - (int64_t)sum * sum + eps;
        int32_t mult = 0, pre = 0;
        if (s_val > 0) {
            rsqrt_multiplier((uint64_t)s_val, &mult, &pre);
        }
        /* c << p = (d << p) * x - (sum << p) cannot overflow (|c| <= sqrt(d * S), see
         * ops/norm.py), so the two terms may wrap in uint32 and the difference is exact.
         * Negating both factors of SMMULR keeps the product: one MLS, one SMMULR. */
        const uint32_t d_p = (uint32_t)d << pre, sum_p = (uint32_t)sum << pre;
        const int32_t neg_mult = -mult;
        for (i = 0; i < d; i++) {
            const int32_t neg_c = (int32_t)(sum_p - d_p * (uint32_t)(int32_t)x[i]);
            const int32_t n = tf_smmulr(neg_c, neg_mult);
            /* beta << F plus the 2^31 rounding term is (beta + 2^19) << 12, as a word pair. */
            const int32_t b = beta[i] + (1 << 19);
            const uint64_t bias = ((uint64_t)(uint32_t)(b >> 20) << 32) | ((uint32_t)b << 12);
            const int64_t acc = (int64_t)n * gamma[i] + (int64_t)bias;
            out[i] = (int8_t)tf_sat_s8((int32_t)((uint64_t)acc >> 32) + output_zp);
        }
    }
}
