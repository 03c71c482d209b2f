/* tf_maxpool_s8 - see the header for shapes, layouts and the formula. */
#include "tf_maxpool_s8.h"

#include "tf_conv2d_s8.h"
#include "tf_math.h"

void tf_maxpool_s8(const int8_t *input, int32_t in_h, int32_t in_w, int32_t channels,
                   int32_t k_h, int32_t k_w, int32_t stride, int32_t pad_top, int32_t pad_left,
                   int32_t pad_bottom, int32_t pad_right, int32_t act_min, int32_t act_max,
                   int8_t *output)
{
    const int32_t out_h = tf_conv2d_out_size(in_h, k_h, stride, pad_top, pad_bottom);
    const int32_t out_w = tf_conv2d_out_size(in_w, k_w, stride, pad_left, pad_right);
    const int32_t row_step = in_w * channels;
    for (int32_t oy = 0; oy < out_h; oy++) {
        int32_t ky0, ky1;
        const int32_t y0 = oy * stride - pad_top;
        tf_conv2d_valid_taps(y0, in_h, k_h, &ky0, &ky1);
        for (int32_t ox = 0; ox < out_w; ox++, output += channels) {
            int32_t kx0, kx1;
            const int32_t x0 = ox * stride - pad_left;
            tf_conv2d_valid_taps(x0, in_w, k_w, &kx0, &kx1);
            const int8_t *first = input + ((y0 + ky0) * in_w + x0 + kx0) * channels;
            for (int32_t c = 0; c < channels; c++) {
                int32_t m = -128; /* an empty window (outside the contract) gives -128 */
                const int8_t *row = first + c;
                for (int32_t i = ky0; i < ky1; i++, row += row_step) {
                    for (int32_t j = 0; j < kx1 - kx0; j++) {
                        const int32_t v = row[j * channels];
                        m = v > m ? v : m;
                    }
                }
                output[c] = (int8_t)tf_clamp(m, act_min, act_max);
            }
        }
    }
}
