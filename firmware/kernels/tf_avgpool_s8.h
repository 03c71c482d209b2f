/*
 * tf_avgpool_s8 - int8 average pooling, NHWC, batch 1; output has the input's scale and
 * zero point (TFLite's AveragePool2D, integer path).
 *
 * Shapes and layouts (row-major):
 *   input  [in_h][in_w][channels]    int8
 *   output [out_h][out_w][channels]  int8, out_h = tf_conv2d_out_size(in_h, k_h, stride,
 *                                    pad_top, pad_bottom), out_w likewise (tf_conv2d_s8.h)
 *
 *   out[y][x][c] = clamp(round_div(sum of in-bounds input[y*stride - pad_top + i]
 *                                          [x*stride - pad_left + j][c], count), act_min, act_max)
 *   round_div(a, n) = a >= 0 ? (a + n/2) / n : (a - n/2) / n   (C division: round half away
 *                                                               from zero)
 *
 * count is the number of the window's taps inside the input (padding is excluded from both
 * the sum and the count); every window must hold at least one input pixel (pads < k).
 * No scratch. Reference: engine/ops/pool.py (avgpool).
 */
#ifndef TF_AVGPOOL_S8_H
#define TF_AVGPOOL_S8_H

#include <stdint.h>

/* a / n rounded half away from zero, n > 0: the rounding of every average pooling kernel. */
static inline int32_t tf_round_div(int32_t a, int32_t n)
{
    return a >= 0 ? (a + n / 2) / n : (a - n / 2) / n;
}

void tf_avgpool_s8(const int8_t *input, int32_t in_h, int32_t in_w, int32_t channels,
                   int32_t k_h, int32_t k_w, int32_t stride, int32_t pad_top, int32_t pad_left,
                   int32_t pad_bottom, int32_t pad_right, int32_t act_min, int32_t act_max,
                   int8_t *output);

#endif /* TF_AVGPOOL_S8_H */
