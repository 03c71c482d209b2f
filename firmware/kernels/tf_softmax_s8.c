/* tf_softmax_s8 - see the header for shapes, layouts and the formula. */
#include "tf_softmax_s8.h"

#include "tf_dsp.h"
#include "tf_math.h"

#if defined(__ARM_FEATURE_SIMD32) && __ARM_FEATURE_SIMD32
#include <arm_acle.h>
/* USUB8: byte-wise a - b modulo 256. */
static inline uint32_t usub8(uint32_t a, uint32_t b) { return (uint32_t)__usub8(a, b); }
#else
static inline uint32_t usub8(uint32_t a, uint32_t b)
{
    uint32_t r = 0;
    for (int s = 0; s < 32; s += 8) {
        r |= (((a >> s) - (b >> s)) & 0xFFu) << s;
    }
    return r;
}
#endif

static int32_t row_max(const int8_t *x, int32_t n)
{
    uint32_t lanes = 0x80808080u; /* four running maxima, -128 each */
    int32_t i = 0;
    for (; i + 8 <= n; i += 8) {
        lanes = tf_max_s8x4(tf_max_s8x4(tf_read_u32(x + i), tf_read_u32(x + i + 4)), lanes);
    }
    for (; i + 4 <= n; i += 4) {
        lanes = tf_max_s8x4(tf_read_u32(x + i), lanes);
    }
    /* Fold the lanes: bytes 2-3 onto 0-1, then byte 1 onto 0. */
    lanes = tf_max_s8x4(lanes, lanes >> 16);
    lanes = tf_max_s8x4(lanes, lanes >> 8);
    int32_t m = (int8_t)lanes;
    for (; i < n; i++) {
        m = x[i] > m ? x[i] : m;
    }
    return m;
}

/* Exact (2^(30 + bits) - 1) / sum for sum in [2^(bits-1), 2^bits): below 2^31. */
static int32_t recip_of(uint32_t sum, int32_t bits)
{
    return (int32_t)tf_div_u64_u32(((uint64_t)1 << (30 + bits)) - 1u, sum);
}

/* out = clamp(requantize(e, recip, 9 - bits) - 128) = clamp(floor((e * recip + 2^(21+bits)
 * - 2^(29+bits)) / 2^(22+bits))). Scaling e by 2^(31-bits) (still < 2^31: e <= 2^Q and
 * sum >= 2^Q) makes the divisor 2^53 for every row: SMMLA onto the rounding term in
 * units of 2^32, then SSAT with ASR #21. */
#define SM_ROUND ((1 << 20) - (1 << 28))
static inline int8_t sm_out(int32_t e, int32_t up, int32_t recip)
{
    return (int8_t)tf_sat_s8(tf_smmla(e << up, recip, SM_ROUND) >> 21);
}

#if TF_ROUNDING_TFLITE
/* gemmlowp's SaturatingRoundingMultiplyByPOT for 0 < e < 31. */
static inline int32_t sat_shl(int32_t x, int32_t e)
{
    const int64_t v = (int64_t)x * ((int64_t)1 << e);
    return v > INT32_MAX ? INT32_MAX : (v < INT32_MIN ? INT32_MIN : (int32_t)v);
}

/* gemmlowp's 1 / (1 + a) for a in [0, 1) (Q0.31): Newton-Raphson in Q2.29 from
 * 48/17 - 32/17 d, d = (1 + a) / 2, three steps. */
static int32_t one_over_one_plus_x(int32_t a)
{
    const int32_t half = (int32_t)(((int64_t)a + INT32_MAX + 1) / 2);
    int32_t x = 1515870810 + tf_srdhm(half, -1010580540);
    for (int32_t i = 0; i < 3; i++) {
        x += sat_shl(tf_srdhm(x, (1 << 29) - tf_srdhm(half, x)), 2);
    }
    return sat_shl(x, 1);
}

/* TFLite Micro's softmax (ops/tflm.py softmax_tflite): EXP holds exp(-beta s k) in Q0.31;
 * the Q12.19 sum's reciprocal scales every e_i to Q0.8. */
static void softmax_tflite(const int8_t *input, const int32_t *exp_table, int32_t rows,
                           int32_t n, int8_t *output)
{
    for (int32_t row = 0; row < rows; row++) {
        const int8_t *x = input + row * n;
        int8_t *out = output + row * n;
        const int32_t *base = exp_table + row_max(x, n); /* EXP[m - x] = base[-x] */
        int32_t sum = 0;
        for (int32_t i = 0; i < n; i++) {
            sum += tf_rdbpot(base[-x[i]], 12);
        }
        const int32_t headroom = __builtin_clz((uint32_t)sum); /* sum >= EXP[0] >> 12 > 0 */
        const int32_t recip =
            one_over_one_plus_x((int32_t)(((uint32_t)sum << headroom) - (1u << 31)));
        const int32_t down = 12 - headroom + 23;
        for (int32_t i = 0; i < n; i++) {
            out[i] = (int8_t)tf_sat_s8(tf_rdbpot(tf_srdhm(recip, base[-x[i]]), down) - 128);
        }
    }
}
#endif

void tf_softmax_s8(const int8_t *input, const int32_t *exp_table, int32_t rows, int32_t n,
                   int8_t *output)
{
#if TF_ROUNDING_TFLITE
    softmax_tflite(input, exp_table, rows, n, output);
    return;
#endif
    for (int32_t row = 0; row < rows; row++) {
        const int8_t *x = input + row * n;
        int8_t *out = output + row * n;
        const int32_t m = row_max(x, n);
        /* Table indices m - x_i are in 0..255: USUB8 from m in every byte gives four. */
        const uint32_t mm = (uint32_t)(uint8_t)m * 0x01010101u;
        const int32_t *base = exp_table + m; /* EXP[m - x] = base[-x] for the tail */
        uint32_t sum = 0;
        int32_t i = 0;
        for (; i + 4 <= n; i += 4) {
            const uint32_t k = usub8(mm, tf_read_u32(x + i));
            sum += (uint32_t)exp_table[k & 0xFFu] + (uint32_t)exp_table[(k >> 8) & 0xFFu] +
                   (uint32_t)exp_table[(k >> 16) & 0xFFu] + (uint32_t)exp_table[k >> 24];
        }
        for (; i < n; i++) {
            sum += (uint32_t)base[-x[i]];
        }
        const int32_t bits = 32 - __builtin_clz(sum); /* sum >= EXP[0] >= 1 */
        const int32_t recip = recip_of(sum, bits), up = 31 - bits;
        for (i = 0; i + 4 <= n; i += 4) {
            const uint32_t k = usub8(mm, tf_read_u32(x + i));
            out[i] = sm_out(exp_table[k & 0xFFu], up, recip);
            out[i + 1] = sm_out(exp_table[(k >> 8) & 0xFFu], up, recip);
            out[i + 2] = sm_out(exp_table[(k >> 16) & 0xFFu], up, recip);
            out[i + 3] = sm_out(exp_table[k >> 24], up, recip);
        }
        for (; i < n; i++) {
            out[i] = sm_out(base[-x[i]], up, recip);
        }
    }
}
