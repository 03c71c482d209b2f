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
 * are taken TF_FC_TILE = 6 at a time: their inputs are sign-extended once into scratch
 * (SXTB16 pairs, token-interleaved), so each weight word loaded and extended feeds six
 * tokens: per 4 weights one LDR, two SXTB16, three LDM (two tokens' pairs each) and twelve
 * SMLADs = 24 MACs in 18 instructions. On ARM (TF_ARM_DSP_ASM, tf_dsp.h) the whole row loop
 * of a tile (the MACs, an exact SMMLA + ASR + SSAT requantization, the strided stores) is one
 * assembly routine, tf_fully_connected_s8_arm.S; the portable C in tf_fully_connected_s8.c
 * does the same with the same scratch layouts. The last n % 6 tokens: a tile of 4 or 2, a
 * 6- or 4-token tile overlapping the tokens before it (their outputs are written twice,
 * equal), or one token alone, two weight rows per pass (n = 1: ~0.75 MAC per instruction).
 * Parameters outside that fast form (k < 4, any shift > -2 or < -24, output_zp or the
 * activation range outside int8) take the generic path, 4-token tiles and tf_requantize,
 * with the same results. Reference: engine/ops/linear.py.
 */
#ifndef TF_FULLY_CONNECTED_S8_H
#define TF_FULLY_CONNECTED_S8_H

#include <stdint.h>

#define TF_FC_TILE 6

/* Scratch for inputs of depth k: a 6-token tile of k/4 groups x 6 tokens x two extended
 * words, plus 136 bytes (a header, an end marker, the row loop's state and the extended
 * k % 4 tail group). */
static inline uint32_t tf_fully_connected_s8_scratch_bytes(int32_t k)
{
    return (uint32_t)(k / 4) * TF_FC_TILE * 8u + 136u;
}

void tf_fully_connected_s8(const int8_t *input, const int8_t *weights, const int32_t *bias,
                           const int32_t *multiplier, const int32_t *shift, int32_t output_zp,
                           int32_t act_min, int32_t act_max, int32_t n, int32_t k, int32_t m,
                           int8_t *output, void *scratch);

/* For kernels built on this one (tf_conv2d_s8, which calls it many times with the same
 * parameters): tf_fully_connected_s8_mode checks the requantization parameters once (0: the
 * generic path, 1: the fast one, 2: the fast one with an activation clamp), and
 * tf_fully_connected_s8_run is tf_fully_connected_s8 given that result;
 * tf_fully_connected_s8_generic always takes the generic path. All give the same outputs. */
int32_t tf_fully_connected_s8_mode(const int32_t *shift, int32_t output_zp, int32_t act_min,
                                   int32_t act_max, int32_t k, int32_t m);
/* Built with TF_ROUNDING_TFLITE (tf_math.h), the fast path's epilogue rounds as TFLite; it
 * also needs |bias| + k 128^2 < 2^31 - 2^24 (every real layer): 1 when so. */
int32_t tf_fully_connected_s8_tflite_fast(const int32_t *bias, int32_t k, int32_t m);
void tf_fully_connected_s8_run(const int8_t *input, const int8_t *weights, const int32_t *bias,
                               const int32_t *multiplier, const int32_t *shift,
                               int32_t output_zp, int32_t act_min, int32_t act_max, int32_t n,
                               int32_t k, int32_t m, int8_t *output, void *scratch,
                               int32_t mode);
void tf_fully_connected_s8_generic(const int8_t *input, const int8_t *weights,
                                   const int32_t *bias, const int32_t *multiplier,
                                   const int32_t *shift, int32_t output_zp, int32_t act_min,
                                   int32_t act_max, int32_t n, int32_t k, int32_t m,
                                   int8_t *output, void *scratch);

/* Also for tf_conv2d_s8, which builds a tile of TF_FC_TILE tokens (patches) straight from its
 * input, when k % 4 == 0 and the mode is not 0 (generic): tile_put sign-extends `groups`
 * groups of 4 inputs from x into token `token`'s groups group.., tile_pad fills them with
 * `value` (the input zero point), tile_rows runs the whole tile against every row; output as
 * for tf_fully_connected_s8 with n = TF_FC_TILE. */
void tf_fully_connected_s8_tile_put(void *scratch, int32_t token, int32_t group,
                                    const int8_t *x, int32_t groups);
void tf_fully_connected_s8_tile_pad(void *scratch, int32_t token, int32_t group, int32_t value,
                                    int32_t groups);
void tf_fully_connected_s8_tile_rows(const int8_t *weights, const int32_t *bias,
                                     const int32_t *multiplier, const int32_t *shift,
                                     int32_t output_zp, int32_t act_min, int32_t act_max,
                                     int32_t k, int32_t m, int8_t *output, void *scratch,
                                     int32_t mode);

#endif /* TF_FULLY_CONNECTED_S8_H */
