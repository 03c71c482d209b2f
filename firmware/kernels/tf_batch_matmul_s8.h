/*
 * tf_batch_matmul_s8 - attention batch matmuls per head: Q·Kᵀ and A·V, int8 activations.
 *
 * Both operands are runtime activations with zero points. Every operand row is sign-
 * extended once into scratch with its zero point already subtracted (SXTB16 + SSUB16,
 * values in [-255, 255], zero-padded to a multiple of 4 along the reduction), so the hot
 * loop is pure LDRD + SMLAD on 2x2 (row x column) tiles: per 4 products of 4 outputs,
 * 4 LDRD + 8 SMLAD (16 MACs). Accumulation is exact int32 for reductions up to 33025.
 * Under QEMU (mps2-an500, GCC 12 -O2), Q·Kᵀ with 4 heads x 64 tokens x d = 24 takes
 * 563,080 instructions (0.70 MAC/instruction; CMSIS-NN: 1,658,800) and A·V of the same
 * shape 484,320; with d this small the per-output requantization is a large share.
 *
 * Layouts (tokens-major; head h owns channels h*d .. h*d+d-1 of a token row):
 *   q       [t_q] rows of q_stride int8 (q_stride >= heads*d; a fused QKV output
 *           [t][3*H*d] is used in place with q = qkv, k = qkv + H*d, v = qkv + 2*H*d
 *           and all strides 3*H*d)
 *   k, v    [t_k] rows of k_stride / v_stride int8
 *   scores  [heads][t_q][t_k] int8 (contiguous, head-major: softmax runs over rows)
 *   attn    [heads][t_q][t_k] int8 (contiguous)
 *   output  [t_q] rows of out_stride int8, head h at columns h*d (heads concatenated)
 *   scratch tf_batch_matmul_{qk,av}_s8_scratch_bytes() bytes, 8-byte aligned
 *   outputs must not overlap the inputs.
 *
 *   scores[h][i][j] = clamp(tf_requantize(sum_c (q[i][h*d+c] - q_zp) * (k[j][h*d+c] - k_zp),
 *                                         multiplier, shift) + output_zp, -128, 127)
 *   out[i][h*d+c]   = clamp(tf_requantize(sum_j (attn[h][i][j] - attn_zp)
 *                                               * (v[j][h*d+c] - v_zp),
 *                                         multiplier, shift) + output_zp, -128, 127)
 *
 * The attention scale 1/sqrt(d) is part of the Q·Kᵀ multiplier. MobileViT's p*p
 * sequences (tf_transpose_s8.h) are separate calls, one per sequence base pointer.
 * Reference: tinyformer/engine/ops/matmul.py (batch_matmul_qk, batch_matmul_av).
 */
#ifndef TF_BATCH_MATMUL_S8_H
#define TF_BATCH_MATMUL_S8_H

#include <stdint.h>

/* Reduction of length k in groups of 4 (the last one zero-padded). */
static inline uint32_t tf_bmm_groups(int32_t k) { return (uint32_t)(k + 3) / 4u; }

/* One extended 2-row tile of the left operand plus all right-operand columns (in pairs). */
static inline uint32_t tf_bmm_scratch_bytes(int32_t k, int32_t cols)
{
    return 16u * tf_bmm_groups(k) * (1u + (uint32_t)(cols + 1) / 2u);
}
static inline uint32_t tf_batch_matmul_qk_s8_scratch_bytes(int32_t t_k, int32_t d)
{
    return tf_bmm_scratch_bytes(d, t_k);
}
static inline uint32_t tf_batch_matmul_av_s8_scratch_bytes(int32_t t_k, int32_t d)
{
    return tf_bmm_scratch_bytes(t_k, d);
}

void tf_batch_matmul_qk_s8(const int8_t *q, int32_t q_stride, int32_t q_zp, const int8_t *k,
                           int32_t k_stride, int32_t k_zp, int32_t heads, int32_t t_q,
                           int32_t t_k, int32_t d, int32_t multiplier, int32_t shift,
                           int32_t output_zp, int8_t *scores, void *scratch);

void tf_batch_matmul_av_s8(const int8_t *attn, int32_t attn_zp, const int8_t *v,
                           int32_t v_stride, int32_t v_zp, int32_t heads, int32_t t_q,
                           int32_t t_k, int32_t d, int32_t multiplier, int32_t shift,
                           int32_t output_zp, int8_t *output, int32_t out_stride,
                           void *scratch);

#endif /* TF_BATCH_MATMUL_S8_H */
