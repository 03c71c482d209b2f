/*
 * tf_mean_s8 - TFLite's MEAN over height and width (Keras' GlobalAveragePooling2D as a
 * converter writes it), int8 -> int8 with its own output quantization.
 *
 * Shapes and layouts:
 *   input   [pixels][channels] int8 (an [H][W][C] map, pixels = H * W), zero point input_zp
 *   output  [channels] int8, zero point output_zp; no scratch
 *
 *   out[c] = clamp(tf_requantize(sum_p (input[p][c] - input_zp), multiplier, shift)
 *                  + output_zp, -128, 127)
 *
 * (multiplier, shift) fold 1 / pixels into input_scale / output_scale as TFLite's integer
 * mean does (ops/tflm.py mean_params); the sum needs pixels * 255 < 2^31.
 *
 * Reference: tinyformer/engine/ops/tflm.py (mean).
 */
#ifndef TF_MEAN_S8_H
#define TF_MEAN_S8_H

#include <stdint.h>

void tf_mean_s8(const int8_t *input, int32_t pixels, int32_t channels, int32_t input_zp,
                int32_t output_zp, int32_t multiplier, int32_t shift, int8_t *output);

#endif /* TF_MEAN_S8_H */
