/*
 * tf_sparse_conv2d_s8 - int8 2-D convolution, NHWC, batch 1, with block-sparse weights.
 *
 * Same arguments and integer semantics as tf_conv2d_s8 (see tf_conv2d_s8.h), bit for bit,
 * except the weights: the block-rle blob (engine/sparse_format.py, header included, a const
 * uint8_t array) of the [out_c][k_h * k_w * in_c] matrix, i.e. the OHWI filters flattened per
 * output channel as [kh][kw][Cin], so the blocks of B run along that depth.
 *   input   [in_h][in_w][in_c]          int8
 *   weights block-rle blob, rows = out_c, cols = k_h * k_w * in_c
 *   bias    [out_c]                     int32, folded: bias[c] - input_zp * sum(weights[c])
 *   multiplier, shift [out_c]           per-channel requantization (tf_math.h)
 *   output  [out_h][out_w][out_c]       int8 (tf_conv2d_out_size)
 *   scratch tf_sparse_conv2d_s8_scratch_bytes(in_c, k_h, k_w, out_c, B), 8-byte aligned
 *   returns 0, or -1 (output untouched) when the blob's header does not match the shapes.
 *
 * Pointwise (1x1, stride 1, no padding) is exactly tf_sparse_fully_connected_s8 over the
 * in_h * in_w pixels. Every other shape runs TF_SFC_TILE output pixels at a time as tokens
 * of depth k_h * k_w * in_c through the sparse FC (tf_sparse_fc_s8_plan once per call,
 * tf_sparse_fc_s8_run per 8 pixels). With B >= 4 and in_c % 4 == 0 each pixel's patch is
 * widened straight from the input into the tile (no im2col copy; padded taps become the
 * widened input_zp); otherwise the patches [k_h][k_w][in_c] are gathered into scratch first
 * (padded taps hold input_zp), then widened. Either way a padded tap multiplies input_zp,
 * which the folded bias cancels, as in tf_conv2d_s8.
 *
 * Instructions under QEMU (results/kernels.csv), 16x16x32 -> 32 3x3 "same", B = 4: 2.44 M at
 * 0 % block sparsity (dense tf_conv2d_s8: 2.01 M), 379 k at 90 % (5.3x), 265 k at 95 %.
 */
#ifndef TF_SPARSE_CONV2D_S8_H
#define TF_SPARSE_CONV2D_S8_H

#include <stdint.h>

#include "tf_conv2d_s8.h"
#include "tf_sparse_fully_connected_s8.h"

/* Scratch: the sparse FC's for depth k_h*k_w*in_c, then TF_SFC_TILE patches of that depth
 * (rounded up to 4 bytes). */
static inline uint32_t tf_sparse_conv2d_s8_scratch_bytes(int32_t in_c, int32_t k_h, int32_t k_w,
                                                         int32_t out_c, int32_t block)
{
    const int32_t depth = k_h * k_w * in_c;
    return tf_sparse_fully_connected_s8_scratch_bytes(depth, out_c, block) +
           (uint32_t)TF_SFC_TILE * (uint32_t)((depth + 3) / 4 * 4);
}

int32_t tf_sparse_conv2d_s8(const int8_t *input, int32_t in_h, int32_t in_w, int32_t in_c,
                            const uint8_t *weights, int32_t out_c, int32_t k_h, int32_t k_w,
                            const int32_t *bias, const int32_t *multiplier, const int32_t *shift,
                            int32_t input_zp, int32_t output_zp, int32_t stride, int32_t pad_top,
                            int32_t pad_left, int32_t pad_bottom, int32_t pad_right,
                            int32_t act_min, int32_t act_max, int8_t *output, void *scratch);

#endif /* TF_SPARSE_CONV2D_S8_H */
