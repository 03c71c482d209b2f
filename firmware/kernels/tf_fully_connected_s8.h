/*
 * tf_fully_connected_s8 - int8 fully connected layer (TFLite / CMSIS-NN conventions).
 *
 * Shapes and layouts (row-major):
 *   input   [n][k]  int8, zero point folded into bias (see below)
 *   weights [m][k]  int8, symmetric (zero point 0), one row per output channel
 *   bias    [m]     int32, *folded*: bias[j] - input_zp * sum_i weights[j][i]
 *   multiplier, shift [m]  per-channel requantization (see tf_math.h)
 *   output  [n][m]  int8
 *   scratch tf_fully_connected_s8_scratch_bytes(k) bytes, 8-byte aligned
 *
 *   out[t][j] = clamp(tf_requantize(sum_i input[t][i] * weights[j][i] + bias[j],
 *                                   multiplier[j], shift[j]) + output_zp, act_min, act_max)
 *
 * Folding the input zero point into the bias offline removes a per-MAC offset add. Tokens
 * are taken TF_FC_TILE at a time: their inputs are sign-extended once into scratch
 * (SXTB16 pairs, token-interleaved), so each weight word loaded and extended feeds
 * TF_FC_TILE tokens with one LDRD + two SMLADs each. Reference: engine/ops/linear.py.
 */
#ifndef TF_FULLY_CONNECTED_S8_H
#define TF_FULLY_CONNECTED_S8_H

#include <stdint.h>

#define TF_FC_TILE 4

/* Scratch for inputs of depth k: TF_FC_TILE tokens x k/4 groups x two extended words. */
static inline uint32_t tf_fully_connected_s8_scratch_bytes(int32_t k)
{
    return (uint32_t)(k / 4) * TF_FC_TILE * 8u;
}

void tf_fully_connected_s8(const int8_t *input, const int8_t *weights, const int32_t *bias,
                           const int32_t *multiplier, const int32_t *shift, int32_t output_zp,
                           int32_t act_min, int32_t act_max, int32_t n, int32_t k, int32_t m,
                           int8_t *output, void *scratch);

#endif /* TF_FULLY_CONNECTED_S8_H */
