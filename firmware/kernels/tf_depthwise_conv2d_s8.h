/*
 * tf_depthwise_conv2d_s8 - int8 depthwise 2-D convolution, NHWC, batch 1, channel
 * multiplier 1 (TFLite / CMSIS-NN conventions).
 *
 * Shapes and layouts (row-major):
 *   input   [in_h][in_w][channels]   int8
 *   weights [k_h][k_w][channels]     int8 symmetric (TFLite's 1HWC without the 1)
 *   bias    [channels]               int32, *folded*: bias[c] - input_zp * sum_{i,j} w[i][j][c]
 *                                    (engine/ops/conv.py: fold_depthwise_bias)
 *   multiplier, shift [channels]     per-channel requantization (see tf_math.h)
 *   output  [out_h][out_w][channels] int8, out_h = tf_conv2d_out_size(in_h, k_h, stride,
 *                                    pad_top, pad_bottom), out_w likewise (tf_conv2d_s8.h)
 *
 *   out[y][x][c] = clamp(tf_requantize(bias[c] + sum_{i,j} xp[y*stride + i][x*stride + j][c]
 *                                      * weights[i][j][c], multiplier[c], shift[c])
 *                        + output_zp, act_min, act_max)
 *
 * where xp is the input padded with input_zp (pad_top/left/bottom/right), so with the folded
 * bias this equals the reference's sum of (x - input_zp) * w exactly. A pixel whose window
 * reaches into the padding reads only its valid taps and adds input_zp * w for each padded one.
 *
 * Four channels at a time: per tap one (unaligned) word of inputs and one of weights, SXTB16
 * to halfword pairs, one SMLABB/SMLATT per channel (on ARM an assembly loop, 3x3 windows
 * unrolled). Accumulators of up to 32 channels are then requantized together; when every
 * shift is <= -2 this takes SMULL's high word instead of a 64-bit shift (same result).
 * No scratch (a 128-byte stack array). Reference: engine/ops/conv.py (depthwise_conv2d).
 */
#ifndef TF_DEPTHWISE_CONV2D_S8_H
#define TF_DEPTHWISE_CONV2D_S8_H

#include <stdint.h>

void tf_depthwise_conv2d_s8(const int8_t *input, int32_t in_h, int32_t in_w, int32_t channels,
                            const int8_t *weights, int32_t k_h, int32_t k_w,
                            const int32_t *bias, const int32_t *multiplier,
                            const int32_t *shift, int32_t input_zp, int32_t output_zp,
                            int32_t stride, int32_t pad_top, int32_t pad_left,
                            int32_t pad_bottom, int32_t pad_right, int32_t act_min,
                            int32_t act_max, int8_t *output);

#endif /* TF_DEPTHWISE_CONV2D_S8_H */
