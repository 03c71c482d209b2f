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

#if TF_SFC_ASM
/* Assembly, below: one token's `groups` 4-byte groups widened into the B >= 4 layout. */
void tf_sfc_widen4(const int8_t *src, uint32_t *dst, int32_t groups);
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

/* -- widening the activations of a tile ------------------------------------------------- */

/* Four input bytes, or the k % 4 last ones zero-padded. */
static inline uint32_t read_tail(const int8_t *p, int32_t n)
{
    uint32_t v = 0;
    for (int32_t i = 0; i < n; i++) {
        v |= (uint32_t)(uint8_t)p[i] << (8 * i);
    }
    return v;
}

/* B >= 4: group g, token t at words 2 * (g * TILE + t) and +1. */
static void widen_groups(const int8_t *x, int32_t k, int32_t nt, uint32_t *xs)
{
    const int32_t full = k / 4, tail = k - 4 * full;
    for (int32_t t = 0; t < nt; t++) {
        const int8_t *row = x + t * k;
        uint32_t *dst = xs + 2 * t;
        tf_sparse_fc_s8_widen4(row, dst, full);
        dst += 2 * TF_SFC_TILE * full;
        if (tail) {
            const uint32_t v = read_tail(row + 4 * full, tail);
            dst[0] = tf_sxtb16(v);
            dst[1] = tf_sxtb16_ror8(v);
        }
    }
}

/* B == 2: pair p, token t at word p * TILE + t = (x[2p], x[2p+1]). */
static void widen_pairs(const int8_t *x, int32_t k, int32_t nt, uint32_t *xs)
{
    const int32_t full = k / 4, tail = k - 4 * full;
    for (int32_t t = 0; t < nt; t++) {
        const int8_t *row = x + t * k;
        uint32_t *dst = xs + t;
        for (int32_t q = 0; q <= full; q++) {
            if (q == full && tail == 0) {
                break;
            }
            const uint32_t v = q < full ? tf_read_u32(row + 4 * q) : read_tail(row + 4 * q, tail);
            const uint32_t e = tf_sxtb16(v), o = tf_sxtb16_ror8(v); /* (x0,x2), (x1,x3) */
            dst[0] = (e & 0xFFFFu) | (o << 16);
            if (q < full || tail > 2) {
                dst[TF_SFC_TILE] = (e >> 16) | (o & 0xFFFF0000u);
            }
            dst += 2 * TF_SFC_TILE;
        }
    }
}

/* B == 1: column c, token pair (t, t+1) at word c * TILE/2 + t/2 = (x[t][c], x[t+1][c]). */
static void widen_columns(const int8_t *x, int32_t k, int32_t nt, uint32_t *xs)
{
    const int32_t full = k / 4, tail = k - 4 * full;
    for (int32_t t = 0; t < nt; t += 2) {
        const int8_t *r0 = x + t * k, *r1 = t + 1 < nt ? r0 + k : 0;
        uint32_t *dst = xs + t / 2;
        for (int32_t q = 0; q <= full; q++) {
            const int32_t n = q < full ? 4 : tail;
            if (n == 0) {
                break;
            }
            const uint32_t v0 = n == 4 ? tf_read_u32(r0 + 4 * q) : read_tail(r0 + 4 * q, n);
            const uint32_t v1 = r1 == 0 ? 0u
                                : n == 4 ? tf_read_u32(r1 + 4 * q)
                                         : read_tail(r1 + 4 * q, n);
            const uint32_t e0 = tf_sxtb16(v0), o0 = tf_sxtb16_ror8(v0);
            const uint32_t e1 = tf_sxtb16(v1), o1 = tf_sxtb16_ror8(v1);
            const uint32_t words[4] = {
                (e0 & 0xFFFFu) | (e1 << 16),
                (o0 & 0xFFFFu) | (o1 << 16),
                (e0 >> 16) | (e1 & 0xFFFF0000u),
                (o0 >> 16) | (o1 & 0xFFFF0000u),
            };
            for (int32_t i = 0; i < n; i++) {
                dst[i * (TF_SFC_TILE / 2)] = words[i];
            }
            dst += 4 * (TF_SFC_TILE / 2);
        }
    }
}

static void widen(const tf_sfc_plan_t *pl, const int8_t *x, int32_t nt)
{
    if (pl->block >= 4) {
        widen_groups(x, pl->k, nt, pl->xs);
    } else if (pl->block == 2) {
        widen_pairs(x, pl->k, nt, pl->xs);
    } else {
        widen_columns(x, pl->k, nt, pl->xs);
    }
}

/* Words of the tile the widening writes; the rest (up to the padded k) stays zero. */
static int32_t widened_words(int32_t block, int32_t k)
{
    if (block >= 4) {
        return (k + 3) / 4 * 2 * TF_SFC_TILE;
    }
    return block == 2 ? (k + 1) / 2 * TF_SFC_TILE : k * (TF_SFC_TILE / 2);
}

/* -- plan ------------------------------------------------------------------------------- */

int32_t tf_sparse_fc_s8_plan(tf_sfc_plan_t *pl, const uint8_t *weights, const int32_t *bias,
                             const int32_t *multiplier, const int32_t *shift,
                             int32_t output_zp, int32_t act_min, int32_t act_max, int32_t k,
                             int32_t m, void *scratch)
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
    pl->xs = (uint32_t *)((uint8_t *)scratch + 16u * (uint32_t)m + 8u);
    /* Table: bias_0, then per row {M, rc, sh, bias of the next row}, a 0 after the last. */
    int32_t fast = 1, *e = pl->rq;
    *e++ = bias[0];
    for (int32_t j = 0; j < m; j++, e += 4) {
        const int32_t s = shift[j], sh = -1 - s;
        e[0] = multiplier[j];
        if (multiplier[j] == 0) { /* requantizes to 0: SMMLA gives rc, rc >> 1 == zp */
            e[1] = output_zp * 2;
            e[2] = 1;
        } else if (s <= -2 && s >= -22) {
            e[1] = (int32_t)((1u << (sh - 1)) + (uint32_t)output_zp * (1u << sh));
            e[2] = sh;
        } else {
            e[1] = 0;
            e[2] = 0;
            fast = 0;
        }
        e[3] = j + 1 < m ? bias[j + 1] : 0;
    }
    pl->fast = fast;
    const int32_t total = 4 * pl->kp; /* TILE * kp * 2 bytes in words */
    for (int32_t i = widened_words(block, k); i < total; i++) {
        pl->xs[i] = 0;
    }
    return 0;
}

/* -- the portable tile ------------------------------------------------------------------ */

static inline int8_t finish(const tf_sfc_plan_t *pl, int32_t j, int32_t acc)
{
    int32_t v;
    if (pl->fast) {
        const int32_t *e = pl->rq + 1 + 4 * j;
        const int32_t hi = (int32_t)(((int64_t)acc * e[0]) >> 32);
        v = (hi + e[1]) >> e[2];
    } else {
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
 * pairs (r10 also the gap), r12 the tile pointer s, lr the stream pointer p. The frame on the
 * stack holds what the loop has no register for: [sp] the table pointer (at row j's M),
 * [sp+4] the output pointer (token 0, row j), [sp+8] m, [sp+12] the row loop's address (the
 * shared requantization code returns there), [sp+16] stream, [sp+20] tile.
 * Row j: s = tile; the first block adds into the bias (in r7, loaded at the end of the
 * previous row) so no accumulator needs clearing; then per block:
 *   s += gap * bytes-per-block; weights; 8 tokens x (LDRD + 2 SMLAD) per 4 weights; next gap;
 *   loop while it is not 0xFF.
 * Then TBH on the row's shift into tf_sfc_rq<shift>: 8 x (SMMLA, SSAT #8 with ASR #shift),
 * 8 STRB strided by m, the next row's bias, back to the row loop. 0xFF at a row start is an
 * empty row (accumulators = bias), 0xFE the end of the matrix. The one-token routines
 * (tf_sfc_one_b*) walk the same stream with one accumulator and a variable ASR.
 */
#if TF_SFC_ASM

typedef struct {
    int32_t *rq;
    int8_t *out;
    int32_t m;
    int32_t unused;
    const uint8_t *stream;
    const uint32_t *xs;
} tf_sfc_tile_args_t;

void tf_sfc_tile_b1(const tf_sfc_tile_args_t *args);
void tf_sfc_tile_b2(const tf_sfc_tile_args_t *args);
void tf_sfc_tile_b4(const tf_sfc_tile_args_t *args);
void tf_sfc_tile_b8(const tf_sfc_tile_args_t *args);
void tf_sfc_tile_b16(const tf_sfc_tile_args_t *args);
/* One token: table, the token's output row, stream, the token's first tile byte. */
typedef void tf_sfc_one_fn(const int32_t *rq, int8_t *out, const uint8_t *stream,
                           const void *column);
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
    /* A tile routine: every row of the matrix against the 8 widened tokens. */
    "    .macro TF_SFC_TILE name, b\n"
    "    .balign 4\n"
    "    .global \\name\n"
    "    .type   \\name, %function\n"
    "    .thumb_func\n"
    "\\name:\n"
    "    push    {r4-r11, lr}\n"
    "    sub     sp, sp, #28\n"
    "    ldmia   r0, {r1-r6}\n"
    "    ldr     r7, [r1], #4\n" /* bias of row 0 */
    "    adr     r4, \\name\\()_row\n"
    "    orr     r4, r4, #1\n" /* where the requantization returns (Thumb) */
    "    stmia   sp, {r1-r6}\n"
    "    mov     lr, r5\n"
    "\\name\\()_row:\n"
    "    ldr     r12, [sp, #20]\n"
    "    ldrb    r10, [lr], #1\n"
    "    cmp     r10, #254\n"
    "    bhs     \\name\\()_special\n"
    "    TF_SFC_BLOCK \\b, 1\n"
    "    ldrb    r10, [lr], #1\n"
    "    cmp     r10, #255\n"
    "    beq     \\name\\()_requant\n"
    "\\name\\()_loop:\n"
    "    TF_SFC_BLOCK \\b, 0\n"
    "    ldrb    r10, [lr], #1\n"
    "    cmp     r10, #255\n"
    "    bne     \\name\\()_loop\n"
    "\\name\\()_requant:\n"
    "    ldmia   sp, {r8, r9}\n"
    "    ldmia   r8!, {r10, r11, r12}\n" /* M, rc, sh */
    "    tbh     [pc, r12, lsl #1]\n"     /* to the requantization for this shift */
    "\\name\\()_rqt:\n"
    "    .hword  (tf_sfc_rq1 - \\name\\()_rqt) / 2\n"
    "    .irp    s, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21\n"
    "    .hword  (tf_sfc_rq\\s - \\name\\()_rqt) / 2\n"
    "    .endr\n"
    "\\name\\()_special:\n"
    "    beq     \\name\\()_done\n" /* 0xFE (flags of cmp #254): end of the matrix */
    "    mov     r0, r7\n"              /* 0xFF: empty row, the outputs are the bias's */
    "    mov     r1, r7\n"
    "    mov     r2, r7\n"
    "    mov     r3, r7\n"
    "    mov     r4, r7\n"
    "    mov     r5, r7\n"
    "    mov     r6, r7\n"
    "    b       \\name\\()_requant\n"
    "\\name\\()_done:\n"
    "    add     sp, sp, #28\n"
    "    pop     {r4-r11, pc}\n"
    "    .size   \\name, . - \\name\n"
    "    .endm\n"
    /* Requantize the 8 accumulators with shift \sh (SMMLA, SSAT with ASR #sh), store them
     * m apart, load the next row's bias, return to the tile routine's row loop. */
    "    .macro TF_SFC_RQ sh\n"
    "tf_sfc_rq\\sh:\n"
    "    .irp t, 0, 1, 2, 3, 4, 5, 6, 7\n"
    "    smmla   r\\t, r\\t, r10, r11\n"
    "    .endr\n"
    "    .irp t, 0, 1, 2, 3, 4, 5, 6, 7\n"
    "    ssat    r\\t, #8, r\\t, asr #\\sh\n"
    "    .endr\n"
    "    ldr     r10, [sp, #8]\n"
    "    strb    r0, [r9]\n"
    "    strb    r1, [r9, r10]\n"
    "    add     r11, r9, r10, lsl #1\n"
    "    strb    r2, [r11]\n"
    "    strb    r3, [r11, r10]\n"
    "    add     r11, r11, r10, lsl #1\n"
    "    strb    r4, [r11]\n"
    "    strb    r5, [r11, r10]\n"
    "    add     r11, r11, r10, lsl #1\n"
    "    strb    r6, [r11]\n"
    "    strb    r7, [r11, r10]\n"
    "    add     r9, r9, #1\n"
    "    ldr     r7, [r8], #4\n" /* bias of the next row */
    "    stmia   sp, {r8, r9}\n"
    "    ldr     pc, [sp, #12]\n"
    "    .endm\n"
    /* One token (partial tiles): r4 the accumulator, r5 the token's column of the tile, r2 the
     * stream, r0 the table, r1 the token's output row. */
    "    .macro TF_SFC_ONE name, b\n"
    "    .balign 4\n"
    "    .global \\name\n"
    "    .type   \\name, %function\n"
    "    .thumb_func\n"
    "\\name:\n"
    "    push    {r4-r11, lr}\n"
    "    ldr     r4, [r0], #4\n"
    "\\name\\()_row:\n"
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
    "    ldmia   r0!, {r7, r8, r9}\n" /* M, rc, sh */
    "    smmla   r4, r4, r7, r8\n"
    "    asr     r4, r4, r9\n"
    "    ssat    r4, #8, r4\n"
    "    strb    r4, [r1], #1\n"
    "    ldr     r4, [r0], #4\n" /* bias of the next row */
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
    "    .irp    s, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21\n"
    "    TF_SFC_RQ \\s\n"
    "    .endr\n"
    /* tf_sfc_widen4(src, dst, groups): one token's groups of 4 bytes -> SXTB16 pairs at dst,
     * 64 bytes (8 tokens x 2 words) apart; 4 groups per iteration. */
    "    .balign 4\n"
    "    .global tf_sfc_widen4\n"
    "    .type   tf_sfc_widen4, %function\n"
    "    .thumb_func\n"
    "tf_sfc_widen4:\n"
    "    push    {r4-r7}\n"
    "    subs    r2, r2, #4\n"
    "    blt     2f\n"
    "1:\n"
    "    ldr     r3, [r0], #4\n"
    "    ldr     r4, [r0], #4\n"
    "    ldr     r5, [r0], #4\n"
    "    ldr     r6, [r0], #4\n"
    "    sxtb16  r7, r3\n"
    "    sxtb16  r3, r3, ror #8\n"
    "    strd    r7, r3, [r1], #64\n"
    "    sxtb16  r7, r4\n"
    "    sxtb16  r4, r4, ror #8\n"
    "    strd    r7, r4, [r1], #64\n"
    "    sxtb16  r7, r5\n"
    "    sxtb16  r5, r5, ror #8\n"
    "    strd    r7, r5, [r1], #64\n"
    "    sxtb16  r7, r6\n"
    "    sxtb16  r6, r6, ror #8\n"
    "    strd    r7, r6, [r1], #64\n"
    "    subs    r2, r2, #4\n"
    "    bge     1b\n"
    "2:\n"
    "    adds    r2, r2, #4\n"
    "    beq     4f\n"
    "3:\n"
    "    ldr     r3, [r0], #4\n"
    "    sxtb16  r7, r3\n"
    "    sxtb16  r3, r3, ror #8\n"
    "    strd    r7, r3, [r1], #64\n"
    "    subs    r2, r2, #1\n"
    "    bne     3b\n"
    "4:\n"
    "    pop     {r4-r7}\n"
    "    bx      lr\n"
    "    .size   tf_sfc_widen4, . - tf_sfc_widen4\n"
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
    const tf_sfc_tile_args_t args = {pl->rq, out, pl->m, 0, pl->stream, pl->xs};
    switch (pl->block) {
    case 1:
        tf_sfc_tile_b1(&args);
        break;
    case 2:
        tf_sfc_tile_b2(&args);
        break;
    case 4:
        tf_sfc_tile_b4(&args);
        break;
    case 8:
        tf_sfc_tile_b8(&args);
        break;
    default:
        tf_sfc_tile_b16(&args);
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
        fn(pl->rq, out + t * pl->m, pl->stream, (const uint8_t *)pl->xs + t * bytes);
    }
    clamp_rows(pl, out, nt);
}
#endif /* TF_SFC_ASM */

void tf_sparse_fc_s8_widen4(const int8_t *src, uint32_t *dst, int32_t groups)
{
#if TF_SFC_ASM
    if (groups > 0) {
        tf_sfc_widen4(src, dst, groups);
    }
#else
    for (int32_t g = 0; g < groups; g++, dst += 2 * TF_SFC_TILE) {
        const uint32_t v = tf_read_u32(src + 4 * g);
        dst[0] = tf_sxtb16(v);
        dst[1] = tf_sxtb16_ror8(v);
    }
#endif
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
    if (tf_sparse_fc_s8_plan(&pl, weights, bias, multiplier, shift, output_zp, act_min, act_max,
                             k, m, scratch) != 0) {
        return -1;
    }
    for (int32_t t = 0; t < n; t += TF_SFC_TILE) {
        const int32_t nt = n - t < TF_SFC_TILE ? n - t : TF_SFC_TILE;
        tf_sparse_fc_s8_tile(&pl, input + t * k, nt, output + t * m);
    }
    return 0;
}
