/* tf_sparse_conv2d_s8 - see the header for shapes, layouts and the formula. */
#include "tf_sparse_conv2d_s8.h"

/* Fill `groups` widened groups of token slot dst with the padding value (zz in each word). */
static uint32_t *fill_groups(uint32_t *dst, int32_t groups, uint32_t zz)
{
    for (int32_t g = 0; g < groups; g++, dst += 2 * TF_SFC_TILE) {
        dst[0] = zz;
        dst[1] = zz;
    }
    return dst;
}

/* B >= 4 and in_c % 4 == 0: widen one output pixel's patch straight from the input into
 * token slot dst of the tile (no im2col copy): each patch row's valid taps are contiguous. */
static void widen_patch(const int8_t *input, int32_t in_h, int32_t in_w, int32_t in_c,
                        int32_t k_h, int32_t k_w, int32_t y0, int32_t x0, uint32_t zz,
                        uint32_t *dst)
{
    const int32_t gpt = in_c / 4; /* groups per tap */
    int32_t kx0, kx1;
    tf_conv2d_valid_taps(x0, in_w, k_w, &kx0, &kx1);
    const int32_t before = kx0 * gpt, valid = (kx1 - kx0) * gpt;
    const int32_t after = k_w * gpt - before - valid;
    for (int32_t ky = 0; ky < k_h; ky++) {
        const int32_t iy = y0 + ky;
        if (iy < 0 || iy >= in_h || valid == 0) {
            dst = fill_groups(dst, k_w * gpt, zz);
            continue;
        }
        dst = fill_groups(dst, before, zz);
        tf_sparse_fc_s8_widen4(input + (iy * in_w + x0 + kx0) * in_c, dst, valid);
        dst += 2 * TF_SFC_TILE * valid;
        dst = fill_groups(dst, after, zz);
    }
}

int32_t tf_sparse_conv2d_s8(const int8_t *input, int32_t in_h, int32_t in_w, int32_t in_c,
                            const uint8_t *weights, int32_t out_c, int32_t k_h, int32_t k_w,
                            const int32_t *bias, const int32_t *multiplier, const int32_t *shift,
                            int32_t input_zp, int32_t output_zp, int32_t stride, int32_t pad_top,
                            int32_t pad_left, int32_t pad_bottom, int32_t pad_right,
                            int32_t act_min, int32_t act_max, int8_t *output, void *scratch)
{
    if (k_h == 1 && k_w == 1 && stride == 1 &&
        (pad_top | pad_left | pad_bottom | pad_right) == 0) {
        return tf_sparse_fully_connected_s8(input, weights, bias, multiplier, shift, output_zp,
                                            act_min, act_max, in_h * in_w, in_c, out_c, output,
                                            scratch);
    }
    const int32_t depth = k_h * k_w * in_c;
    tf_sfc_plan_t plan;
    if (tf_sparse_fc_s8_plan(&plan, weights, bias, multiplier, shift, output_zp, act_min,
                             act_max, depth, out_c, scratch) != 0) {
        return -1;
    }
    const int32_t out_h = tf_conv2d_out_size(in_h, k_h, stride, pad_top, pad_bottom);
    const int32_t out_w = tf_conv2d_out_size(in_w, k_w, stride, pad_left, pad_right);
    const int32_t pixels = out_h * out_w;
    int8_t *cols =
        (int8_t *)scratch + tf_sparse_fully_connected_s8_scratch_bytes(depth, out_c, plan.block);
    const int direct = plan.block >= 4 && in_c % 4 == 0;
    const uint32_t zz = (uint32_t)(uint16_t)(int16_t)input_zp * 0x10001u;
    int32_t oy = 0, ox = 0;
    for (int32_t p = 0; p < pixels; p += TF_SFC_TILE) {
        const int32_t n = pixels - p < TF_SFC_TILE ? pixels - p : TF_SFC_TILE;
        for (int32_t t = 0; t < n; t++) {
            const int32_t y0 = oy * stride - pad_top, x0 = ox * stride - pad_left;
            if (direct) {
                widen_patch(input, in_h, in_w, in_c, k_h, k_w, y0, x0, zz, plan.xs + 2 * t);
            } else {
                tf_conv2d_gather_patch(input, in_h, in_w, in_c, k_h, k_w, y0, x0,
                                       (int8_t)input_zp, cols + t * depth);
            }
            if (++ox == out_w) {
                ox = 0;
                oy++;
            }
        }
        /* Output pixels are consecutive in NHWC, so the n pixels are n rows of [out_c]. */
        if (direct) {
            tf_sparse_fc_s8_run(&plan, n, output + p * out_c);
        } else {
            tf_sparse_fc_s8_tile(&plan, cols, n, output + p * out_c);
        }
    }
    return 0;
}
