/*
 * tf_depthwise_conv2d_s8 - int8 depthwise 2-D convolution, NHWC, batch 1, channel
 * multiplier 1 (TFLite / CMSIS-NN conventions).
 *
 * Shapes and layouts (row-major):
 *   input   [in_h][in_w][channels]   int8
 *   weights [ceil(channels / 4)][k_h][k_w][2] uint32: the int8 symmetric weights w[ky][kx][c]
 *                                    (TFLite's 1HWC without the 1) widened for the kernel, per
 *                                    group of 4 channels c = 4g.. and tap the int16 pairs
 *                                    (w[c], w[c + 2]) and (w[c + 1], w[c + 3]), low half
 *                                    first, zero past the last channel (engine/ops/conv.py's
 *                                    depthwise_weights_s16): twice the bytes in flash, so a
 *                                    tap's weights are one LDRD
 *   bias    [channels]               int32, the layer's own (NOT folded with input_zp)
 *   multiplier, shift [channels]     per-channel requantization (see tf_math.h); not read
 *                                    (may be NULL) when requant is given
 *   requant [channels][4]            NULL, or per channel {M, lo, hi, sh} (engine/intmath.py's
 *                                    smlal_requant_table): the same requantization in two
 *                                    instructions, ((hi:lo + acc * M) >> 32) >> sh (SMLAL,
 *                                    ASR; zero point included); the code generator passes
 *                                    it when every shift allows (in [-22, -1]). Built
 *                                    with TF_ROUNDING_TFLITE (tf_math.h), {M, c, n, 0}
 *                                    instead (intmath.tflite_requant_table): TFLite's
 *                                    rounding, (SRDHM(acc, M) + c - (h < 0)) >> n
 *   output  [out_h][out_w][channels] int8, out_h = tf_conv2d_out_size(in_h, k_h, stride,
 *                                    pad_top, pad_bottom), out_w likewise (tf_conv2d_s8.h)
 *
 *   out[y][x][c] = clamp(tf_requantize(bias[c] + sum_{i,j} (xp[y*stride + i][x*stride + j][c]
 *                                      - input_zp) * weights[i][j][c], multiplier[c], shift[c])
 *                        + output_zp, act_min, act_max)
 *
 * where xp is the input padded with input_zp (pad_top/left/bottom/right), as the reference.
 *
 * Padded taps are real zeros (x - input_zp with x = input_zp), so a window visits only its
 * valid taps: with a big kernel on a small map (5x5 on 4x4) most taps are padding. This is
 * why the zero point is not folded into the bias here as it is for conv2d: the fold would
 * make every padded tap cost an input_zp * w.
 *
 * Four channels at a time: per tap one (unaligned) word of inputs, SXTAB16 to halfword pairs
 * x - input_zp (in [-255, 255]; the subtraction is free), one LDRD of the widened weights,
 * one SMLABB/SMLATT per channel: 8 instructions for 4 MACs. On ARM (TF_ARM_DSP_ASM) the
 * groups of four channels loop in assembly (tf_depthwise_conv2d_s8_arm.S): whole 3x3 windows
 * unrolled, other rows of up to 8 taps entered part-way into 8 unrolled taps, longer rows a
 * loop. Accumulators of up to 32 channels are then requantized together; when
 * a requant table is given, on ARM two channels at a time in assembly (LDM of the table,
 * SMLAL, ASR, SSAT: 6 instructions an output; a narrower activation range is clamped
 * after); otherwise when every shift is in [-31, -1] from SMULL's p >> 31 instead of a 64-bit
 * shift (same result), and the full int8 range is one SSAT.
 * No scratch (a 128-byte stack array). Reference: engine/ops/conv.py (depthwise_conv2d).
 */
#ifndef TF_DEPTHWISE_CONV2D_S8_H
#define TF_DEPTHWISE_CONV2D_S8_H

#include <stddef.h>
#include <stdint.h>

void tf_depthwise_conv2d_s8(const int8_t *input, int32_t in_h, int32_t in_w, int32_t channels,
                            const uint32_t *weights, int32_t k_h, int32_t k_w,
                            const int32_t *bias, const int32_t *multiplier,
                            const int32_t *shift, const int32_t *requant, int32_t input_zp,
                            int32_t output_zp, int32_t stride, int32_t pad_top,
                            int32_t pad_left, int32_t pad_bottom, int32_t pad_right,
                            int32_t act_min, int32_t act_max, int8_t *output);

#endif /* TF_DEPTHWISE_CONV2D_S8_H */
