/* tf_depthwise_conv2d_s8 - see the header for shapes, layouts and the formula. */
#include "tf_depthwise_conv2d_s8.h"

#include "tf_conv2d_s8.h"
#include "tf_dsp.h"
#include "tf_math.h"

/* One output pixel's window: top-left input coordinate and valid taps [ky0,ky1) x [kx0,kx1). */
typedef struct {
    int32_t y0, x0, ky0, ky1, kx0, kx1;
} window_t;

/* tf_requantize, bit for bit, in 4 instructions when shift <= -2 (the usual case for convs):
 * the rounding shift is then >= 32 bits, and floor(floor(p / 2^32) / 2^n) == floor(p / 2^(32+n))
 * lets SMULL's high word stand in for the 64-bit product. */
static inline int32_t requantize(int32_t x, int32_t mult, int32_t shift)
{
    if (shift <= -2) {
        const int32_t hi = (int32_t)(((int64_t)x * mult) >> 32);
        return ((hi >> (-2 - shift)) + 1) >> 1;
    }
    return tf_requantize(x, mult, shift);
}

static inline int8_t finish(int32_t acc, int32_t mult, int32_t shift, int32_t zp, int32_t lo,
                            int32_t hi)
{
    return (int8_t)tf_clamp(requantize(acc, mult, shift) + zp, lo, hi);
}

/* Channels are accumulated CHUNK at a time into a stack array, then requantized in a loop of
 * their own: either loop alone fits the registers, the two together do not. */
#define CHUNK 32

/* Four channels at x/w, one tap: SXTB16 to halfword pairs, then one SMLAxy per channel. */
#define MAC4(xv, wv)                                                                           \
    do {                                                                                       \
        const uint32_t xe_ = tf_sxtb16(xv), we_ = tf_sxtb16(wv);                               \
        const uint32_t xo_ = tf_sxtb16_ror8(xv), wo_ = tf_sxtb16_ror8(wv);                     \
        a0 = tf_smlabb(xe_, we_, a0);                                                          \
        a2 = tf_smlatt(xe_, we_, a2);                                                          \
        a1 = tf_smlabb(xo_, wo_, a1);                                                          \
        a3 = tf_smlatt(xo_, wo_, a3);                                                          \
    } while (0)

/* Everything the per-pixel loops need, passed by one pointer to keep registers free. */
typedef struct {
    const int8_t *weights;
    const int32_t *bias, *multiplier, *shift;
    int32_t channels, in_w, k_h, k_w, output_zp, act_min, act_max;
} dw_params_t;

/* Requantize n accumulators of channels c.. into out[c..]. */
static void finish_chunk(const dw_params_t *p, const int32_t *acc, int32_t c, int32_t n,
                         int8_t *out)
{
    const int32_t zp = p->output_zp, lo = p->act_min, hi = p->act_max;
    const int32_t *mult = p->multiplier + c, *shift = p->shift + c;
    out += c;
    for (int32_t i = 0; i < n; i++) {
        out[i] = finish(acc[i], mult[i], shift[i], zp, lo, hi);
    }
}

/* All channels of one output pixel whose window lies inside the input (the hot path):
 * x points at the window's top-left pixel. */
static void pixel_inside(const dw_params_t *p, const int8_t *x, int8_t *out)
{
    const int32_t channels = p->channels, k_h = p->k_h;
    const int32_t row = p->k_w * channels, x_skip = p->in_w * channels - row;
    int32_t acc[CHUNK];
    for (int32_t c0 = 0; c0 < channels; c0 += CHUNK) {
        const int32_t n = channels - c0 < CHUNK ? channels - c0 : CHUNK;
        int32_t i = 0;
        for (; i + 4 <= n; i += 4) {
            const int32_t *b = p->bias + c0 + i;
            int32_t a0 = b[0], a1 = b[1], a2 = b[2], a3 = b[3];
            const int8_t *xp = x + c0 + i, *w = p->weights + c0 + i;
            for (int32_t ky = 0; ky < k_h; ky++, xp += x_skip) {
                for (const int8_t *w_end = w + row; w < w_end; xp += channels, w += channels) {
                    MAC4(tf_read_u32(xp), tf_read_u32(w));
                }
            }
            acc[i] = a0;
            acc[i + 1] = a1;
            acc[i + 2] = a2;
            acc[i + 3] = a3;
        }
        for (; i < n; i++) { /* channels % 4, in the last chunk */
            int32_t a = p->bias[c0 + i];
            const int8_t *xp = x + c0 + i, *w = p->weights + c0 + i;
            for (int32_t ky = 0; ky < k_h; ky++, xp += x_skip) {
                for (const int8_t *w_end = w + row; w < w_end; xp += channels, w += channels) {
                    a += (int32_t)*xp * (int32_t)*w;
                }
            }
            acc[i] = a;
        }
        finish_chunk(p, acc, c0, n, out);
    }
}

/* All channels of one output pixel whose window reaches into the padding (the border):
 * padded taps multiply input_zp (zp4 holds four copies), which the folded bias cancels. */
static void pixel_border(const dw_params_t *p, const int8_t *input, const window_t *win,
                         int32_t input_zp, int8_t *out)
{
    const int32_t channels = p->channels, k_h = p->k_h, k_w = p->k_w;
    const uint32_t zp4 = (uint32_t)(uint8_t)input_zp * 0x01010101u;
    int32_t c = 0;
    for (; c + 4 <= channels; c += 4) {
        int32_t a0 = p->bias[c], a1 = p->bias[c + 1], a2 = p->bias[c + 2], a3 = p->bias[c + 3];
        const int8_t *w = p->weights + c;
        for (int32_t ky = 0; ky < k_h; ky++) {
            const int32_t row_inside = ky >= win->ky0 && ky < win->ky1;
            /* An offset, not a pointer: the window's corner may lie outside the input. */
            const int32_t x = ((win->y0 + ky) * p->in_w + win->x0) * channels + c;
            for (int32_t kx = 0; kx < k_w; kx++, w += channels) {
                const int32_t inside = row_inside && kx >= win->kx0 && kx < win->kx1;
                MAC4(inside ? tf_read_u32(input + x + kx * channels) : zp4, tf_read_u32(w));
            }
        }
        const int32_t acc[4] = {a0, a1, a2, a3};
        for (int32_t i = 0; i < 4; i++) {
            out[c + i] = finish(acc[i], p->multiplier[c + i], p->shift[c + i], p->output_zp,
                                p->act_min, p->act_max);
        }
    }
    for (; c < channels; c++) {
        int32_t acc = p->bias[c];
        const int8_t *w = p->weights + c;
        for (int32_t ky = 0; ky < k_h; ky++) {
            const int32_t row_inside = ky >= win->ky0 && ky < win->ky1;
            const int32_t x = ((win->y0 + ky) * p->in_w + win->x0) * channels + c;
            for (int32_t kx = 0; kx < k_w; kx++, w += channels) {
                const int32_t inside = row_inside && kx >= win->kx0 && kx < win->kx1;
                acc += (inside ? (int32_t)input[x + kx * channels] : input_zp) * (int32_t)*w;
            }
        }
        out[c] = finish(acc, p->multiplier[c], p->shift[c], p->output_zp, p->act_min,
                        p->act_max);
    }
}

void tf_depthwise_conv2d_s8(const int8_t *input, int32_t in_h, int32_t in_w, int32_t channels,
                            const int8_t *weights, int32_t k_h, int32_t k_w,
                            const int32_t *bias, const int32_t *multiplier,
                            const int32_t *shift, int32_t input_zp, int32_t output_zp,
                            int32_t stride, int32_t pad_top, int32_t pad_left,
                            int32_t pad_bottom, int32_t pad_right, int32_t act_min,
                            int32_t act_max, int8_t *output)
{
    const dw_params_t p = {weights, bias,    multiplier, shift,   channels,
                           in_w,    k_h,     k_w,        output_zp, act_min, act_max};
    const int32_t out_h = tf_conv2d_out_size(in_h, k_h, stride, pad_top, pad_bottom);
    const int32_t out_w = tf_conv2d_out_size(in_w, k_w, stride, pad_left, pad_right);
    window_t win;
    for (int32_t oy = 0; oy < out_h; oy++) {
        win.y0 = oy * stride - pad_top;
        tf_conv2d_valid_taps(win.y0, in_h, k_h, &win.ky0, &win.ky1);
        for (int32_t ox = 0; ox < out_w; ox++, output += channels) {
            win.x0 = ox * stride - pad_left;
            tf_conv2d_valid_taps(win.x0, in_w, k_w, &win.kx0, &win.kx1);
            if ((win.ky1 - win.ky0) * (win.kx1 - win.kx0) == k_h * k_w) {
                pixel_inside(&p, input + (win.y0 * in_w + win.x0) * channels, output);
            } else {
                pixel_border(&p, input, &win, input_zp, output);
            }
        }
    }
}
