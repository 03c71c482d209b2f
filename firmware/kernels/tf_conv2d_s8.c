/* tf_conv2d_s8 - see the header for shapes, layouts and the formula. */
#include "tf_conv2d_s8.h"

#include <string.h>

#include "tf_dsp.h"
#include "tf_fully_connected_s8.h"

/* Word copy: newlib-nano's memcpy is a byte loop, and patch rows are short. */
static void copy_bytes(int8_t *dst, const int8_t *src, int32_t n)
{
    for (; n >= 4; n -= 4, dst += 4, src += 4) {
        tf_write_u32(dst, tf_read_u32(src));
    }
    for (; n > 0; n--) {
        *dst++ = *src++;
    }
}

void tf_conv2d_gather_patch(const int8_t *input, int32_t in_h, int32_t in_w, int32_t in_c,
                            int32_t k_h, int32_t k_w, int32_t y0, int32_t x0, int8_t pad_value,
                            int8_t *dst)
{
    const int32_t row = k_w * in_c;
    int32_t kx0, kx1;
    tf_conv2d_valid_taps(x0, in_w, k_w, &kx0, &kx1);
    const int32_t before = kx0 * in_c, valid = (kx1 - kx0) * in_c;
    const int32_t after = row - before - valid;
    for (int32_t ky = 0; ky < k_h; ky++, dst += row) {
        const int32_t iy = y0 + ky;
        if (iy < 0 || iy >= in_h || valid == 0) {
            memset(dst, pad_value, (size_t)row);
            continue;
        }
        if (before > 0) {
            memset(dst, pad_value, (size_t)before);
        }
        copy_bytes(dst + before, input + (iy * in_w + x0 + kx0) * in_c, valid);
        if (after > 0) {
            memset(dst + before + valid, pad_value, (size_t)after);
        }
    }
}

/* The same patch straight into the fully connected kernel's tile as token t, sign-extended
 * (in_c % 4 == 0, so every group of 4 is all padding or all input): no byte copy. */
static void put_patch(const int8_t *input, int32_t in_h, int32_t in_w, int32_t in_c, int32_t k_h,
                      int32_t k_w, int32_t y0, int32_t x0, int32_t pad_value, void *scratch,
                      int32_t t)
{
    const int32_t row = k_w * in_c / 4;
    int32_t kx0, kx1;
    tf_conv2d_valid_taps(x0, in_w, k_w, &kx0, &kx1);
    const int32_t before = kx0 * in_c / 4, valid = (kx1 - kx0) * in_c / 4;
    const int32_t after = row - before - valid;
    int32_t g = 0;
    for (int32_t ky = 0; ky < k_h; ky++, g += row) {
        const int32_t iy = y0 + ky;
        if (iy < 0 || iy >= in_h || valid == 0) {
            tf_fully_connected_s8_tile_pad(scratch, t, g, pad_value, row);
            continue;
        }
        if (before > 0) {
            tf_fully_connected_s8_tile_pad(scratch, t, g, pad_value, before);
        }
        tf_fully_connected_s8_tile_put(scratch, t, g + before,
                                       input + (iy * in_w + x0 + kx0) * in_c, valid);
        if (after > 0) {
            tf_fully_connected_s8_tile_pad(scratch, t, g + before + valid, pad_value, after);
        }
    }
}

/* Everything but the pointwise case (kept apart so that its frame does not add to the fully
 * connected kernel's on the static stack bound). */
static __attribute__((noinline)) void conv_im2col(
    const int8_t *input, int32_t in_h, int32_t in_w, int32_t in_c, const int8_t *weights,
    int32_t out_c, int32_t k_h, int32_t k_w, const int32_t *bias, const int32_t *multiplier,
    const int32_t *shift, int32_t input_zp, int32_t output_zp, int32_t stride, int32_t pad_top,
    int32_t pad_left, int32_t pad_bottom, int32_t pad_right, int32_t act_min, int32_t act_max,
    int8_t *output, void *scratch)
{
    const int32_t out_h = tf_conv2d_out_size(in_h, k_h, stride, pad_top, pad_bottom);
    const int32_t out_w = tf_conv2d_out_size(in_w, k_w, stride, pad_left, pad_right);
    const int32_t depth = k_h * k_w * in_c, pixels = out_h * out_w;
    /* The FC scratch first keeps it 8-byte aligned; the patches need no alignment. */
    int8_t *cols = (int8_t *)scratch + tf_fully_connected_s8_scratch_bytes(depth);
    int32_t mode = tf_fully_connected_s8_mode(shift, output_zp, act_min, act_max, depth, out_c);
#if TF_ROUNDING_TFLITE
    mode = mode && tf_fully_connected_s8_tflite_fast(bias, depth, out_c) ? mode : 0;
#endif
    if (mode != 0 && in_c % 4 == 0 && pixels >= TF_CONV_PIXELS) {
        /* Whole tiles built from the input (the last one overlaps the one before). */
        for (int32_t p = 0; p < pixels; p += TF_CONV_PIXELS) {
            if (p + TF_CONV_PIXELS > pixels) {
                p = pixels - TF_CONV_PIXELS;
            }
            int32_t oy = p / out_w, ox = p % out_w;
            for (int32_t t = 0; t < TF_CONV_PIXELS; t++) {
                put_patch(input, in_h, in_w, in_c, k_h, k_w, oy * stride - pad_top,
                          ox * stride - pad_left, input_zp, scratch, t);
                if (++ox == out_w) {
                    ox = 0;
                    oy++;
                }
            }
            tf_fully_connected_s8_tile_rows(weights, bias, multiplier, shift, output_zp, act_min,
                                            act_max, depth, out_c, output + p * out_c, scratch,
                                            mode);
        }
        return;
    }
    for (int32_t p = 0; p < pixels;) {
        int32_t n = pixels - p < TF_CONV_PIXELS ? pixels - p : TF_CONV_PIXELS;
        if (n < TF_CONV_PIXELS && n > 3 && pixels >= TF_CONV_PIXELS) {
            /* A short last batch: a whole tile that overlaps the previous one (the overlap's
             * outputs are written again, equal) beats the FC kernel's one-token passes. */
            p = pixels - TF_CONV_PIXELS;
            n = TF_CONV_PIXELS;
        }
        int32_t oy = p / out_w, ox = p % out_w;
        for (int32_t t = 0; t < n; t++) {
            tf_conv2d_gather_patch(input, in_h, in_w, in_c, k_h, k_w, oy * stride - pad_top,
                                   ox * stride - pad_left, (int8_t)input_zp, cols + t * depth);
            if (++ox == out_w) {
                ox = 0;
                oy++;
            }
        }
        /* Output pixels are consecutive in NHWC, so the n pixels are n rows of [out_c]. */
        if (mode == 0) {
            tf_fully_connected_s8_generic(cols, weights, bias, multiplier, shift, output_zp,
                                          act_min, act_max, n, depth, out_c, output + p * out_c,
                                          scratch);
        } else {
            tf_fully_connected_s8_run(cols, weights, bias, multiplier, shift, output_zp, act_min,
                                      act_max, n, depth, out_c, output + p * out_c, scratch,
                                      mode);
        }
        p += n;
    }
}

void tf_conv2d_s8(const int8_t *input, int32_t in_h, int32_t in_w, int32_t in_c,
                  const int8_t *weights, int32_t out_c, int32_t k_h, int32_t k_w,
                  const int32_t *bias, const int32_t *multiplier, const int32_t *shift,
                  int32_t input_zp, int32_t output_zp, int32_t stride, int32_t pad_top,
                  int32_t pad_left, int32_t pad_bottom, int32_t pad_right, int32_t act_min,
                  int32_t act_max, int8_t *output, void *scratch)
{
    if (k_h == 1 && k_w == 1 && stride == 1 &&
        (pad_top | pad_left | pad_bottom | pad_right) == 0) {
        tf_fully_connected_s8(input, weights, bias, multiplier, shift, output_zp, act_min,
                              act_max, in_h * in_w, in_c, out_c, output, scratch);
        return;
    }
    conv_im2col(input, in_h, in_w, in_c, weights, out_c, k_h, k_w, bias, multiplier, shift,
                input_zp, output_zp, stride, pad_top, pad_left, pad_bottom, pad_right, act_min,
                act_max, output, scratch);
}
