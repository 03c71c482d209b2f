/*
 * tf_batch_matmul_s8 - attention batch matmuls per head: Q·Kᵀ and A·V, int8 activations.
 *
 * Both operands are runtime activations with zero points. Per head, every right-operand
 * column (a key token for Q·Kᵀ, a channel of V for A·V) is sign-extended once into scratch
 * with its zero point subtracted (SXTAB16 with a packed -zp pair; values in [-255, 255],
 * zero-padded to a multiple of 4 along the reduction and to blocks of 4 columns), and each
 * pair of left rows likewise. The hot loop (tf_batch_matmul_s8_arm.S) computes 2x4 output
 * tiles: per two reduction values one LDRD of the rows, two LDRD of the columns and 8 SMLAD
 * (16 MACs); it stops on an end marker behind the rows, so no loop counter is needed, then
 * requantizes with SMMLA + ASR + SSAT when -24 <= shift <= -2 (exact, see the .c). Other
 * shifts and a last partial column block take a C requantization. Accumulation is exact
 * int32 for reductions up to 33025. Under QEMU (mps2-an500, GCC 12 -O2), 4 heads x 16 tokens
 * x d = 16 (the digits model) take 24,080 (Q·Kᵀ) and 26,160 (A·V) instructions, 0.68 and
 * 0.63 MAC/instruction; 4 heads x 64 tokens x d = 24: 406,520 and 385,680 (0.97, 1.02).
 *
 * Layouts (tokens-major; head h owns channels h*d .. h*d+d-1 of a token row):
 *   q       [t_q] rows of q_stride int8 (q_stride >= heads*d; a fused QKV output
 *           [t][3*H*d] is used in place with q = qkv, k = qkv + H*d, v = qkv + 2*H*d
 *           and all strides 3*H*d)
 *   k, v    [t_k] rows of k_stride / v_stride int8
 *   scores  [heads][t_q][t_k] int8 (contiguous, head-major: softmax runs over rows)
 *   attn    [heads][t_q][t_k] int8 (contiguous)
 *   output  [t_q] rows of out_stride int8, head h at columns h*d (heads concatenated)
 *   scratch tf_batch_matmul_{qk,av}_s8_scratch_bytes() bytes, 8-byte aligned: the left tile
 *           (2 rows, end marker, 32-byte state), then the extended columns
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

/* The extended 2-row left tile with its end marker and state (16 G + 40 bytes), then every
 * right-operand column, zero-padded to blocks of 4 (32 G bytes a block). */
static inline uint32_t tf_bmm_scratch_bytes(int32_t k, int32_t cols)
{
    return 16u * tf_bmm_groups(k) * (1u + 2u * ((uint32_t)(cols + 3) / 4u)) + 40u;
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
