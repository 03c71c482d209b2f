/* tf_layernorm_s8 - see the header for shapes, layouts and the formula. */
#include "tf_layernorm_s8.h"

#include "tf_dsp.h"
#include "tf_math.h"

/* The high word of {hi, lo} + a * b (signed 64-bit, wrapping): SMLAL, keeping RdHi. */
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
static inline int32_t tf_smlal_hi(uint32_t lo, int32_t hi, int32_t a, int32_t b)
{
    __asm__("smlal %0, %1, %2, %3" : "+r"(lo), "+r"(hi) : "r"(a), "r"(b));
    return hi;
}
#else
static inline int32_t tf_smlal_hi(uint32_t lo, int32_t hi, int32_t a, int32_t b)
{
    const uint64_t acc = (((uint64_t)(uint32_t)hi << 32) | lo) + (uint64_t)((int64_t)a * b);
    return (int32_t)(uint32_t)(acc >> 32);
}
#endif

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
    const uint32_t q = tf_div_u64_u32(((uint64_t)1 << 61) - 1u, tf_isqrt_u64(s_val << (2 * e)));
    if (e + TF_LN_F_BITS >= 29) {
        *mult = (int32_t)q;
        *pre_shift = e + TF_LN_F_BITS - 29;
    } else {
        *mult = (int32_t)(q >> (29 - e - TF_LN_F_BITS));
        *pre_shift = 0;
    }
}

/* One output: n = SMMULR(c << p, m), then the affine part, SMLAL of n * gamma onto the
 * channel's hi:lo (beta, the rounding term and the zero point), whose high word it is. */
static inline int8_t ln_out(int32_t x, uint32_t sum_p, uint32_t d_p, int32_t neg_mult,
                            const int32_t *a)
{
    /* c << p = (d << p) * x - (sum << p) cannot overflow (|c| <= sqrt(d * S), see
     * ops/norm.py), so the two terms may wrap in uint32 and the difference is exact.
     * Negating both factors of SMMULR keeps the product: one MLS, one SMMULR. */
    const int32_t n = tf_smmulr((int32_t)(sum_p - d_p * (uint32_t)x), neg_mult);
    return (int8_t)tf_sat_s8(tf_smlal_hi((uint32_t)a[1], a[2], n, a[0]));
}

void tf_layernorm_s8(const int8_t *input, const int32_t *affine, int32_t eps, int32_t t,
                     int32_t d, int8_t *output)
{
    const uint32_t ones = 0x00010001u;
    for (int32_t row = 0; row < t; row++) {
        const int8_t *x = input + row * d;
        int8_t *out = output + row * d;
        int32_t sum = 0, sq = 0, i = 0;
        for (; i + 8 <= d; i += 8) {
            const uint32_t v = tf_read_u32(x + i), w = tf_read_u32(x + i + 4);
            const uint32_t ev = tf_sxtb16(v), od = tf_sxtb16_ror8(v);
            const uint32_t ew = tf_sxtb16(w), ow = tf_sxtb16_ror8(w);
            sum = tf_smlad(od, ones, tf_smlad(ev, ones, sum));
            sq = tf_smlad(od, od, tf_smlad(ev, ev, sq));
            sum = tf_smlad(ow, ones, tf_smlad(ew, ones, sum));
            sq = tf_smlad(ow, ow, tf_smlad(ew, ew, sq));
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
        const uint32_t d_p = (uint32_t)d << pre, sum_p = (uint32_t)sum << pre;
        const int32_t neg_mult = -mult;
#if TF_ARM_DSP_ASM
        /* ln_out in assembly: GCC loads the affine triple with three LDRs and a MOV. Inline,
         * not in a .S file: a call per token would cost more than the loop saves on short rows. */
        const int8_t *xp = x, *const end = out + d;
        const int32_t *a = affine;
        int32_t v;
        /* LDM fills registers in ascending order: the triple is pinned to r4-r6. */
        register int32_t g __asm__("r4"), lo __asm__("r5"), hi __asm__("r6");
        __asm__ volatile("1:\n\t"
                         "ldrsb %[v], [%[xp]], #1\n\t"
                         "ldmia %[a]!, {%[g], %[lo], %[hi]}\n\t"
                         "mls %[v], %[dp], %[v], %[sp]\n\t"
                         "smmulr %[v], %[v], %[m]\n\t"
                         "smlal %[lo], %[hi], %[v], %[g]\n\t"
                         "ssat %[hi], #8, %[hi]\n\t"
                         "strb %[hi], [%[out]], #1\n\t"
                         "cmp %[out], %[end]\n\t"
                         "bne 1b\n\t"
                         : [v] "=&r"(v), [g] "=&r"(g), [lo] "=&r"(lo), [hi] "=&r"(hi),
                           [xp] "+r"(xp), [a] "+r"(a), [out] "+r"(out)
                         : [dp] "r"(d_p), [sp] "r"(sum_p), [m] "r"(neg_mult), [end] "r"(end)
                         : "cc", "memory");
#else
        const int32_t *a = affine;
        for (i = 0; i < d; i++, a += 3) {
            out[i] = ln_out(x[i], sum_p, d_p, neg_mult, a);
        }
#endif
    }
}
