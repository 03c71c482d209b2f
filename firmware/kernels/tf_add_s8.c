/* tf_add_s8 - see the header for shapes, layouts and the formula. */
#include "tf_add_s8.h"

#include "tf_dsp.h"
#include "tf_math.h"

/* TF_ARM_DSP_ASM (tf_dsp.h): the fast form's loop, four elements at a time, is assembly
 * (tf_add_s8_arm.S); the portable C (add_fast_c) runs the rest, and everything elsewhere. */

/* ---------------------------------------------------------------------------------------------
 * The fast form. With s = left_shift + shift + 1 >= 0, multiplying the numerator and the
 * denominator of the reference's floor((v 2^L m + 2^(30-e)) / 2^(31-e)) by 2^(e+1) gives
 *
 *     a = floor(((v << s) m + 2^31) / 2^32) = SMMULR(v << s, m)             (v = x - zp)
 *
 * and a + b = SMMLAR(v2 << s2, m2, a). For the output, k = -1 - eo >= 1 and
 * c = 2^(k-1) + (output_zp + 128) 2^k: since 2^(31+k) is a multiple of 2^32,
 *
 *     requantize(a + b) + output_zp + 128 = (c + floor((a + b) mo / 2^32)) >> k
 *                                         = SMMLA(a + b, mo, c) >> k
 *
 * (the +128 makes the value unsigned for USAT16 in the assembly). add_fast() checks, from
 * the ranges of x, that nothing here leaves int32; otherwise the generic int64 path runs.
 * ------------------------------------------------------------------------------------------- */

typedef struct {
    int32_t s1, s2; /* pre-shifts of x - zp */
    int32_t k, c;   /* output shift and constant */
    int32_t asm_ok; /* also fits the assembly's 16-bit lanes and byte clamp */
} add_fast_t;

/* The reference's requantize in int64 (the generic path; |x m| < 2^63 for its values). */
static int64_t rq64(int64_t x, int32_t m, int32_t shift)
{
    return (((x * m) >> (30 - shift)) + 1) >> 1;
}

static int fits32(int64_t x) { return x >= INT32_MIN && x <= INT32_MAX; }

/* a(x) over x in [-128, 127] is monotone (in either direction): its range from the ends,
 * by the fast form itself once (x - zp) << s is known to fit (32-bit work: this runs on
 * every call). */
static int input_range(int32_t zp, int32_t m, int32_t shift, int32_t left_shift, int32_t *s,
                       int64_t *lo, int64_t *hi)
{
    *s = left_shift + shift + 1;
    if (*s < 0 || *s > 23) {
        return 0;
    }
    const int32_t lim = INT32_MAX >> *s; /* |(v << s)| fits for v in [-lim - 1, lim] */
    const int64_t v0 = -128 - (int64_t)zp, v1 = 127 - (int64_t)zp;
    if (v0 < -(int64_t)lim - 1 || v1 > lim) {
        return 0;
    }
    const int32_t p = (int32_t)1 << *s;
    const int32_t a0 = tf_smmulr((int32_t)v0 * p, m), a1 = tf_smmulr((int32_t)v1 * p, m);
    *lo = a0 < a1 ? a0 : a1;
    *hi = a0 < a1 ? a1 : a0;
    return 1;
}

static int add_fast(int32_t input1_zp, int32_t input1_multiplier, int32_t input1_shift,
                    int32_t input2_zp, int32_t input2_multiplier, int32_t input2_shift,
                    int32_t output_zp, int32_t output_multiplier, int32_t output_shift,
                    int32_t act_min, int32_t act_max, int32_t left_shift, add_fast_t *f)
{
    int64_t a_lo, a_hi, b_lo, b_hi;
    if (TF_ROUNDING_TFLITE || left_shift < 0 || left_shift > 22 || output_shift > -2 || output_shift < -31 ||
        output_zp < -(1 << 20) || output_zp > (1 << 20) ||
        !input_range(input1_zp, input1_multiplier, input1_shift, left_shift, &f->s1, &a_lo,
                     &a_hi) ||
        !input_range(input2_zp, input2_multiplier, input2_shift, left_shift, &f->s2, &b_lo,
                     &b_hi)) {
        return 0;
    }
    const int64_t ab_lo = a_lo + b_lo, ab_hi = a_hi + b_hi;
    if (!fits32(ab_lo) || !fits32(ab_hi)) {
        return 0;
    }
    f->k = -1 - output_shift; /* 1..30 */
    const int32_t pk = (int32_t)1 << f->k;
    const int64_t c = pk / 2 + (int64_t)(output_zp + 128) * pk;
    /* floor(ab mo / 2^32) is monotone in ab too */
    const int32_t q0 = (int32_t)(((int64_t)(int32_t)ab_lo * output_multiplier) >> 32);
    const int32_t q1 = (int32_t)(((int64_t)(int32_t)ab_hi * output_multiplier) >> 32);
    const int64_t x_lo = c + (q0 < q1 ? q0 : q1), x_hi = c + (q0 < q1 ? q1 : q0);
    if (!fits32(c) || !fits32(x_lo) || !fits32(x_hi)) {
        return 0;
    }
    f->c = (int32_t)c;
    /* Assembly: (x << 8) lanes times 2^(s-8) in SMLAxy (a positive int16), SMMLA's result
     * shifted fits an int16 lane for PKHBT/USAT16, and the clamp works on bytes. */
    f->asm_ok = f->s1 >= 8 && f->s1 <= 22 && f->s2 >= 8 && f->s2 <= 22 &&
                ((int32_t)x_lo >> f->k) >= INT16_MIN && ((int32_t)x_hi >> f->k) <= INT16_MAX &&
                act_min >= -128 && act_max <= 127 && input1_zp >= -128 && input1_zp <= 128 &&
                input2_zp >= -128 && input2_zp <= 128;
    return 1;
}

/* np.clip's order: min(max(x, lo), hi), so lo > hi gives hi. */
static inline int32_t add_clip(int32_t x, int32_t lo, int32_t hi)
{
    x = x < lo ? lo : x;
    return x > hi ? hi : x;
}

/* Elements [i, n) by the fast form, one at a time (the tail, and the host's whole loop). */
static void add_fast_c(const int8_t *input1, const int8_t *input2, int32_t i, int32_t n,
                       int32_t zp1, int32_t m1, int32_t zp2, int32_t m2, int32_t mo,
                       int32_t act_min, int32_t act_max, const add_fast_t *f, int8_t *output)
{
    const int32_t p1 = (int32_t)1 << f->s1, p2 = (int32_t)1 << f->s2;
    for (; i < n; i++) {
        const int32_t a = tf_smmulr((input1[i] - zp1) * p1, m1);
        const int32_t ab = tf_smmlar((input2[i] - zp2) * p2, m2, a);
        const int32_t y = (tf_smmla(ab, mo, f->c) >> f->k) - 128;
        output[i] = (int8_t)add_clip(y, act_min, act_max);
    }
}

#if TF_ARM_DSP_ASM
/* The assembly loop's constants, loaded by LDM: P2 below r0 (LDMDB), P1 at r0, P3 at lr. */
typedef struct {
    const int8_t *end2; /* P2: input2 + 4 groups */
    int32_t z2;         /* -zp2 << s2 */
    int32_t m2;
    const int8_t *end1; /* P1: input1 + 4 groups */
    int32_t z1;         /* -zp1 << s1 */
    int32_t m1;
    uint32_t ss;        /* 2^(s1-8) | 2^(s2-8) << 16 */
    uint32_t mask;      /* 0xFF00FF00 */
    int8_t *end_out;    /* P3: output + 4 groups */
    int32_t mo;
    int32_t c;
    int32_t k;
    uint32_t lo4, hi4;  /* act_min + 128, act_max + 128 in each byte */
    int32_t i0;         /* -4 groups: the byte index, counting up to 0 */
} add_state_t;
_Static_assert(sizeof(add_state_t) == 60, "add_state_t is the assembly's layout");

/* tf_add_s8_arm.S: four elements per iteration, saturated to int8 (and clamped). */
void tf_add_loop(const add_state_t *st);
void tf_add_loop_clamp(const add_state_t *st);

static uint32_t bytes4(int32_t v) { return (uint32_t)(v & 0xFF) * 0x01010101u; }
#endif

#if TF_ROUNDING_TFLITE
/* tf_rdbpot(h, e) with its rounding terms precomputed: half = 2^(e-1), half - 1 (0 if e = 0). */
static inline int32_t rdbpot_pre(int32_t h, int32_t e, int32_t half, int32_t half_m1)
{
    return (h + (h < 0 ? half_m1 : half)) >> e;
}

/* TFLite's AddElementwise for left_shift <= 20 and shifts <= 0: SRDHM(v << L, m) with
 * |v| <= 255 is SMMULR(v << (L + 1), m), floor((v m 2^(L+1) + 2^31) / 2^32), and v << (L + 1)
 * fits int32; the output's SRDHM takes the 64-bit product (tf_srdhm). */
static void add_tflite(const int8_t *input1, const int8_t *input2, int32_t n, int32_t zp1,
                       int32_t m1, int32_t s1, int32_t zp2, int32_t m2, int32_t s2,
                       int32_t output_zp, int32_t mo, int32_t so, int32_t act_min,
                       int32_t act_max, int32_t left_shift, int8_t *output)
{
    const int32_t p = (int32_t)1 << (left_shift + 1);
    const int32_t e1 = -s1, e2 = -s2, eo = -so;
    const int32_t h1 = (int32_t)((1u << e1) >> 1), h2 = (int32_t)((1u << e2) >> 1);
    const int32_t ho = (int32_t)((1u << eo) >> 1);
    const int32_t h1m = h1 ? h1 - 1 : 0, h2m = h2 ? h2 - 1 : 0, hom = ho ? ho - 1 : 0;
    for (int32_t i = 0; i < n; i++) {
        const int32_t a = rdbpot_pre(tf_smmulr((input1[i] - zp1) * p, m1), e1, h1, h1m);
        const int32_t b = rdbpot_pre(tf_smmulr((input2[i] - zp2) * p, m2), e2, h2, h2m);
        const int32_t y = rdbpot_pre(tf_srdhm(a + b, mo), eo, ho, hom) + output_zp;
        output[i] = (int8_t)add_clip(y, act_min, act_max);
    }
}
#endif

void tf_add_s8(const int8_t *input1, const int8_t *input2, int32_t n, int32_t input1_zp,
               int32_t input1_multiplier, int32_t input1_shift, int32_t input2_zp,
               int32_t input2_multiplier, int32_t input2_shift, int32_t output_zp,
               int32_t output_multiplier, int32_t output_shift, int32_t act_min,
               int32_t act_max, int32_t left_shift, int8_t *output)
{
    add_fast_t f;
    if (add_fast(input1_zp, input1_multiplier, input1_shift, input2_zp, input2_multiplier,
                 input2_shift, output_zp, output_multiplier, output_shift, act_min, act_max,
                 left_shift, &f)) {
        int32_t done = 0;
#if TF_ARM_DSP_ASM
        const int32_t groups = n / 4;
        if (f.asm_ok && groups > 0) {
            done = 4 * groups;
            add_state_t st = {
                .end2 = input2 + done,
                .z2 = -input2_zp * ((int32_t)1 << f.s2),
                .m2 = input2_multiplier,
                .end1 = input1 + done,
                .z1 = -input1_zp * ((int32_t)1 << f.s1),
                .m1 = input1_multiplier,
                .ss = ((uint32_t)1 << (f.s1 - 8)) | ((uint32_t)1 << (f.s2 + 8)),
                .mask = 0xFF00FF00u,
                .end_out = output + done,
                .mo = output_multiplier,
                .c = f.c,
                .k = f.k,
                .lo4 = bytes4(act_min + 128),
                .hi4 = bytes4(act_max + 128),
                .i0 = -done,
            };
            if (act_min == -128 && act_max == 127) {
                tf_add_loop(&st);
            } else {
                tf_add_loop_clamp(&st);
            }
        }
#endif
        add_fast_c(input1, input2, done, n, input1_zp, input1_multiplier, input2_zp,
                   input2_multiplier, output_multiplier, act_min, act_max, &f, output);
        return;
    }
#if TF_ROUNDING_TFLITE
    if (left_shift <= 20 && output_shift <= 0) {
        add_tflite(input1, input2, n, input1_zp, input1_multiplier, input1_shift, input2_zp,
                   input2_multiplier, input2_shift, output_zp, output_multiplier, output_shift,
                   act_min, act_max, left_shift, output);
        return;
    }
    /* TFLite's AddElementwise: (x - zp) << left_shift fits int32 for left_shift <= 22 */
    for (int32_t i = 0; i < n; i++) {
        const int32_t a = tf_requantize((input1[i] - input1_zp) * (1 << left_shift),
                                        input1_multiplier, input1_shift);
        const int32_t b = tf_requantize((input2[i] - input2_zp) * (1 << left_shift),
                                        input2_multiplier, input2_shift);
        const int32_t y = tf_requantize(a + b, output_multiplier, output_shift) + output_zp;
        output[i] = (int8_t)add_clip(y, act_min, act_max);
    }
    return;
#endif
    /* Generic: the reference in int64, for parameters add_params never makes. */
    for (int32_t i = 0; i < n; i++) {
        const int64_t a = rq64((int64_t)(input1[i] - input1_zp) * ((int64_t)1 << left_shift),
                               input1_multiplier, input1_shift);
        const int64_t b = rq64((int64_t)(input2[i] - input2_zp) * ((int64_t)1 << left_shift),
                               input2_multiplier, input2_shift);
        const int64_t y = (((a + b) * output_multiplier) >> (30 - output_shift)) + 1;
        const int64_t out = (y >> 1) + output_zp;
        const int64_t clipped = out < act_min ? act_min : out;
        output[i] = (int8_t)(clipped > act_max ? act_max : clipped);
    }
}
