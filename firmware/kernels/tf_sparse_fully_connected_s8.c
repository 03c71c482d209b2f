/* tf_sparse_fully_connected_s8 - see the header for shapes, layouts, the format and the
 * formula. */
#include "tf_sparse_fully_connected_s8.h"

#include <string.h>

#include "tf_dsp.h"
#include "tf_math.h"

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && defined(__thumb2__)
#define TF_SFC_ASM 1
#else
#define TF_SFC_ASM 0
#endif

/* Table words: bias_0, kind_0, then per row j {M_j, rc_j, rq_j, bias_j+1, kind_j+1}. */
#define TAB_HEAD 2
#define TAB_ROW 5

#if TF_SFC_ASM
/* Assembly, below. Widening: one token's `groups` 4-byte groups (B >= 4, B == 2), a token
 * pair's (B == 1), or 8 tokens' (k apart, B >= 4) into the tile layouts. */
void tf_sfc_widen4(const int8_t *src, uint32_t *dst, int32_t groups);
void tf_sfc_widen8(const int8_t *x, int32_t k, int32_t groups, uint32_t *dst);
void tf_sfc_widen2(const int8_t *src, uint32_t *dst, int32_t groups);
void tf_sfc_widen1(const int8_t *a, const int8_t *b, uint32_t *dst, int32_t groups);
/* Requantization code per shift (rq_j), and each tile routine's first row kind (probe). */
extern const int32_t tf_sfc_rq_table[21];
/* The plan's table rows 0..n-1 (n >= 1, bias: bias + 1); returns 0 if a row is not fast. */
typedef struct {
    int32_t *e;
    const int32_t *multiplier, *shift, *bias_next;
    int32_t n;
    uint32_t z2;
    int32_t kind;
    const int32_t *rq_table;
} tf_sfc_fill_t;
int32_t tf_sfc_fill(const tf_sfc_fill_t *args);
void tf_sfc_tile_b1_probe(void);
void tf_sfc_tile_b2_probe(void);
void tf_sfc_tile_b4_probe(void);
void tf_sfc_tile_b8_probe(void);
void tf_sfc_tile_b16_probe(void);
#endif

static uint32_t read_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

/* Words of widened tile per block: B >= 4: B/4 groups x 8 tokens x 2 words; B == 2: one word
 * per token; B == 1: one word per token pair. */
static inline int32_t words_per_block(int32_t block)
{
    return block >= 4 ? 4 * block : (block == 2 ? TF_SFC_TILE : TF_SFC_TILE / 2);
}

/* -- widening the activations of a tile ------------------------------------------------- *
 * Per 4-column group g (16 words of the tile), bytes x0..x3 of a token:
 *   B >= 4: token t at words 16g + 2t, +1: SXTB16 (x0, x2) and SXTB16 ROR 8 (x1, x3);
 *   B == 2: token t at words 16g + t, 16g + 8 + t: (x0, x1), (x2, x3) (pairs 2g, 2g + 1);
 *   B == 1: token pair (t, t+1) at words 16g + 4i + t/2: (x_i of t, x_i of t+1), i = 0..3.
 * The k % 4 last columns are widened from a zero-padded copy, like a whole group (the words
 * past k are zero either way). */

static void widen4_c(const int8_t *src, uint32_t *dst, int32_t groups)
{
    for (int32_t g = 0; g < groups; g++, dst += 2 * TF_SFC_TILE) {
        const uint32_t v = tf_read_u32(src + 4 * g);
        dst[0] = tf_sxtb16(v);
        dst[1] = tf_sxtb16_ror8(v);
    }
}

static void widen2_c(const int8_t *src, uint32_t *dst, int32_t groups)
{
    for (int32_t g = 0; g < groups; g++, dst += 2 * TF_SFC_TILE) {
        const uint32_t v = tf_read_u32(src + 4 * g);
        const uint32_t e = tf_sxtb16(v), o = tf_sxtb16_ror8(v); /* (x0,x2), (x1,x3) */
        dst[0] = (e & 0xFFFFu) | (o << 16);
        dst[TF_SFC_TILE] = (e >> 16) | (o & 0xFFFF0000u);
    }
}

static void widen1_c(const int8_t *a, const int8_t *b, uint32_t *dst, int32_t groups)
{
    for (int32_t g = 0; g < groups; g++, dst += 2 * TF_SFC_TILE) {
        const uint32_t va = tf_read_u32(a + 4 * g), vb = tf_read_u32(b + 4 * g);
        const uint32_t ea = tf_sxtb16(va), oa = tf_sxtb16_ror8(va);
        const uint32_t eb = tf_sxtb16(vb), ob = tf_sxtb16_ror8(vb);
        dst[0] = (ea & 0xFFFFu) | (eb << 16);
        dst[TF_SFC_TILE / 2] = (oa & 0xFFFFu) | (ob << 16);
        dst[TF_SFC_TILE] = (ea >> 16) | (eb & 0xFFFF0000u);
        dst[3 * TF_SFC_TILE / 2] = (oa >> 16) | (ob & 0xFFFF0000u);
    }
}

#if TF_SFC_ASM
#define WIDEN4 tf_sfc_widen4
#define WIDEN2 tf_sfc_widen2
#define WIDEN1 tf_sfc_widen1
#else
#define WIDEN4 widen4_c
#define WIDEN2 widen2_c
#define WIDEN1 widen1_c
#endif

/* The last k % 4 inputs of a row, zero-padded to a group. */
static inline const int8_t *tail_group(const int8_t *row, int32_t k, uint32_t *buf)
{
    const int32_t full = k & ~3;
    *buf = 0;
    memcpy(buf, row + full, (size_t)(k - full));
    return (const int8_t *)buf;
}

static void widen(const tf_sfc_plan_t *pl, const int8_t *x, int32_t nt)
{
    const int32_t k = pl->k, full = k / 4, tail = k % 4, block = pl->block;
    uint32_t *xs = pl->xs, buf, buf2;
    if (block >= 4) {
#if TF_SFC_ASM
        if (nt == TF_SFC_TILE && full > 0) {
            tf_sfc_widen8(x, k, full, xs);
        } else
#endif
        {
            for (int32_t t = 0; t < nt && full > 0; t++) {
                WIDEN4(x + t * k, xs + 2 * t, full);
            }
        }
        for (int32_t t = 0; t < nt && tail; t++) {
            widen4_c(tail_group(x + t * k, k, &buf), xs + 2 * TF_SFC_TILE * full + 2 * t, 1);
        }
    } else if (block == 2) {
        for (int32_t t = 0; t < nt; t++) {
            const int8_t *row = x + t * k;
            if (full > 0) {
                WIDEN2(row, xs + t, full);
            }
            if (tail) {
                widen2_c(tail_group(row, k, &buf), xs + 2 * TF_SFC_TILE * full + t, 1);
            }
        }
    } else {
        for (int32_t t = 0; t < nt; t += 2) {
            /* an odd last token is paired with itself: the second slot is never read */
            const int8_t *a = x + t * k, *b = t + 1 < nt ? a + k : a;
            if (full > 0) {
                WIDEN1(a, b, xs + t / 2, full);
            }
            if (tail) {
                widen1_c(tail_group(a, k, &buf), tail_group(b, k, &buf2),
                         xs + 2 * TF_SFC_TILE * full + t / 2, 1);
            }
        }
    }
}

/* Words of the tile the widening writes; the rest (up to the padded k) stays zero. */
static int32_t widened_words(int32_t k) { return (k + 3) / 4 * 2 * TF_SFC_TILE; }

/* -- plan ------------------------------------------------------------------------------- */

/* The plan; the table only when `table` (the one-token routines do without). */
static int32_t plan(tf_sfc_plan_t *pl, const uint8_t *weights, const int32_t *bias,
                    const int32_t *multiplier, const int32_t *shift, int32_t output_zp,
                    int32_t act_min, int32_t act_max, int32_t k, int32_t m, void *scratch,
                    int32_t table)
{
    const int32_t block = weights[5];
    if (memcmp(weights, "TFSB", 4) != 0 || weights[4] != TF_SFC_VERSION || weights[6] != 0 ||
        weights[7] != 0 || (block != 1 && block != 2 && block != 4 && block != 8 && block != 16) ||
        read_le32(weights + 8) != (uint32_t)m || read_le32(weights + 12) != (uint32_t)k ||
        k < 1 || m < 1) {
        return -1;
    }
    pl->stream = weights + TF_SFC_HEADER_BYTES;
    pl->bias = bias;
    pl->multiplier = multiplier;
    pl->shift = shift;
    pl->block = block;
    pl->k = k;
    pl->kp = tf_sparse_fc_s8_padded_k(k, block);
    pl->m = m;
    pl->output_zp = output_zp;
    pl->act_min = act_min;
    pl->act_max = act_max;
    pl->rq = (int32_t *)scratch;
    pl->xs = (uint32_t *)((uint8_t *)scratch + TF_SFC_TABLE_BYTES(m));
    /* The fast form: sh = -1 - shift in [1, 21], or [0, 21] for a dead channel (multiplier
     * 0, whose output is zp whatever the shift), zero point and range within int8. */
    int32_t fast = output_zp >= -128 && output_zp <= 127 && act_min >= -128 && act_max <= 127;
    if (!table) {
        for (int32_t j = 0; j < m; j++) {
            const uint32_t sh = (uint32_t)(-1 - shift[j]);
            fast &= sh - 1u <= 20u || (multiplier[j] == 0 && sh <= 21u);
        }
    } else {
        /* bias_0, kind_0, then per row j {M_j, rc_j, rq_j, bias_j+1, kind_j+1}.
         * rc = (2 zp + 1) 2^(sh - 1): its lowest set bit is sh - 1. */
        const uint32_t z2 = 2u * (uint32_t)output_zp + 1u;
#if TF_SFC_ASM
        static void (*const probes[5])(void) = {tf_sfc_tile_b1_probe, tf_sfc_tile_b2_probe,
                                                 tf_sfc_tile_b4_probe, tf_sfc_tile_b8_probe,
                                                 tf_sfc_tile_b16_probe};
        const int32_t kind = (int32_t)(uintptr_t)probes[__builtin_ctz((unsigned)block)];
#else
        const int32_t kind = 0;
#endif
        int32_t *e = pl->rq;
        e[0] = bias[0];
        e[1] = kind;
        e += TAB_HEAD;
        int32_t j = 0;
#if TF_SFC_ASM
        if (m > 1) {
            const tf_sfc_fill_t fill = {e, multiplier, shift, bias + 1, m - 1, z2, kind,
                                        tf_sfc_rq_table};
            fast &= tf_sfc_fill(&fill);
            j = m - 1;
            e += TAB_ROW * j;
        }
#endif
        for (; j < m; j++, e += TAB_ROW) {
            uint32_t sh = (uint32_t)(-1 - shift[j]);
            if (sh - 1u > 20u) { /* a dead channel's output is zp with any sh: take 1 */
                fast &= multiplier[j] == 0 && sh <= 21u;
                sh = 1;
            }
            e[0] = multiplier[j];
            e[1] = (int32_t)(z2 << (sh - 1u));
#if TF_SFC_ASM
            e[2] = tf_sfc_rq_table[sh - 1u];
#else
            e[2] = (int32_t)sh; /* the portable tile's shift */
#endif
            e[3] = bias[j + 1 < m ? j + 1 : j]; /* the last one is never used */
            e[4] = kind;
        }
    }
    pl->fast = fast;
    const int32_t total = 4 * pl->kp; /* TILE * kp * 2 bytes in words */
    for (int32_t i = widened_words(k); i < total; i++) {
        pl->xs[i] = 0;
    }
    return 0;
}

int32_t tf_sparse_fc_s8_plan(tf_sfc_plan_t *pl, const uint8_t *weights, const int32_t *bias,
                             const int32_t *multiplier, const int32_t *shift,
                             int32_t output_zp, int32_t act_min, int32_t act_max, int32_t k,
                             int32_t m, void *scratch)
{
    return plan(pl, weights, bias, multiplier, shift, output_zp, act_min, act_max, k, m,
                scratch, 1);
}

/* -- the portable tile ------------------------------------------------------------------ */

static inline int8_t finish(const tf_sfc_plan_t *pl, int32_t j, int32_t acc)
{
    int32_t v;
#if !TF_SFC_ASM /* on ARM a fast plan never gets here, and its table holds code addresses */
    if (pl->fast) {
        const int32_t *e = pl->rq + TAB_HEAD + TAB_ROW * j;
        const int32_t hi = (int32_t)(((int64_t)acc * e[0]) >> 32);
        v = (hi + e[1]) >> e[2];
    } else
#endif
    {
        v = tf_requantize(acc, pl->multiplier[j], pl->shift[j]) + pl->output_zp;
    }
    return (int8_t)tf_clamp(v, pl->act_min, pl->act_max);
}

static inline int32_t wrap_add(int32_t a, int32_t b)
{
    return (int32_t)((uint32_t)a + (uint32_t)b);
}

static void tile_c(const tf_sfc_plan_t *pl, int32_t nt, int8_t *out)
{
    const uint8_t *p = pl->stream;
    const int32_t block = pl->block, m = pl->m, step = words_per_block(block);
    for (int32_t j = 0; j < m; j++) {
        int32_t acc[TF_SFC_TILE];
        for (int32_t t = 0; t < TF_SFC_TILE; t++) {
            acc[t] = pl->bias[j];
        }
        const uint32_t *s = pl->xs;
        for (uint32_t gap = *p++; gap != TF_SFC_ROW_END; gap = *p++) {
            s += gap * (uint32_t)step;
            if (block >= 4) {
                for (int32_t q = 0; q < block / 4; q++, s += 2 * TF_SFC_TILE) {
                    const uint32_t w = tf_read_u32((const int8_t *)p + 4 * q);
                    const uint32_t we = tf_sxtb16(w), wo = tf_sxtb16_ror8(w);
                    for (int32_t t = 0; t < nt; t++) {
                        acc[t] = tf_smlad(s[2 * t + 1], wo, tf_smlad(s[2 * t], we, acc[t]));
                    }
                }
            } else if (block == 2) {
                const uint32_t we = (uint32_t)(uint16_t)(int16_t)(int8_t)p[0] |
                                    ((uint32_t)(uint16_t)(int16_t)(int8_t)p[1] << 16);
                for (int32_t t = 0; t < nt; t++) {
                    acc[t] = tf_smlad(s[t], we, acc[t]);
                }
                s += TF_SFC_TILE;
            } else {
                const int32_t w = (int8_t)p[0];
                for (int32_t t = 0; t < nt; t++) {
                    const uint32_t pair = s[t / 2];
                    const int32_t xv = (int16_t)(uint16_t)((t & 1) ? pair >> 16 : pair);
                    acc[t] = wrap_add(acc[t], xv * w);
                }
                s += TF_SFC_TILE / 2;
            }
            p += block;
        }
        for (int32_t t = 0; t < nt; t++) {
            out[t * m + j] = finish(pl, j, acc[t]);
        }
    }
}

/* -- the Cortex-M tile: all rows of 8 tokens in assembly ----------------------------------
 *
 * Registers: r0-r7 the 8 accumulators, r8/r9 the sign-extended weights, r10/r11 activation
 * pairs (r10 also the gap), r12 the tile pointer s, lr the stream pointer p. The frame on
 * the stack holds what the loop has no register for: [sp] pa, [sp+4] pb (outputs of tokens
 * 0 and 4, row j), [sp+8] m-1, [sp+12] 2m-1, [sp+16] 3m-1 (the next tokens' outputs after a
 * post-increment), [sp+20] the tile (reloaded into r12 with 3m-1 by the stores), [sp+24] q
 * (the table slot of row j: bias_j, kind_j, M_j, rc_j, rq_j).
 * Control flow is table driven, so no row pays for a test of the stream's markers:
 *   LDM q, {r7, pc}: the row's bias into r7 and a jump to its kind: row, empty or exit,
 *     all "probe" until the first tile has looked at the row's first byte;
 *   row: s = tile (r12); the first block adds into the bias (r7), so nothing is cleared; then per
 *     block: s += gap * bytes-per-block; weights; 8 tokens x (LDRD + 2 SMLAD) per 4 weights;
 *     next gap; loop while it is not 0xFF;
 *   LDM q!, {.., M, rc, pc}: the requantization copy for the row's shift (tf_sfc_rq<sh>):
 *     8 x (SMMLA, SSAT #8 with ASR #sh), 8 STRB m apart, then the next row's LDM q, {r7, pc};
 *   empty: the probe computed the row's output v once and made it the row's bias, so later
 *     tiles just store v 8 times (tf_sfc_same).
 * The one-token routines (tf_sfc_one_b*, partial tiles) walk the same stream with one
 * accumulator and read bias, multiplier and shift directly (no table needed).
 */
#if TF_SFC_ASM

typedef struct {
    int8_t *pa, *pb;
    int32_t d1, d2, d3;
    const uint32_t *tile;
    const int32_t *q;
} tf_sfc_frame_t;

void tf_sfc_tile_b1(const tf_sfc_frame_t *frame, const uint8_t *stream);
void tf_sfc_tile_b2(const tf_sfc_frame_t *frame, const uint8_t *stream);
void tf_sfc_tile_b4(const tf_sfc_frame_t *frame, const uint8_t *stream);
void tf_sfc_tile_b8(const tf_sfc_frame_t *frame, const uint8_t *stream);
void tf_sfc_tile_b16(const tf_sfc_frame_t *frame, const uint8_t *stream);
/* One token: its output row, the stream, its first tile byte, 2 zp + 1, the parameters. */
typedef struct {
    const int32_t *bias;
    int8_t *out;
    const uint8_t *stream;
    const void *column;
    int32_t z2;
    const int32_t *multiplier, *shift;
} tf_sfc_one_args_t;
typedef void tf_sfc_one_fn(const tf_sfc_one_args_t *args);
tf_sfc_one_fn tf_sfc_one_b1, tf_sfc_one_b2, tf_sfc_one_b4, tf_sfc_one_b8, tf_sfc_one_b16;

__asm__(
    "    .syntax unified\n"
    "    .thumb\n"
    /* One group of 4 weights (B >= 4) for the 8 tokens; first: add into the bias in r7. */
    "    .macro TF_SFC_G4 first\n"
    "    ldr     r9, [lr], #4\n"
    "    sxtb16  r8, r9\n"
    "    sxtb16  r9, r9, ror #8\n"
    "    .irp t, 0, 1, 2, 3, 4, 5, 6, 7\n"
    "    ldrd    r10, r11, [r12], #8\n"
    "    .if \\first\n"
    "    smlad   r\\t, r10, r8, r7\n"
    "    .else\n"
    "    smlad   r\\t, r10, r8, r\\t\n"
    "    .endif\n"
    "    smlad   r\\t, r11, r9, r\\t\n"
    "    .endr\n"
    "    .endm\n"
    /* B == 2: one word (w0, w1) against tokens a (r10) and b (r11). */
    "    .macro TF_SFC_P2 a, b, first\n"
    "    ldrd    r10, r11, [r12], #8\n"
    "    .if \\first\n"
    "    smlad   r\\a, r10, r8, r7\n"
    "    smlad   r\\b, r11, r8, r7\n"
    "    .else\n"
    "    smlad   r\\a, r10, r8, r\\a\n"
    "    smlad   r\\b, r11, r8, r\\b\n"
    "    .endif\n"
    "    .endm\n"
    /* B == 1: one weight against token pairs (a, b) in r10 and (c, d) in r11. */
    "    .macro TF_SFC_P1 a, b, c, d, first\n"
    "    ldrd    r10, r11, [r12], #8\n"
    "    .if \\first\n"
    "    smlabb  r\\a, r10, r8, r7\n"
    "    smlatb  r\\b, r10, r8, r7\n"
    "    smlabb  r\\c, r11, r8, r7\n"
    "    smlatb  r\\d, r11, r8, r7\n"
    "    .else\n"
    "    smlabb  r\\a, r10, r8, r\\a\n"
    "    smlatb  r\\b, r10, r8, r\\b\n"
    "    smlabb  r\\c, r11, r8, r\\c\n"
    "    smlatb  r\\d, r11, r8, r\\d\n"
    "    .endif\n"
    "    .endm\n"
    /* One block: skip the gap (in r10), then the block's MACs for the 8 tokens. */
    "    .macro TF_SFC_BLOCK b, first\n"
    "    .if \\b == 1\n"
    "    add     r12, r12, r10, lsl #4\n"
    "    ldrsb   r8, [lr], #1\n"
    "    TF_SFC_P1 0, 1, 2, 3, \\first\n"
    "    TF_SFC_P1 4, 5, 6, 7, \\first\n"
    "    .elseif \\b == 2\n"
    "    add     r12, r12, r10, lsl #5\n"
    "    ldrh    r9, [lr], #2\n"
    "    orr     r9, r9, r9, lsl #8\n"
    "    sxtb16  r8, r9\n"
    "    TF_SFC_P2 0, 1, \\first\n"
    "    TF_SFC_P2 2, 3, \\first\n"
    "    TF_SFC_P2 4, 5, \\first\n"
    "    TF_SFC_P2 6, 7, \\first\n"
    "    .elseif \\b == 4\n"
    "    add     r12, r12, r10, lsl #6\n"
    "    TF_SFC_G4 \\first\n"
    "    .elseif \\b == 8\n"
    "    add     r12, r12, r10, lsl #7\n"
    "    TF_SFC_G4 \\first\n"
    "    TF_SFC_G4 0\n"
    "    .else\n"
    "    add     r12, r12, r10, lsl #8\n"
    "    TF_SFC_G4 \\first\n"
    "    TF_SFC_G4 0\n"
    "    TF_SFC_G4 0\n"
    "    TF_SFC_G4 0\n"
    "    .endif\n"
    "    .endm\n"
    /* Store r7 (RA..) as the 8 tokens' outputs of the row: r9/r10 = pa/pb, the next slot's
     * q in r8 saved, then the next row's bias and kind. Shared tail of the row ends. */
    "    .macro TF_SFC_STORE a0, a1, a2, a3, a4, a5, a6, a7\n"
    "    ldmia   sp, {r9, r10, r11, r12}\n"
    "    strb    \\a0, [r9], #1\n"
    "    strb    \\a1, [r9, r11]\n"
    "    strb    \\a2, [r9, r12]\n"
    "    strb    \\a4, [r10], #1\n"
    "    strb    \\a5, [r10, r11]\n"
    "    strb    \\a6, [r10, r12]\n"
    "    ldrd    r11, r12, [sp, #16]\n" /* 3m - 1, and the tile for the next row */
    "    strb    \\a3, [r9, r11]\n"
    "    strb    \\a7, [r10, r11]\n"
    "    strd    r9, r10, [sp]\n"
    "    str     r8, [sp, #24]\n"
    "    ldmia   r8, {r7, pc}\n"
    "    .endm\n"
    /* A tile routine: every row of the matrix against the 8 widened tokens. */
    "    .macro TF_SFC_TILE name, b\n"
    "    .balign 4\n"
    "    .global \\name\n"
    "    .type   \\name, %function\n"
    "    .thumb_func\n"
    "\\name:\n"
    "    push    {r4-r11, lr}\n"
    "    sub     sp, sp, #28\n"
    "    ldmia   r0, {r2-r8}\n"
    "    stmia   sp, {r2-r8}\n" /* the frame */
    "    mov     r12, r7\n"     /* the tile */
    "    mov     lr, r1\n"
    "    ldmia   r8, {r7, pc}\n" /* bias_0, kind_0 */
    /* Probe (the first tile): which kind of row starts here, for the tiles after. */
    "    .global \\name\\()_probe\n"
    "    .type   \\name\\()_probe, %function\n"
    "    .thumb_func\n"
    "\\name\\()_probe:\n"
    "    ldrb    r10, [lr]\n"
    "    cmp     r10, #254\n"
    "    beq     \\name\\()_pexit\n"
    "    bhi     \\name\\()_pempty\n"
    "    adr.w   r10, \\name\\()_row\n"
    "    orr     r10, r10, #1\n"
    "    str     r10, [r8, #4]\n"
    "\\name\\()_row:\n" /* r12: the tile */
    "    ldrb    r10, [lr], #1\n"
    "    TF_SFC_BLOCK \\b, 1\n"
    "    ldrb    r10, [lr], #1\n"
    "    cmp     r10, #255\n"
    "    beq     \\name\\()_end\n"
    "\\name\\()_loop:\n"
    "    TF_SFC_BLOCK \\b, 0\n"
    "    ldrb    r10, [lr], #1\n"
    "    cmp     r10, #255\n"
    "    bne     \\name\\()_loop\n"
    "\\name\\()_end:\n"
    "    ldr     r8, [sp, #24]\n"
    "    ldmia   r8!, {r9, r10, r11, r12, pc}\n" /* bias, kind (done with), M, rc, rq */
    /* An empty row, first tile: v = its output becomes the row's bias, its kind empty. */
    "\\name\\()_pempty:\n"
    "    ldrd    r9, r10, [r8, #8]\n" /* M, rc */
    "    smmla   r9, r7, r9, r10\n"
    "    rbit    r11, r10\n"
    "    clz     r11, r11\n" /* sh - 1: rc = (2 zp + 1) 2^(sh - 1) */
    "    asr     r9, r9, r11\n"
    "    ssat    r7, #8, r9, asr #1\n"
    "    adr.w   r9, \\name\\()_empty\n"
    "    orr     r9, r9, #1\n"
    "    strd    r7, r9, [r8]\n"
    "\\name\\()_empty:\n"
    "    add     lr, lr, #1\n" /* its 0xFF */
    "    add     r8, r8, #20\n"
    "    b       tf_sfc_same\n"
    "\\name\\()_pexit:\n"
    "    adr.w   r10, \\name\\()_exit\n"
    "    orr     r10, r10, #1\n"
    "    str     r10, [r8, #4]\n"
    "\\name\\()_exit:\n"
    "    add     sp, sp, #28\n"
    "    pop     {r4-r11, pc}\n"
    "    .size   \\name, . - \\name\n"
    "    .endm\n"
    /* Requantize the 8 accumulators with shift \sh (M in r11, rc in r12; SMMLA, SSAT with
     * ASR #sh), store them, go on to the next row. r8: the next row's slot. */
    "    .macro TF_SFC_RQ sh\n"
    "tf_sfc_rq\\sh:\n"
    "    .irp t, 0, 1, 2, 3, 4, 5, 6, 7\n"
    "    smmla   r\\t, r\\t, r11, r12\n"
    "    .endr\n"
    "    .irp t, 0, 1, 2, 3, 4, 5, 6, 7\n"
    "    ssat    r\\t, #8, r\\t, asr #\\sh\n"
    "    .endr\n"
    "    TF_SFC_STORE r0, r1, r2, r3, r4, r5, r6, r7\n"
    "    .endm\n"
    /* One token (partial tiles): r4 the accumulator, r5 the token's column of the tile, r2 the
     * stream, r1 the token's output row; r0, r12, lr: bias, multiplier, shift; r9: 2 zp + 1.
     * Per row: SMMLA with rc = ((2 zp + 1) << sh) >> 1, ASR #sh, SSAT (sh = -1 - shift in
     * [0, 21]: a dead channel, multiplier 0 and shift 0, gives zp too). */
    "    .macro TF_SFC_ONE name, b\n"
    "    .balign 4\n"
    "    .global \\name\n"
    "    .type   \\name, %function\n"
    "    .thumb_func\n"
    "\\name:\n"
    "    push    {r4-r11, lr}\n"
    "    ldmia   r0, {r0-r3, r9, r12, lr}\n" /* bias, out, stream, column, z2, mult, shift */
    "\\name\\()_row:\n"
    "    ldr     r4, [r0], #4\n"
    "    mov     r5, r3\n"
    "    ldrb    r6, [r2], #1\n"
    "    cmp     r6, #254\n"
    "    bhs     \\name\\()_special\n"
    "\\name\\()_loop:\n"
    "    .if \\b == 1\n"
    "    add     r5, r5, r6, lsl #4\n"
    "    ldrsb   r7, [r2], #1\n"
    "    ldrsh   r10, [r5], #16\n"
    "    smlabb  r4, r10, r7, r4\n"
    "    .elseif \\b == 2\n"
    "    add     r5, r5, r6, lsl #5\n"
    "    ldrh    r7, [r2], #2\n"
    "    orr     r7, r7, r7, lsl #8\n"
    "    sxtb16  r7, r7\n"
    "    ldr     r10, [r5], #32\n"
    "    smlad   r4, r10, r7, r4\n"
    "    .else\n"
    "    .if \\b == 4\n"
    "    add     r5, r5, r6, lsl #6\n"
    "    .elseif \\b == 8\n"
    "    add     r5, r5, r6, lsl #7\n"
    "    .else\n"
    "    add     r5, r5, r6, lsl #8\n"
    "    .endif\n"
    "    .rept   \\b / 4\n"
    "    ldr     r7, [r2], #4\n"
    "    sxtb16  r8, r7\n"
    "    sxtb16  r7, r7, ror #8\n"
    "    ldrd    r10, r11, [r5], #64\n"
    "    smlad   r4, r10, r8, r4\n"
    "    smlad   r4, r11, r7, r4\n"
    "    .endr\n"
    "    .endif\n"
    "    ldrb    r6, [r2], #1\n"
    "    cmp     r6, #255\n"
    "    bne     \\name\\()_loop\n"
    "\\name\\()_requant:\n"
    "    ldr     r7, [r12], #4\n"
    "    ldr     r8, [lr], #4\n"
    "    mvn     r8, r8\n"              /* sh */
    "    lsl     r6, r9, r8\n"
    "    asr     r6, r6, #1\n"          /* rc */
    "    smmla   r4, r4, r7, r6\n"
    "    asr     r4, r4, r8\n"
    "    ssat    r4, #8, r4\n"
    "    strb    r4, [r1], #1\n"
    "    b       \\name\\()_row\n"
    "\\name\\()_special:\n"
    "    bne     \\name\\()_requant\n" /* 0xFF: empty row, the output is the bias's */
    "    pop     {r4-r11, pc}\n"       /* 0xFE: end of the matrix */
    "    .size   \\name, . - \\name\n"
    "    .endm\n"
    "    .pushsection .text.tf_sfc_tiles,\"ax\",%progbits\n"
    "    TF_SFC_TILE tf_sfc_tile_b1, 1\n"
    "    TF_SFC_TILE tf_sfc_tile_b2, 2\n"
    "    TF_SFC_TILE tf_sfc_tile_b4, 4\n"
    "    TF_SFC_TILE tf_sfc_tile_b8, 8\n"
    "    TF_SFC_TILE tf_sfc_tile_b16, 16\n"
    "    TF_SFC_ONE tf_sfc_one_b1, 1\n"
    "    TF_SFC_ONE tf_sfc_one_b2, 2\n"
    "    TF_SFC_ONE tf_sfc_one_b4, 4\n"
    "    TF_SFC_ONE tf_sfc_one_b8, 8\n"
    "    TF_SFC_ONE tf_sfc_one_b16, 16\n"
    /* An empty row after the first tile: its output v (r7) 8 times; r8 the next slot. */
    "tf_sfc_same:\n"
    "    TF_SFC_STORE r7, r7, r7, r7, r7, r7, r7, r7\n"
    "    .irp    s, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21\n"
    "    TF_SFC_RQ \\s\n"
    "    .endr\n"
    /* tf_sfc_fill: the table rows, 12 instructions a row (see plan()). */
    "    .balign 4\n"
    "    .global tf_sfc_fill\n"
    "    .type   tf_sfc_fill, %function\n"
    "    .thumb_func\n"
    "tf_sfc_fill:\n"
    "    push    {r4-r11, lr}\n"
    "    ldmia   r0, {r0-r3, r6, r11, r12, lr}\n"
    "    mov     r5, r11\n"             /* z2; r11: kind, r12: rq table, r6: rows */
    "    mov     r11, r12\n"
    "    mov     r12, lr\n"
    "    mov     lr, #1\n"              /* fast */
    ".Lfill_row:\n"
    "    ldr     r7, [r1], #4\n"        /* M */
    "    ldr     r4, [r2], #4\n"
    "    ldr     r10, [r3], #4\n"       /* next bias */
    "    mvn     r4, r4\n"
    "    sub     r4, r4, #1\n"          /* sh - 1 */
    "    cmp     r4, #20\n"
    "    bhi     .Lfill_odd\n"
    ".Lfill_put:\n"
    "    lsl     r8, r5, r4\n"          /* rc */
    "    ldr     r9, [r12, r4, lsl #2]\n" /* rq */
    "    stmia   r0!, {r7-r11}\n"
    "    subs    r6, r6, #1\n"
    "    bne     .Lfill_row\n"
    "    mov     r0, lr\n"
    "    pop     {r4-r11, pc}\n"
    ".Lfill_odd:\n"                     /* only a dead channel (M = 0, sh <= 21) stays fast */
    "    cmn     r4, #1\n"
    "    it      ne\n"
    "    movne   lr, #0\n"
    "    cmp     r7, #0\n"
    "    it      ne\n"
    "    movne   lr, #0\n"
    "    movs    r4, #0\n"
    "    b       .Lfill_put\n"
    "    .size   tf_sfc_fill, . - tf_sfc_fill\n"
    /* tf_sfc_widen4(src, dst, groups > 0): one token's groups of 4 bytes -> SXTB16 pairs at
     * dst, 64 bytes (8 tokens x 2 words) apart; 8 groups per iteration (one LDM when src is
     * aligned, as the conv's NHWC rows are), then one at a time. */
    "    .macro TF_SFC_W4 r\n"
    "    sxtb16  r12, \\r\n"
    "    sxtb16  \\r, \\r, ror #8\n"
    "    strd    r12, \\r, [r1], #64\n"
    "    .endm\n"
    "    .balign 4\n"
    "    .global tf_sfc_widen4\n"
    "    .type   tf_sfc_widen4, %function\n"
    "    .thumb_func\n"
    "tf_sfc_widen4:\n"
    "    push    {r4-r10}\n"
    "    subs    r2, r2, #8\n"
    "    blt     .Lw4_rest\n"
    "    tst     r0, #3\n"
    "    bne     .Lw4_unaligned\n"
    ".Lw4_aligned:\n"
    "    ldmia   r0!, {r3-r10}\n"
    "    .irp    r, r3, r4, r5, r6, r7, r8, r9, r10\n"
    "    TF_SFC_W4 \\r\n"
    "    .endr\n"
    "    subs    r2, r2, #8\n"
    "    bge     .Lw4_aligned\n"
    "    b       .Lw4_rest\n"
    ".Lw4_unaligned:\n"
    "    .irp    r, r3, r4, r5, r6, r7, r8, r9, r10\n"
    "    ldr     \\r, [r0], #4\n"
    "    .endr\n"
    "    .irp    r, r3, r4, r5, r6, r7, r8, r9, r10\n"
    "    TF_SFC_W4 \\r\n"
    "    .endr\n"
    "    subs    r2, r2, #8\n"
    "    bge     .Lw4_unaligned\n"
    ".Lw4_rest:\n"
    "    adds    r2, r2, #8\n"
    "    beq     .Lw4_done\n"
    ".Lw4_one:\n"
    "    ldr     r3, [r0], #4\n"
    "    TF_SFC_W4 r3\n"
    "    subs    r2, r2, #1\n"
    "    bne     .Lw4_one\n"
    ".Lw4_done:\n"
    "    pop     {r4-r10}\n"
    "    bx      lr\n"
    "    .size   tf_sfc_widen4, . - tf_sfc_widen4\n"
    /* tf_sfc_widen8(x, k, groups > 0, dst): 8 tokens k apart, B >= 4 layout; per group the
     * tokens' 16 words are contiguous: per two tokens 2 LDR, 4 SXTB16, one STM. */
    "    .balign 4\n"
    "    .global tf_sfc_widen8\n"
    "    .type   tf_sfc_widen8, %function\n"
    "    .thumb_func\n"
    "tf_sfc_widen8:\n"
    "    push    {r4-r10}\n"
    "    mov     r4, r0\n"                /* token 0 (tokens 2, 4, 6: r5-r7; odd: +k) */
    "    add     r5, r0, r1, lsl #1\n"
    "    add     r6, r5, r1, lsl #1\n"
    "    add     r7, r6, r1, lsl #1\n"
    "    mov     r8, r1\n"
    "    mov     r9, r3\n"
    "    add     r10, r0, r2, lsl #2\n"
    ".Lw8_loop:\n"
    "    .irp    b, 4, 5, 6, 7\n"
    "    ldr     r3, [r\\b, r8]\n"
    "    ldr     r1, [r\\b], #4\n"
    "    sxtb16  r0, r1\n"
    "    sxtb16  r1, r1, ror #8\n"
    "    sxtb16  r2, r3\n"
    "    sxtb16  r3, r3, ror #8\n"
    "    stmia   r9!, {r0-r3}\n"
    "    .endr\n"
    "    cmp     r4, r10\n"
    "    bne     .Lw8_loop\n"
    "    pop     {r4-r10}\n"
    "    bx      lr\n"
    "    .size   tf_sfc_widen8, . - tf_sfc_widen8\n"
    /* tf_sfc_widen2(src, dst, groups > 0): one token, B == 2 layout: (x0, x1) at dst and
     * (x2, x3) 32 bytes on (SXTB16 both ways, PKHBT, PKHTB), 64 bytes per group. */
    "    .balign 4\n"
    "    .global tf_sfc_widen2\n"
    "    .type   tf_sfc_widen2, %function\n"
    "    .thumb_func\n"
    "tf_sfc_widen2:\n"
    "    push    {r4}\n"
    ".Lw2_loop:\n"
    "    ldr     r3, [r0], #4\n"
    "    sxtb16  r12, r3, ror #8\n"      /* (x1, x3) */
    "    sxtb16  r3, r3\n"               /* (x0, x2) */
    "    pkhbt   r4, r3, r12, lsl #16\n" /* (x0, x1) */
    "    pkhtb   r12, r12, r3, asr #16\n" /* (x2, x3) */
    "    str     r12, [r1, #32]\n"
    "    str     r4, [r1], #64\n"
    "    subs    r2, r2, #1\n"
    "    bne     .Lw2_loop\n"
    "    pop     {r4}\n"
    "    bx      lr\n"
    "    .size   tf_sfc_widen2, . - tf_sfc_widen2\n"
    /* tf_sfc_widen1(a, b, dst, groups > 0): tokens a and b, B == 1 layout: column i of a
     * group, (a_i, b_i), at dst + 16 i, 64 bytes per group. */
    "    .balign 4\n"
    "    .global tf_sfc_widen1\n"
    "    .type   tf_sfc_widen1, %function\n"
    "    .thumb_func\n"
    "tf_sfc_widen1:\n"
    "    push    {r4-r7}\n"
    ".Lw1_loop:\n"
    "    ldr     r4, [r0], #4\n"
    "    ldr     r5, [r1], #4\n"
    "    sxtb16  r6, r4, ror #8\n"       /* (a1, a3) */
    "    sxtb16  r4, r4\n"               /* (a0, a2) */
    "    sxtb16  r7, r5, ror #8\n"       /* (b1, b3) */
    "    sxtb16  r5, r5\n"               /* (b0, b2) */
    "    pkhtb   r12, r5, r4, asr #16\n" /* (a2, b2) */
    "    pkhbt   r4, r4, r5, lsl #16\n"  /* (a0, b0) */
    "    pkhtb   r5, r7, r6, asr #16\n"  /* (a3, b3) */
    "    pkhbt   r6, r6, r7, lsl #16\n"  /* (a1, b1) */
    "    str     r5, [r2, #48]\n"
    "    str     r12, [r2, #32]\n"
    "    str     r6, [r2, #16]\n"
    "    str     r4, [r2], #64\n"
    "    subs    r3, r3, #1\n"
    "    bne     .Lw1_loop\n"
    "    pop     {r4-r7}\n"
    "    bx      lr\n"
    "    .size   tf_sfc_widen1, . - tf_sfc_widen1\n"
    "    .popsection\n"
    /* rq_j of the table: the requantization code per shift (Thumb: + 1). */
    "    .pushsection .rodata.tf_sfc_rq_table,\"a\",%progbits\n"
    "    .balign 4\n"
    "    .global tf_sfc_rq_table\n"
    "tf_sfc_rq_table:\n"
    "    .irp    s, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21\n"
    "    .word   tf_sfc_rq\\s + 1\n"
    "    .endr\n"
    "    .popsection\n");

/* The assembly saturates to int8 only; a narrower activation range is applied after. */
static void clamp_rows(const tf_sfc_plan_t *pl, int8_t *out, int32_t nt)
{
    if (pl->act_min > -128 || pl->act_max < 127) {
        const int32_t total = nt * pl->m;
        for (int32_t i = 0; i < total; i++) {
            out[i] = (int8_t)tf_clamp(out[i], pl->act_min, pl->act_max);
        }
    }
}

static void tile_asm(const tf_sfc_plan_t *pl, int8_t *out)
{
    const int32_t m = pl->m;
    const tf_sfc_frame_t frame = {out, out + 4 * m, m - 1, 2 * m - 1, 3 * m - 1, pl->xs, pl->rq};
    switch (pl->block) {
    case 1:
        tf_sfc_tile_b1(&frame, pl->stream);
        break;
    case 2:
        tf_sfc_tile_b2(&frame, pl->stream);
        break;
    case 4:
        tf_sfc_tile_b4(&frame, pl->stream);
        break;
    case 8:
        tf_sfc_tile_b8(&frame, pl->stream);
        break;
    default:
        tf_sfc_tile_b16(&frame, pl->stream);
        break;
    }
    clamp_rows(pl, out, TF_SFC_TILE);
}

/* nt < 8 tokens, one at a time. Token t's words in the tile start at byte 8t (B >= 4),
 * 4t (B == 2) or 2t (B == 1, a halfword), the column strides being those of the tile. */
static void tokens_asm(const tf_sfc_plan_t *pl, int32_t nt, int8_t *out)
{
    tf_sfc_one_fn *fn = pl->block == 1   ? tf_sfc_one_b1
                        : pl->block == 2 ? tf_sfc_one_b2
                        : pl->block == 4 ? tf_sfc_one_b4
                        : pl->block == 8 ? tf_sfc_one_b8
                                         : tf_sfc_one_b16;
    const int32_t bytes = pl->block >= 4 ? 8 : (pl->block == 2 ? 4 : 2);
    for (int32_t t = 0; t < nt; t++) {
        const tf_sfc_one_args_t args = {pl->bias,
                                        out + t * pl->m,
                                        pl->stream,
                                        (const uint8_t *)pl->xs + t * bytes,
                                        2 * pl->output_zp + 1,
                                        pl->multiplier,
                                        pl->shift};
        fn(&args);
    }
    clamp_rows(pl, out, nt);
}
#endif /* TF_SFC_ASM */

void tf_sparse_fc_s8_widen4(const int8_t *src, uint32_t *dst, int32_t groups)
{
    if (groups > 0) {
        WIDEN4(src, dst, groups);
    }
}

void tf_sparse_fc_s8_run(const tf_sfc_plan_t *pl, int32_t nt, int8_t *out)
{
#if TF_SFC_ASM
    if (pl->fast) {
        if (nt == TF_SFC_TILE) {
            tile_asm(pl, out);
        } else {
            tokens_asm(pl, nt, out);
        }
        return;
    }
#endif
    tile_c(pl, nt, out);
}

void tf_sparse_fc_s8_tile(const tf_sfc_plan_t *pl, const int8_t *x, int32_t nt, int8_t *out)
{
    widen(pl, x, nt);
    tf_sparse_fc_s8_run(pl, nt, out);
}

int32_t tf_sparse_fully_connected_s8(const int8_t *input, const uint8_t *weights,
                                     const int32_t *bias, const int32_t *multiplier,
                                     const int32_t *shift, int32_t output_zp, int32_t act_min,
                                     int32_t act_max, int32_t n, int32_t k, int32_t m,
                                     int8_t *output, void *scratch)
{
    tf_sfc_plan_t pl;
    /* Only 8-token tiles use the table on ARM (the portable tile always does). */
    if (plan(&pl, weights, bias, multiplier, shift, output_zp, act_min, act_max, k, m, scratch,
             !TF_SFC_ASM || n >= TF_SFC_TILE) != 0) {
        return -1;
    }
    for (int32_t t = 0; t < n; t += TF_SFC_TILE) {
        const int32_t nt = n - t < TF_SFC_TILE ? n - t : TF_SFC_TILE;
        tf_sparse_fc_s8_tile(&pl, input + t * k, nt, output + t * m);
    }
    return 0;
}
