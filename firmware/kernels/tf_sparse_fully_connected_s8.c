/* tf_sparse_fully_connected_s8 - see the header for shapes, layouts, the format and the
 * formula. */
#include "tf_sparse_fully_connected_s8.h"

#include <string.h>

#include "tf_dsp.h"
#include "tf_math.h"

/* Table words: bias_0, kind_0, then per row j {M_j, rc_j, rq_j, bias_j+1, kind_j+1}. */
#define TAB_HEAD 2
#define TAB_ROW 5

#if TF_ARM_DSP_ASM
/* Assembly (tf_sparse_fully_connected_s8_arm.S). Widening: one token's `groups` 4-byte
 * groups (B >= 4, B == 2), a token pair's (B == 1), or 8 tokens' (k apart, B >= 4) into the
 * tile layouts. */
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

#if TF_ARM_DSP_ASM
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
#if TF_ARM_DSP_ASM
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
#if TF_ARM_DSP_ASM
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
#if TF_ARM_DSP_ASM
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
#if TF_ARM_DSP_ASM
            e[2] = tf_sfc_rq_table[sh - 1u];
#else
            e[2] = (int32_t)sh; /* the portable tile's shift */
#endif
            e[3] = bias[j + 1 < m ? j + 1 : j]; /* the last one is never used */
            e[4] = kind;
        }
    }
#if TF_ROUNDING_TFLITE
    /* The assembly's TFLite form (tf_sparse_fully_connected_s8_arm.S) adds up to 2^29 to
     * SRDHM(acc, M), |SRDHM| <= |acc|, in 32 bits, and has no dead channel (zp at any
     * shift): |bias| + k 128^2 < 2^30 and every multiplier live. */
    const int64_t room = ((int64_t)1 << 30) - (int64_t)k * 128 * 128;
    for (int32_t j = 0; j < m && fast; j++) {
        fast = multiplier[j] != 0 && (bias[j] < 0 ? -(int64_t)bias[j] : bias[j]) < room;
    }
#endif
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
#if !TF_ARM_DSP_ASM && !TF_ROUNDING_TFLITE /* on ARM a fast plan never gets here, and its
                                             * table holds code addresses */
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
 * tf_sparse_fully_connected_s8_arm.S: the tile routines (registers, the frame below on the
 * stack, the table-driven control flow) and the one-token ones. Declared here with the
 * structures they read.
 */
#if TF_ARM_DSP_ASM

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
#endif /* TF_ARM_DSP_ASM */

void tf_sparse_fc_s8_widen4(const int8_t *src, uint32_t *dst, int32_t groups)
{
    if (groups > 0) {
        WIDEN4(src, dst, groups);
    }
}

void tf_sparse_fc_s8_run(const tf_sfc_plan_t *pl, int32_t nt, int8_t *out)
{
#if TF_ARM_DSP_ASM
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
             !TF_ARM_DSP_ASM || n >= TF_SFC_TILE) != 0) {
        return -1;
    }
    for (int32_t t = 0; t < n; t += TF_SFC_TILE) {
        const int32_t nt = n - t < TF_SFC_TILE ? n - t : TF_SFC_TILE;
        tf_sparse_fc_s8_tile(&pl, input + t * k, nt, output + t * m);
    }
    return 0;
}
