/* tf_batch_matmul_s8 - see the header for shapes, layouts and the formula.
 *
 * Extended format. The reduction runs in steps of two values, one halfword pair per word:
 * group g (values 4g..4g+3) is step 2g = (x[4g], x[4g+2]) and step 2g+1 = (x[4g+1], x[4g+3]),
 * which is what SXTB16 / SXTB16 ROR 8 make of four contiguous bytes. Values have their zero
 * point subtracted (SXTAB16 with a packed -zp pair) and are zero beyond k.
 *   left  (2 rows):  a[2 s + r]                 then the end marker pair, then the state
 *   right (columns): b[8 G n + 4 s + l]         block n = columns 4n..4n+3, lane l
 * so each step of a 2x4 output tile is one LDRD of the rows and two of the columns.
 */
#include "tf_batch_matmul_s8.h"

#include "tf_dsp.h"
#include "tf_math.h"

/* TF_ARM_DSP_ASM (tf_dsp.h): the 2x4 tiles' MACs and requantization are assembly,
 * tf_batch_matmul_s8_arm.S; otherwise the portable C below, with the same contract. */

#if defined(__GNUC__)
#define BMM_NOINLINE __attribute__((noinline))
#else
#define BMM_NOINLINE
#endif

/* Extended halfwords are within [-255, 255], so this word never occurs as data. */
#define BMM_END 0x80000000u

/* Per-row-pair constants of tiles_fast; the assembly reads them behind the end marker. */
typedef struct {
    int32_t mult, c, sh; /*  0: fast requantization: SMMLA(acc, mult, c) >> sh */
    int8_t *o0, *o1;     /* 12: outputs of the tile's two rows (o1 stored first) */
    const uint32_t *b_end; /* 20: end of the full column blocks */
    uint32_t *a;         /* 24: the left tile */
    int32_t unused;
} bmm_state_t;
#if TF_ARM_DSP_ASM
_Static_assert(sizeof(bmm_state_t) == 32, "bmm_state_t is the assembly's layout");
#endif

static inline uint32_t pack(int32_t lo, int32_t hi)
{
    return ((uint32_t)lo & 0xFFFFu) | ((uint32_t)hi << 16);
}

/* The extends below run SXTAB16 onto nzp = (-zp, -zp): it widens the bytes and subtracts the
 * zero point in one instruction. */

/* PKHBT (a.lo, b.lo) and PKHTB (a.hi, b.hi) as GCC recognises them. */
static inline uint32_t lo_lo(uint32_t a, uint32_t b) { return (a & 0xFFFFu) | (b << 16); }
static inline uint32_t hi_hi(uint32_t a, uint32_t b) { return (b & 0xFFFF0000u) | (a >> 16); }

/* Extended element r of a strided vector (0 beyond n). */
static inline int32_t elem(const int8_t *src, int32_t stride, int32_t r, int32_t n, int32_t zp)
{
    return r < n ? src[r * stride] - zp : 0;
}

/* Groups g0.. of a vector of n values (element r at src[r * stride]) into words dst[0],
 * dst[step], ... element by element: the tails the four-byte loops leave. */
static BMM_NOINLINE void extend_slow(const int8_t *src, int32_t stride, int32_t n, int32_t zp,
                                     uint32_t *dst, int32_t step, int32_t g0, int32_t groups)
{
    for (int32_t g = g0; g < groups; g++) {
        const int32_t r = 4 * g;
        dst[2 * g * step] = pack(elem(src, stride, r, n, zp), elem(src, stride, r + 2, n, zp));
        dst[(2 * g + 1) * step] =
            pack(elem(src, stride, r + 1, n, zp), elem(src, stride, r + 3, n, zp));
    }
}

/* The left tile: rows 0 and 1 of a (row 0 twice when rows == 1: row 1's outputs are then
 * dropped), then the end marker. */
static inline void extend_left(const int8_t *a, int32_t a_stride, int32_t rows, int32_t k,
                               int32_t zp, uint32_t *dst, int32_t groups)
{
    const uint32_t nzp = pack(-zp, -zp);
    const int8_t *a1 = rows > 1 ? a + a_stride : a;
    const int32_t full = k / 4;
    for (int32_t g = 0; g < full; g++) {
        const uint32_t x0 = tf_read_u32(a + 4 * g), x1 = tf_read_u32(a1 + 4 * g);
        dst[4 * g] = tf_sxtab16(nzp, x0);
        dst[4 * g + 1] = tf_sxtab16(nzp, x1);
        dst[4 * g + 2] = tf_sxtab16_ror8(nzp, x0);
        dst[4 * g + 3] = tf_sxtab16_ror8(nzp, x1);
    }
    if (full < groups) {
        extend_slow(a, 1, k, zp, dst, 2, full, groups);
        extend_slow(a1, 1, k, zp, dst + 1, 2, full, groups);
    }
    dst[4 * groups] = BMM_END;
}

/* Q·Kᵀ right operand: key token j (contiguous) is column j, four keys a block. */
static void extend_keys(const int8_t *k, int32_t k_stride, int32_t t_k, int32_t d, int32_t zp,
                        uint32_t *b, int32_t groups)
{
    const uint32_t nzp = pack(-zp, -zp);
    const int32_t blocks = (t_k + 3) / 4, full = d / 4;
    for (int32_t n = 0; n < blocks; n++) {
        uint32_t *dst = b + 8 * groups * n;
        const int8_t *p = k + 4 * n * k_stride;
        int32_t g0 = 0;
        if (4 * n + 4 <= t_k) {
            for (; g0 < full; g0++, p += 4, dst += 8) {
                const uint32_t x0 = tf_read_u32(p), x1 = tf_read_u32(p + k_stride);
                const uint32_t x2 = tf_read_u32(p + 2 * k_stride);
                const uint32_t x3 = tf_read_u32(p + 3 * k_stride);
                dst[0] = tf_sxtab16(nzp, x0);
                dst[1] = tf_sxtab16(nzp, x1);
                dst[2] = tf_sxtab16(nzp, x2);
                dst[3] = tf_sxtab16(nzp, x3);
                dst[4] = tf_sxtab16_ror8(nzp, x0);
                dst[5] = tf_sxtab16_ror8(nzp, x1);
                dst[6] = tf_sxtab16_ror8(nzp, x2);
                dst[7] = tf_sxtab16_ror8(nzp, x3);
            }
        }
        if (g0 < groups) {
            uint32_t *blk = b + 8 * groups * n;
            for (int32_t j = 4 * n; j < 4 * n + 4; j++) { /* keys past t_k are zero */
                const int32_t valid = j < t_k;
                extend_slow(valid ? k + j * k_stride : k, 1, valid ? d : 0, zp, blk + j % 4, 4,
                            g0, groups);
            }
        }
    }
}

/* A·V right operand: channel c of v (strided over the tokens) is column c. Four tokens x
 * four channels at a time: SXTAB16 widens a token's channels (0, 2) and (1, 3), PKHBT/PKHTB
 * pair token 4g with 4g + 2 (step 2g) and 4g + 1 with 4g + 3 (step 2g + 1). */
static void extend_values(const int8_t *v, int32_t v_stride, int32_t t_k, int32_t d, int32_t zp,
                          uint32_t *b, int32_t groups)
{
    const uint32_t nzp = pack(-zp, -zp);
    const int32_t blocks = (d + 3) / 4, full_b = d / 4, full_g = t_k / 4;
    for (int32_t n = 0; n < blocks; n++) {
        uint32_t *dst = b + 8 * groups * n;
        const int8_t *src = v + 4 * n;
        int32_t g = 0;
        if (n < full_b) {
            for (; g < full_g; g++) {
                const int8_t *p = src + 4 * g * v_stride;
                for (int32_t odd = 0; odd < 2; odd++) { /* tokens (4g, 4g+2), (4g+1, 4g+3) */
                    const uint32_t x0 = tf_read_u32(p + odd * v_stride);
                    const uint32_t x2 = tf_read_u32(p + (odd + 2) * v_stride);
                    const uint32_t e0 = tf_sxtab16(nzp, x0), e2 = tf_sxtab16(nzp, x2);
                    const uint32_t o0 = tf_sxtab16_ror8(nzp, x0), o2 = tf_sxtab16_ror8(nzp, x2);
                    uint32_t *w = dst + 4 * (2 * g + odd);
                    w[0] = lo_lo(e0, e2);
                    w[1] = lo_lo(o0, o2);
                    w[2] = hi_hi(e0, e2);
                    w[3] = hi_hi(o0, o2);
                }
            }
        }
        for (int32_t l = 0; g < groups && l < 4; l++) { /* channels past d are zero */
            const int32_t valid = 4 * n + l < d;
            extend_slow(valid ? src + l : v, v_stride, valid ? t_k : 0, zp, dst + l, 4, g,
                        groups);
        }
    }
}

typedef struct {
    int32_t mult, shift, zp; /* tf_requantize + zp (the general path) */
    int32_t fast, c, sh;     /* fast: SMMLA(acc, mult, c) >> sh, see the header */
} rq_t;

static inline int8_t finish(int32_t acc, rq_t rq)
{
    if (rq.fast) {
        return (int8_t)tf_sat_s8(tf_smmla(acc, rq.mult, rq.c) >> rq.sh);
    }
    return (int8_t)tf_sat_s8(tf_requantize(acc, rq.mult, rq.shift) + rq.zp);
}

#if TF_ARM_DSP_ASM
/* tf_batch_matmul_s8_arm.S: every full column block for the left tile at a (the state,
 * copied behind its end marker, holds the rest): MACs, SMMLA + ASR + SSAT, row 1's stores
 * then row 0's (so o1 == o0 leaves row 0), next block; and one block's accumulators. */
void tf_bmm_tiles_fast(uint32_t *a, const uint32_t *b, int32_t groups, const bmm_state_t *init);
const int32_t *tf_bmm_tile_raw(uint32_t *a, const uint32_t *b);

static inline void tiles_fast(uint32_t *a, const uint32_t *b, int32_t groups,
                              const bmm_state_t *init)
{
    tf_bmm_tiles_fast(a, b, groups, init);
}

/* One block's accumulators {row 0 x columns 0-3, row 1 x columns 0-3}, left in the state. */
static inline const int32_t *tile_raw(uint32_t *a, const uint32_t *b, int32_t groups,
                                      int32_t *buf)
{
    (void)groups;
    (void)buf;
    return tf_bmm_tile_raw(a, b);
}

#else

static const int32_t *tile_raw(uint32_t *a, const uint32_t *b, int32_t groups, int32_t *acc)
{
    for (int32_t t = 0; t < 8; t++) {
        acc[t] = 0;
    }
    for (int32_t s = 0; s < 2 * groups; s++, a += 2, b += 4) {
        for (int32_t t = 0; t < 8; t++) {
            acc[t] = tf_smlad(a[t / 4], b[t % 4], acc[t]);
        }
    }
    return acc;
}

/* The assembly's contract in C: every block up to b_end, row 1 stored before row 0. */
static void tiles_fast(uint32_t *a, const uint32_t *b, int32_t groups, const bmm_state_t *init)
{
    bmm_state_t s = *init, *st = &s;
    int32_t buf[8];
    for (; b < st->b_end; b += 8 * groups, st->o0 += 4, st->o1 += 4) {
        const int32_t *acc = tile_raw(a, b, groups, buf);
        for (int32_t t = 7; t >= 0; t--) {
            const int32_t v = tf_smmla(acc[t], st->mult, st->c) >> st->sh;
            (t < 4 ? st->o0 : st->o1)[t % 4] = (int8_t)tf_sat_s8(v);
        }
    }
}

#endif

/* out[i][j] for the rows of a (contiguous along k, stride a_stride) times the extended
 * columns b: full column blocks through tiles_fast when the requantization allows, the rest
 * (and everything otherwise) block by block with finish(). */
static void product(const int8_t *a, int32_t a_stride, int32_t rows, int32_t k, int32_t a_zp,
                    const uint32_t *b, int32_t cols, int32_t groups, const rq_t *rq,
                    int8_t *out, int32_t out_stride, uint32_t *left)
{
    bmm_state_t st = {rq->mult, rq->c, rq->sh, 0, 0, b + 8 * groups * (cols / 4), left, 0};
    const rq_t q = *rq;
    const int32_t blocks = (cols + 3) / 4, full = q.fast ? cols / 4 : 0;
    int32_t buf[8];
    for (int32_t i = 0; i < rows; i += 2) {
        const int32_t two = rows - i > 1;
        int8_t *o0 = out + i * out_stride, *o1 = two ? o0 + out_stride : o0;
        extend_left(a + i * a_stride, a_stride, rows - i, k, a_zp, left, groups);
        if (full > 0) {
            st.o0 = o0;
            st.o1 = o1;
            tiles_fast(left, b, groups, &st);
        }
        for (int32_t n = full; n < blocks; n++) {
            /* Local copies: the int8 stores below would otherwise force reloads. */
            const int32_t *p = tile_raw(left, b + 8 * groups * n, groups, buf);
            const int32_t m = cols - 4 * n < 4 ? cols - 4 * n : 4;
            int32_t acc[8];
            memcpy(acc, p, sizeof acc);
            for (int32_t l = 0; l < m; l++) {
                o0[4 * n + l] = finish(acc[l], q);
            }
            for (int32_t l = 0; two && l < m; l++) {
                o1[4 * n + l] = finish(acc[4 + l], q);
            }
        }
    }
}

/* tf_requantize(x, M, s) = floor((x M + 2^(30-s)) / 2^(31-s)). For -24 <= s <= -2, with
 * sh = -1 - s in [1, 23] and c = (2 zp + 1) 2^(sh-1), that plus zp equals
 * (c + floor(x M / 2^32)) >> sh = SMMLA(x, M, c) >> sh exactly: the high word is within
 * +-2^30 and |c| < 2^30 for int8 zp, so the sum does not wrap. */
static rq_t make_rq(int32_t multiplier, int32_t shift, int32_t output_zp)
{
    rq_t rq = {multiplier, shift, output_zp, 0, 0, 0};
    /* TFLite's double rounding (an imported BATCH_MATMUL) has no such shortcut. */
    if (!TF_ROUNDING_TFLITE && shift >= -24 && shift <= -2 && output_zp >= -128 &&
        output_zp <= 127) {
        rq.fast = 1;
        rq.sh = -1 - shift;
        rq.c = (2 * output_zp + 1) * (int32_t)(1u << (rq.sh - 1));
    }
    return rq;
}

void tf_batch_matmul_qk_s8(const int8_t *q, int32_t q_stride, int32_t q_zp, const int8_t *k,
                           int32_t k_stride, int32_t k_zp, int32_t heads, int32_t t_q,
                           int32_t t_k, int32_t d, int32_t multiplier, int32_t shift,
                           int32_t output_zp, int8_t *scores, void *scratch)
{
    const int32_t groups = (int32_t)tf_bmm_groups(d);
    const rq_t rq = make_rq(multiplier, shift, output_zp);
    uint32_t *left = (uint32_t *)scratch, *b = left + 4 * groups + 10;
    for (int32_t h = 0; h < heads; h++) {
        extend_keys(k + h * d, k_stride, t_k, d, k_zp, b, groups);
        product(q + h * d, q_stride, t_q, d, q_zp, b, t_k, groups, &rq, scores + h * t_q * t_k,
                t_k, left);
    }
}

void tf_batch_matmul_av_s8(const int8_t *attn, int32_t attn_zp, const int8_t *v,
                           int32_t v_stride, int32_t v_zp, int32_t heads, int32_t t_q,
                           int32_t t_k, int32_t d, int32_t multiplier, int32_t shift,
                           int32_t output_zp, int8_t *output, int32_t out_stride,
                           void *scratch)
{
    const int32_t groups = (int32_t)tf_bmm_groups(t_k);
    const rq_t rq = make_rq(multiplier, shift, output_zp);
    uint32_t *left = (uint32_t *)scratch, *b = left + 4 * groups + 10;
    for (int32_t h = 0; h < heads; h++) {
        extend_values(v + h * d, v_stride, t_k, d, v_zp, b, groups);
        product(attn + h * t_q * t_k, t_k, t_q, t_k, attn_zp, b, d, groups, &rq, output + h * d,
                out_stride, left);
    }
}
