/* tf_batch_matmul_s8 - see the header for shapes, layouts and the formula.
 *
 * Extended format: an operand row of k values becomes tf_bmm_groups(k) groups of two
 * words, (x[4g]-zp | x[4g+2]-zp << 16) and (x[4g+1]-zp | x[4g+3]-zp << 16), zero beyond
 * k. Two rows (or two columns) are interleaved: group g of member m sits at words
 * 4g + 2m and 4g + 2m + 1, so one pointer walks both members with LDRD.
 */
#include "tf_batch_matmul_s8.h"

#include "tf_dsp.h"
#include "tf_math.h"

static inline uint32_t pack(int32_t lo, int32_t hi)
{
    return ((uint32_t)lo & 0xFFFFu) | ((uint32_t)hi << 16);
}

/* Extend a contiguous row into member slot dst (4 words per group). */
static void extend_contig(const int8_t *src, int32_t k, int32_t zp, uint32_t *dst,
                          int32_t groups)
{
    const uint32_t zp2 = pack(zp, zp);
    const int32_t full = k / 4;
    int32_t g = 0;
    for (; g < full; g++) {
        const uint32_t v = tf_read_u32(src + 4 * g);
        dst[4 * g] = tf_ssub16(tf_sxtb16(v), zp2);
        dst[4 * g + 1] = tf_ssub16(tf_sxtb16_ror8(v), zp2);
    }
    for (; g < groups; g++) {
        int32_t x[4];
        for (int32_t r = 0; r < 4; r++) {
            x[r] = 4 * g + r < k ? src[4 * g + r] - zp : 0;
        }
        dst[4 * g] = pack(x[0], x[2]);
        dst[4 * g + 1] = pack(x[1], x[3]);
    }
}

/* Extend a strided column (element r at src[r * stride]) into member slot dst. */
static void extend_strided(const int8_t *src, int32_t stride, int32_t k, int32_t zp,
                           uint32_t *dst, int32_t groups)
{
    const uint32_t zp2 = pack(zp, zp);
    const int32_t full = k / 4;
    int32_t g = 0;
    for (; g < full; g++) {
        const int8_t *p = src + 4 * g * stride;
        const int32_t x0 = p[0], x1 = p[stride], x2 = p[2 * stride], x3 = p[3 * stride];
        dst[4 * g] = tf_ssub16(pack(x0, x2), zp2);
        dst[4 * g + 1] = tf_ssub16(pack(x1, x3), zp2);
    }
    for (; g < groups; g++) {
        int32_t x[4];
        for (int32_t r = 0; r < 4; r++) {
            const int32_t idx = 4 * g + r;
            x[r] = idx < k ? src[idx * stride] - zp : 0;
        }
        dst[4 * g] = pack(x[0], x[2]);
        dst[4 * g + 1] = pack(x[1], x[3]);
    }
}

static void zero_member(uint32_t *dst, int32_t groups)
{
    for (int32_t g = 0; g < groups; g++) {
        dst[4 * g] = 0;
        dst[4 * g + 1] = 0;
    }
}

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
/* One group for a 2x2 tile: 3 LDRD + 8 SMLAD = 16 MACs (a and b advance by 4 words). */
#define TF_BMM_GROUP_ASM                                                                     \
    "ldrd %[b0], %[b1], [%[b]], #8\n\t"                                                      \
    "ldrd %[b2], %[b3], [%[b]], #8\n\t"                                                      \
    "ldrd %[x0], %[x1], [%[a]], #8\n\t"                                                      \
    "smlad %[c00], %[x0], %[b0], %[c00]\n\t"                                                 \
    "smlad %[c00], %[x1], %[b1], %[c00]\n\t"                                                 \
    "smlad %[c01], %[x0], %[b2], %[c01]\n\t"                                                 \
    "smlad %[c01], %[x1], %[b3], %[c01]\n\t"                                                 \
    "ldrd %[x0], %[x1], [%[a]], #8\n\t"                                                      \
    "smlad %[c10], %[x0], %[b0], %[c10]\n\t"                                                 \
    "smlad %[c10], %[x1], %[b1], %[c10]\n\t"                                                 \
    "smlad %[c11], %[x0], %[b2], %[c11]\n\t"                                                 \
    "smlad %[c11], %[x1], %[b3], %[c11]\n\t"
#define TF_BMM_ASM_OPERANDS                                                                  \
    : [c00] "+r"(c00), [c01] "+r"(c01), [c10] "+r"(c10), [c11] "+r"(c11), [a] "+r"(a),      \
      [b] "+r"(b), [b0] "=&r"(b0), [b1] "=&r"(b1), [b2] "=&r"(b2), [b3] "=&r"(b3),          \
      [x0] "=&r"(x0), [x1] "=&r"(x1)                                                         \
    :                                                                                        \
    : "memory"
#endif

/* 2 rows (a) x 2 columns (b), both extended and interleaved, over `groups` groups:
 * c = {row0.col0, row0.col1, row1.col0, row1.col1}. GCC 12 neither pairs these loads into
 * LDRD nor keeps the four accumulators in registers, so on ARM the body is assembly. */
static inline void dot_2x2(const uint32_t *a, const uint32_t *b, int32_t groups, int32_t *c)
{
    int32_t c00 = 0, c01 = 0, c10 = 0, c11 = 0;
    const uint32_t *a_end = a + 4 * groups;
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
    uint32_t b0, b1, b2, b3, x0, x1;
    while (a_end - a >= 8) {
        __asm__ volatile(TF_BMM_GROUP_ASM TF_BMM_GROUP_ASM TF_BMM_ASM_OPERANDS);
    }
    if (a < a_end) {
        __asm__ volatile(TF_BMM_GROUP_ASM TF_BMM_ASM_OPERANDS);
    }
#else
    while (a < a_end) {
        c00 = tf_smlad(a[1], b[1], tf_smlad(a[0], b[0], c00));
        c01 = tf_smlad(a[1], b[3], tf_smlad(a[0], b[2], c01));
        c10 = tf_smlad(a[3], b[1], tf_smlad(a[2], b[0], c10));
        c11 = tf_smlad(a[3], b[3], tf_smlad(a[2], b[2], c11));
        a += 4;
        b += 4;
    }
#endif
    c[0] = c00;
    c[1] = c01;
    c[2] = c10;
    c[3] = c11;
}

typedef struct {
    int32_t mult, shift, zp;
    int32_t round, rshift; /* fast path: 2^k + (zp << (k + 1)) and k + 1, k = -2 - shift */
} requant_t;

/* tf_requantize + zero point + saturation. For -22 <= shift <= -2 ("fast") the rounding
 * shift 30 - shift is >= 32, so with k = -2 - shift in [0, 20] and hi the high word of
 * the product, ((prod >> (30 - shift)) + 1) >> 1 + zp == (hi + 2^k + (zp << (k + 1))) >> (k + 1)
 * exactly (|hi| < 2^30, so the sum stays below 2^31). */
static inline __attribute__((always_inline)) int8_t finish(int32_t acc, requant_t rq,
                                                            int32_t fast)
{
    int32_t r;
    if (fast) {
        const int32_t hi = (int32_t)(((int64_t)acc * rq.mult) >> 32);
        r = (hi + rq.round) >> rq.rshift;
    } else {
        r = tf_requantize(acc, rq.mult, rq.shift) + rq.zp;
    }
    return (int8_t)tf_sat_s8(r);
}

/* out[i][j] for the rows of a (contiguous along k, zero point a_zp) times the extended
 * columns b_ext (cols of them, in pairs); output rows are out_stride apart. `fast` is a
 * compile-time constant at each call so the requantization is specialised. */
static inline __attribute__((always_inline)) void
rows_times_cols(const int8_t *a, int32_t a_stride, int32_t rows, int32_t k, int32_t a_zp,
                const uint32_t *b_ext, int32_t cols, int32_t groups, requant_t rq,
                int32_t fast, int8_t *out, int32_t out_stride, uint32_t *a_ext)
{
    const int32_t even_cols = cols & ~1;
    int32_t c[4];
    for (int32_t i = 0; i < rows; i += 2) {
        const int32_t two_rows = i + 1 < rows;
        int8_t *o0 = out + i * out_stride, *o1 = o0 + out_stride;
        extend_contig(a + i * a_stride, k, a_zp, a_ext, groups);
        if (two_rows) {
            extend_contig(a + (i + 1) * a_stride, k, a_zp, a_ext + 2, groups);
            for (int32_t j = 0; j < even_cols; j += 2) {
                dot_2x2(a_ext, b_ext + 2 * j * groups, groups, c);
                o0[j] = finish(c[0], rq, fast);
                o0[j + 1] = finish(c[1], rq, fast);
                o1[j] = finish(c[2], rq, fast);
                o1[j + 1] = finish(c[3], rq, fast);
            }
        } else {
            zero_member(a_ext + 2, groups);
            for (int32_t j = 0; j < even_cols; j += 2) {
                dot_2x2(a_ext, b_ext + 2 * j * groups, groups, c);
                o0[j] = finish(c[0], rq, fast);
                o0[j + 1] = finish(c[1], rq, fast);
            }
        }
        if (cols & 1) { /* the last column's partner is zero */
            dot_2x2(a_ext, b_ext + 2 * even_cols * groups, groups, c);
            o0[even_cols] = finish(c[0], rq, fast);
            if (two_rows) {
                o1[even_cols] = finish(c[2], rq, fast);
            }
        }
    }
}

static void rows_times_cols_fast(const int8_t *a, int32_t a_stride, int32_t rows, int32_t k,
                                 int32_t a_zp, const uint32_t *b_ext, int32_t cols,
                                 int32_t groups, requant_t rq, int8_t *out, int32_t out_stride,
                                 uint32_t *a_ext)
{
    rows_times_cols(a, a_stride, rows, k, a_zp, b_ext, cols, groups, rq, 1, out, out_stride,
                    a_ext);
}

static void rows_times_cols_any(const int8_t *a, int32_t a_stride, int32_t rows, int32_t k,
                                int32_t a_zp, const uint32_t *b_ext, int32_t cols,
                                int32_t groups, requant_t rq, int8_t *out, int32_t out_stride,
                                uint32_t *a_ext)
{
    rows_times_cols(a, a_stride, rows, k, a_zp, b_ext, cols, groups, rq, 0, out, out_stride,
                    a_ext);
}

static void product(const int8_t *a, int32_t a_stride, int32_t rows, int32_t k, int32_t a_zp,
                    const uint32_t *b_ext, int32_t cols, int32_t groups, requant_t rq,
                    int8_t *out, int32_t out_stride, uint32_t *a_ext)
{
    if (rq.shift <= -2 && rq.shift >= -22) {
        const int32_t hk = -2 - rq.shift;
        rq.round = (1 << hk) + (int32_t)((uint32_t)rq.zp << (hk + 1));
        rq.rshift = hk + 1;
        rows_times_cols_fast(a, a_stride, rows, k, a_zp, b_ext, cols, groups, rq, out,
                             out_stride, a_ext);
    } else {
        rows_times_cols_any(a, a_stride, rows, k, a_zp, b_ext, cols, groups, rq, out,
                            out_stride, a_ext);
    }
}

/* Member slot of column j among the column pairs. */
static inline uint32_t *column_slot(uint32_t *b_ext, int32_t j, int32_t groups)
{
    return b_ext + 2 * (j & ~1) * groups + 2 * (j & 1);
}

void tf_batch_matmul_qk_s8(const int8_t *q, int32_t q_stride, int32_t q_zp, const int8_t *k,
                           int32_t k_stride, int32_t k_zp, int32_t heads, int32_t t_q,
                           int32_t t_k, int32_t d, int32_t multiplier, int32_t shift,
                           int32_t output_zp, int8_t *scores, void *scratch)
{
    const int32_t groups = (int32_t)tf_bmm_groups(d);
    const requant_t rq = {multiplier, shift, output_zp, 0, 0};
    uint32_t *a_ext = (uint32_t *)scratch, *b_ext = a_ext + 4 * groups;
    for (int32_t h = 0; h < heads; h++) {
        /* Key token j is column j of the scores. */
        for (int32_t j = 0; j < t_k; j++) {
            extend_contig(k + j * k_stride + h * d, d, k_zp, column_slot(b_ext, j, groups),
                          groups);
        }
        if (t_k & 1) {
            zero_member(column_slot(b_ext, t_k, groups), groups);
        }
        product(q + h * d, q_stride, t_q, d, q_zp, b_ext, t_k, groups, rq,
                scores + h * t_q * t_k, t_k, a_ext);
    }
}

void tf_batch_matmul_av_s8(const int8_t *attn, int32_t attn_zp, const int8_t *v,
                           int32_t v_stride, int32_t v_zp, int32_t heads, int32_t t_q,
                           int32_t t_k, int32_t d, int32_t multiplier, int32_t shift,
                           int32_t output_zp, int8_t *output, int32_t out_stride,
                           void *scratch)
{
    const int32_t groups = (int32_t)tf_bmm_groups(t_k);
    const requant_t rq = {multiplier, shift, output_zp, 0, 0};
    uint32_t *a_ext = (uint32_t *)scratch, *b_ext = a_ext + 4 * groups;
    for (int32_t h = 0; h < heads; h++) {
        /* Channel c of V (a column strided over tokens) is column c of the output. */
        for (int32_t c = 0; c < d; c++) {
            extend_strided(v + h * d + c, v_stride, t_k, v_zp, column_slot(b_ext, c, groups),
                           groups);
        }
        if (d & 1) {
            zero_member(column_slot(b_ext, d, groups), groups);
        }
        product(attn + h * t_q * t_k, t_k, t_q, t_k, attn_zp, b_ext, d, groups, rq,
                output + h * d, out_stride, a_ext);
    }
}
