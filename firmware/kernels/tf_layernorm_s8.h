/*
 * tf_layernorm_s8 - integer LayerNorm over the last axis (TinyFormer's Scaled-LayerNorm).
 *
 * Shapes and layouts (row-major, tokens-major):
 *   input  [t][d] int8 (its scale and zero point cancel out: only eps depends on them)
 *   affine [d][3] int32 {gamma_i, lo_i, hi_i} (engine/ops/norm.py's layernorm_affine):
 *          gamma_i / output_scale in units of 2^-20 (TF_LN_G_BITS), and hi:lo the 64-bit
 *          (beta_i << F) + 2^31 + (output_zp << 32), beta_i / output_scale in units of 2^-20
 *   eps    int32, round(eps_real * d^2 / input_scale^2)
 *   output [t][d] int8, may alias input (each row is read fully before it is written)
 *   1 <= d <= 32768; no scratch.
 *
 * Per row, F = TF_LN_F_BITS = 12, all integer:
 *   sum = sum_i x_i,  sq = sum_i x_i^2                      (int32)
 *   S   = d * sq - sum^2 + eps                              (int64, = d^2 * (var + eps))
 *   if S == 0: m = 0, p = 0; else
 *     e = (62 - bitlen(S)) / 2,  r = isqrt(S << 2e)         (exact floor sqrt, r in [2^30, 2^31))
 *     q = (2^61 - 1) / r
 *     p = e + F - 29, m = q             if e + F >= 29
 *     p = 0,  m = q >> (29 - e - F)     otherwise           (m * 2^(p-32) = 2^F / sqrt(S))
 *   n_i   = (((d * x_i - sum) << p) * m + 2^31) >> 32       (SMMULR: (x_i - mean) / std, Q.F)
 *   out_i = clamp(((n_i * gamma_i + (beta_i << F) + 2^31) >> 32) + output_zp, -128, 127)
 *         = SSAT8(SMLAL onto hi_i:lo_i of n_i * gamma_i, its high word)
 * |gamma_i|, |beta_i| <= 2^31 - 2^20 (layernorm_params checks it).
 * isqrt and the division start from single-precision estimates (VSQRT/VDIV on the M7's
 * FPU; tf_math.h) corrected with exact integer products: the integer formula's result.
 *
 * Reference: tinyformer/engine/ops/norm.py (layernorm, layernorm_params).
 */
#ifndef TF_LAYERNORM_S8_H
#define TF_LAYERNORM_S8_H

#include <stdint.h>

#define TF_LN_F_BITS 12
#define TF_LN_G_BITS 20

void tf_layernorm_s8(const int8_t *input, const int32_t *affine, int32_t eps, int32_t t,
                     int32_t d, int8_t *output);

#endif /* TF_LAYERNORM_S8_H */
