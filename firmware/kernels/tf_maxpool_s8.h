/*
 * tf_maxpool_s8 - int8 max pooling, NHWC, batch 1; output has the input's scale and zero
 * point (TFLite's MaxPool2D, integer path).
 *
 * Shapes and layouts (row-major):
 *   input  [in_h][in_w][channels]    int8
 *   output [out_h][out_w][channels]  int8, out_h = tf_conv2d_out_size(in_h, k_h, stride,
 *                                    pad_top, pad_bottom), out_w likewise (tf_conv2d_s8.h)
 *
 *   out[y][x][c] = clamp(max of the in-bounds input[y*stride - pad_top + i]
 *                                               [x*stride - pad_left + j][c], act_min, act_max)
 *
 * Padding is left out of the max; every window must hold an input pixel (pads < k).
 * No scratch. Reference: engine/ops/pool.py (maxpool).
 */
#ifndef TF_MAXPOOL_S8_H
#define TF_MAXPOOL_S8_H

#include <stdint.h>

void tf_maxpool_s8(const int8_t *input, int32_t in_h, int32_t in_w, int32_t channels,
                   int32_t k_h, int32_t k_w, int32_t stride, int32_t pad_top, int32_t pad_left,
                   int32_t pad_bottom, int32_t pad_right, int32_t act_min, int32_t act_max,
                   int8_t *output);

#endif /* TF_MAXPOOL_S8_H */
