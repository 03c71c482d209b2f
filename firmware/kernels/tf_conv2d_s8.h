/*
 * tf_conv2d_s8 - int8 2-D convolution, NHWC, batch 1 (TFLite / CMSIS-NN conventions).
 *
 * Shapes and layouts (row-major):
 *   input   [in_h][in_w][in_c]          int8
 *   weights [out_c][k_h][k_w][in_c]     int8 symmetric (OHWI), one filter per output channel
 *   bias    [out_c]                     int32, *folded*: bias[c] - input_zp * sum(weights[c])
 *                                       (engine/ops/conv.py: fold_conv_bias)
 *   multiplier, shift [out_c]           per-channel requantization (see tf_math.h)
 *   output  [out_h][out_w][out_c]       int8, out_h = tf_conv2d_out_size(in_h, k_h, stride,
 *                                       pad_top, pad_bottom), out_w likewise
 *   scratch tf_conv2d_s8_scratch_bytes(in_c, k_h, k_w) bytes, 8-byte aligned
 *
 *   out[y][x][c] = clamp(tf_requantize(bias[c] + sum_{i,j,k} xp[y*stride + i][x*stride + j][k]
 *                                      * weights[c][i][j][k], multiplier[c], shift[c])
 *                        + output_zp, act_min, act_max)
 *
 * where xp is the input padded with pad_top rows above, pad_bottom below, pad_left columns
 * left and pad_right right, the padding holding input_zp. With the folded bias this equals
 * the reference's sum of (x - input_zp) * w exactly: a padded tap is a real zero, and the
 * kernel multiplies it as x == input_zp, which the fold cancels.
 *
 * Pointwise (1x1, stride 1, no padding) is exactly a fully connected layer over the
 * in_h * in_w pixels: tf_fully_connected_s8 is called directly. Every other shape is im2col:
 * TF_CONV_PIXELS (= TF_FC_TILE, 6) output pixels' patches [k_h][k_w][in_c] run as that many
 * tokens of depth k_h * k_w * in_c against the out_c filters (one 6-token tile of the FC
 * kernel: 24 MACs per weight word; a short last batch overlaps the one before it). When
 * in_c % 4 == 0 and the requantization has the FC kernel's fast form, the patches are
 * sign-extended straight from the input into the tile (padded taps as input_zp groups);
 * otherwise they are gathered into scratch (padded taps filled with input_zp) and passed to
 * tf_fully_connected_s8. Reference: engine/ops/conv.py (conv2d).
 */
#ifndef TF_CONV2D_S8_H
#define TF_CONV2D_S8_H

#include <stdint.h>

#include "tf_fully_connected_s8.h"

#define TF_CONV_PIXELS TF_FC_TILE

/* Output length along one axis: (in + pad_before + pad_after - k) / stride + 1. */
static inline int32_t tf_conv2d_out_size(int32_t in, int32_t k, int32_t stride,
                                         int32_t pad_before, int32_t pad_after)
{
    return (in + pad_before + pad_after - k) / stride + 1;
}

/* Taps [*k0, *k1) of a k-wide window starting at input coordinate start (negative inside
 * the leading padding) that fall inside an input of the given size; empty when none do. */
static inline void tf_conv2d_valid_taps(int32_t start, int32_t size, int32_t k, int32_t *k0,
                                        int32_t *k1)
{
    int32_t a = start < 0 ? -start : 0;
    const int32_t b = size - start < k ? size - start : k;
    if (a > k) {
        a = k;
    }
    *k0 = a;
    *k1 = b < a ? a : b;
}

/* One output pixel's patch [k_h][k_w][in_c] into dst (im2col); (y0, x0) is its top-left input
 * coordinate (negative inside the padding); taps outside the input become pad_value. Shared
 * with tf_sparse_conv2d_s8. */
void tf_conv2d_gather_patch(const int8_t *input, int32_t in_h, int32_t in_w, int32_t in_c,
                            int32_t k_h, int32_t k_w, int32_t y0, int32_t x0, int8_t pad_value,
                            int8_t *dst);

/* Scratch: the fully connected kernel's, then TF_CONV_PIXELS patches of k_h*k_w*in_c bytes. */
static inline uint32_t tf_conv2d_s8_scratch_bytes(int32_t in_c, int32_t k_h, int32_t k_w)
{
    const int32_t depth = k_h * k_w * in_c;
    return tf_fully_connected_s8_scratch_bytes(depth) + (uint32_t)(TF_CONV_PIXELS * depth);
}

void tf_conv2d_s8(const int8_t *input, int32_t in_h, int32_t in_w, int32_t in_c,
                  const int8_t *weights, int32_t out_c, int32_t k_h, int32_t k_w,
                  const int32_t *bias, const int32_t *multiplier, const int32_t *shift,
                  int32_t input_zp, int32_t output_zp, int32_t stride, int32_t pad_top,
                  int32_t pad_left, int32_t pad_bottom, int32_t pad_right, int32_t act_min,
                  int32_t act_max, int8_t *output, void *scratch);

#endif /* TF_CONV2D_S8_H */
