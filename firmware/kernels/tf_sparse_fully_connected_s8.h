/*
 * tf_sparse_fully_connected_s8 - int8 fully connected layer with block-sparse weights.
 *
 * Same integer semantics as tf_fully_connected_s8 on the decoded weights (pruned blocks are
 * zeros), bit for bit. Shapes and layouts (row-major):
 *   input   [n][k]  int8 (zero point folded into the bias)
 *   weights the block-rle blob of the [m][k] weights, header included (engine/sparse_format.py;
 *           an aligned const uint8_t array in flash), summarised:
 *             28-byte header: "TFSB", u8 version 1, u8 B, u16 0, u32 rows (= m),
 *                             u32 cols (= k), u32 nnz, u32 entries, u32 crc32
 *             stream: per row, entries [gap u8][B int8 values] then 0xFF; after the last
 *                     row 0xFE. gap = zero blocks skipped since the previous entry (0..253);
 *                     longer runs use filler entries (gap 253, B zeros). K % B != 0: the
 *                     last block of a row is zero-padded to B values.
 *   bias    [m]     int32, *folded*: bias[j] - input_zp * sum_i weights[j][i]
 *   multiplier, shift [m]  per-channel requantization (see tf_math.h)
 *   output  [n][m]  int8
 *   scratch tf_sparse_fully_connected_s8_scratch_bytes(k, m, B) bytes, 8-byte aligned
 *   returns 0, or -1 (output untouched) when the blob's header is not a version-1 block-rle
 *   header of an m x k matrix.
 *
 *   out[t][j] = clamp(tf_requantize(sum_i input[t][i] * weights[j][i] + bias[j],
 *                                   multiplier[j], shift[j]) + output_zp, act_min, act_max)
 *
 * How it runs: tokens are taken TF_SFC_TILE (8) at a time. Their activations are widened
 * once into scratch as int16 pairs, token-interleaved, in the layout the block size wants
 * (per 4-column group g, 16 words; assembly: one STM per two tokens, or PKHBT/PKHTB):
 *   B >= 4: per 4-column group g, per token t: two words (x[4g], x[4g+2]), (x[4g+1], x[4g+3])
 *           (SXTB16 and SXTB16 ROR 8 of the 4 bytes), so a B-block is B/4 groups;
 *   B == 2: per column pair p, per token t: one word (x[2p], x[2p+1]);
 *   B == 1: per column c, per token pair: one word (x[t][c], x[t+1][c]).
 * Then every row of the stream is run against the tile: each weight block is loaded and
 * sign-extended once and feeds the 8 tokens' accumulators (per 4 weights: LDR, 2 SXTB16,
 * 8 LDRD, 16 SMLAD = 32 MACs in 31 instructions with the gap handling), a block's address
 * being the previous one's end plus gap blocks. On Cortex-M with DSP the whole tile is one
 * assembly routine per B (tf_sparse_fully_connected_s8_arm.S) that keeps the 8 accumulators
 * in registers (the first block of a row adds into the bias, so nothing is cleared) and is
 * driven by a table in scratch:
 *   table = bias_0, kind_0, then per row j: M_j, rc_j, rq_j, bias_j+1, kind_j+1
 * One LDM of a row's {M, rc, rq} jumps (rq: the copy of the requantization specialised for
 * the row's shift, so that shift and saturation are one SSAT) and one LDM of the next
 * {bias, kind} jumps to how that row starts: kind is "probe" until the first tile has read
 * the row's first byte, then "row", "empty" (its output, computed once, is stored: 16
 * instructions for 8 outputs) or "exit" (0xFE), so no row tests the stream's markers.
 * A row with entries costs 32 instructions per tile besides its blocks: 8 x (SMMLA, SSAT,
 * STRB) and 8 for the table and the output pointers. Leftover tokens (n % 8) run through
 * one-token assembly routines over the same widened layout, which read bias, multiplier and
 * shift directly (a call with fewer than 8 tokens builds no table). Both need every row's
 * shift in [-22, -2] (or multiplier 0 and shift in [-22, 0]: a dead channel), zero point
 * and activation range within int8, which real layers have; otherwise the portable C path
 * runs (it is also the host build):
 *   tf_requantize(acc, M, s) + zp == (SMMLA(acc, M, rc) >> (-1 - s))
 *   with rc = 2^(-2 - s) + zp * 2^(-1 - s),
 * exact for s <= -2 (single rounding, see tf_math.h), without overflow for s >= -22. The
 * assembly saturates to int8; a narrower act_min / act_max is applied to the tile after.
 *
 * Instructions under QEMU (results/kernels.csv): 64 tokens x 96 -> 192, B = 4: 1.20 M at 0 %
 * block sparsity (dense tf_fully_connected_s8: 0.997 M), 172 k at 90 % (5.8x), 110 k at 95 %.
 *
 * The lower-level plan/tile API lets tf_sparse_conv2d_s8 run gathered patches as tokens.
 */
#ifndef TF_SPARSE_FULLY_CONNECTED_S8_H
#define TF_SPARSE_FULLY_CONNECTED_S8_H

#include <stdint.h>

#define TF_SFC_TILE 8
#define TF_SFC_HEADER_BYTES 28
#define TF_SFC_VERSION 1
#define TF_SFC_ROW_END 0xFFu
#define TF_SFC_MATRIX_END 0xFEu

/* Columns the widened tile holds: k rounded up to the block size (and to 4). */
static inline int32_t tf_sparse_fc_s8_padded_k(int32_t k, int32_t block)
{
    const int32_t q = block < 4 ? 4 : block;
    return (k + q - 1) / q * q;
}

/* Bytes of the row table in scratch: 2 words, then 5 per row (see above). */
#define TF_SFC_TABLE_BYTES(m) (20u * (uint32_t)(m) + 8u)

/* Scratch: the table, then one widened tile. */
static inline uint32_t tf_sparse_fully_connected_s8_scratch_bytes(int32_t k, int32_t m,
                                                                  int32_t block)
{
    return TF_SFC_TABLE_BYTES(m) +
           (uint32_t)TF_SFC_TILE * 2u * (uint32_t)tf_sparse_fc_s8_padded_k(k, block);
}

int32_t tf_sparse_fully_connected_s8(const int8_t *input, const uint8_t *weights,
                                     const int32_t *bias, const int32_t *multiplier,
                                     const int32_t *shift, int32_t output_zp, int32_t act_min,
                                     int32_t act_max, int32_t n, int32_t k, int32_t m,
                                     int8_t *output, void *scratch);

/* -- plan / tile: one layer call split in two, for kernels that feed it tokens ---------- */

typedef struct {
    const uint8_t *stream; /* the blob's stream (after the header) */
    const int32_t *bias, *multiplier, *shift;
    int32_t *rq;  /* the row table in scratch (above; built only for 8-token tiles) */
    uint32_t *xs; /* widened tile in scratch */
    int32_t block, k, kp, m;
    int32_t output_zp, act_min, act_max;
    int32_t fast; /* every row suits the SMMLA requantization */
} tf_sfc_plan_t;

/* Check the blob against k x m and fill the row table in scratch; 0 or -1 (bad header). */
int32_t tf_sparse_fc_s8_plan(tf_sfc_plan_t *plan, const uint8_t *weights, const int32_t *bias,
                             const int32_t *multiplier, const int32_t *shift,
                             int32_t output_zp, int32_t act_min, int32_t act_max, int32_t k,
                             int32_t m, void *scratch);

/* nt <= TF_SFC_TILE tokens x [nt][k] (rows k bytes apart) -> out [nt][m]:
 * the widening below, then tf_sparse_fc_s8_run. */
void tf_sparse_fc_s8_tile(const tf_sfc_plan_t *plan, const int8_t *x, int32_t nt, int8_t *out);

/* Run the rows against plan->xs, already widened for nt tokens -> out [nt][m]. */
void tf_sparse_fc_s8_run(const tf_sfc_plan_t *plan, int32_t nt, int8_t *out);

/* The B >= 4 widening of one token's `groups` 4-byte groups from src: group g goes to
 * dst[2 * TF_SFC_TILE * g] and +1, dst being plan->xs + 2 * token (assembly on Cortex-M). */
void tf_sparse_fc_s8_widen4(const int8_t *src, uint32_t *dst, int32_t groups);

#endif /* TF_SPARSE_FULLY_CONNECTED_S8_H */
