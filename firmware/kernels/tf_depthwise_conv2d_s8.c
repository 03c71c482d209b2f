/* tf_depthwise_conv2d_s8 - see the header for shapes, layouts and the formula. */
#include "tf_depthwise_conv2d_s8.h"

#include "tf_conv2d_s8.h"
#include "tf_dsp.h"
#include "tf_math.h"

/* The per-pixel helpers stay out of line: inlined into the pixel loops they would share one
 * register allocation, and GCC then spills the accumulators of the hot loop. */
#if defined(__GNUC__)
#define NOINLINE __attribute__((noinline))
#else
#define NOINLINE
#endif

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#define DW_ASM 1
#else
#define DW_ASM 0
#endif

/* Channels are accumulated CHUNK at a time into a stack array, then requantized by a loop of
 * their own: either loop alone fits the registers, the two together do not. */
#define CHUNK 32

/* Everything the per-pixel helpers need, passed by one pointer to keep registers free. */
typedef struct {
    const int8_t *weights;
    const int32_t *bias, *multiplier, *shift;
    int32_t channels, in_w, k_h, k_w, input_zp, output_zp, act_min, act_max;
    int32_t small_shifts; /* every shift[c] <= -2 */
} dw_params_t;

/* One output pixel's window: top-left input coordinate and valid taps [ky0,ky1) x [kx0,kx1). */
typedef struct {
    int32_t y0, x0, ky0, ky1, kx0, kx1;
} window_t;

/* Requantize the n accumulators of channels c.. into out[c..], as tf_requantize does. When
 * every shift is <= -2 (p->small_shifts, the usual case for convs) the rounding shift is 32 bits
 * or more, and floor(floor(p / 2^32) / 2^n) == floor(p / 2^(32+n)) lets the high word of SMULL
 * stand in for the 64-bit product: a separate loop, so that GCC does not also compute the
 * general form on every iteration. */
static NOINLINE void finish_chunk(const dw_params_t *p, const int32_t *acc, int32_t c, int32_t n,
                                  int8_t *out)
{
    const int32_t zp = p->output_zp, lo = p->act_min, hi = p->act_max;
    const int32_t *mult = p->multiplier + c, *shift = p->shift + c;
    out += c;
    if (p->small_shifts) {
        for (int32_t i = 0; i < n; i++) {
            const int32_t top = (int32_t)(((int64_t)acc[i] * mult[i]) >> 32);
            const int32_t r = ((top >> (-2 - shift[i])) + 1) >> 1;
            out[i] = (int8_t)tf_clamp(r + zp, lo, hi);
        }
    } else {
        for (int32_t i = 0; i < n; i++) {
            out[i] = (int8_t)tf_clamp(tf_requantize(acc[i], mult[i], shift[i]) + zp, lo, hi);
        }
    }
}

/* Four channels, one tap: SXTB16 to halfword pairs, then one SMLAxy per channel. */
#define MAC4(xv, wv)                                                                           \
    do {                                                                                       \
        const uint32_t xe_ = tf_sxtb16(xv), we_ = tf_sxtb16(wv);                               \
        const uint32_t xo_ = tf_sxtb16_ror8(xv), wo_ = tf_sxtb16_ror8(wv);                     \
        a0 = tf_smlabb(xe_, we_, a0);                                                          \
        a2 = tf_smlatt(xe_, we_, a2);                                                          \
        a1 = tf_smlabb(xo_, wo_, a1);                                                          \
        a3 = tf_smlatt(xo_, wo_, a3);                                                          \
    } while (0)

#if DW_ASM
/* MAC4 in assembly, the tap at x + offset, w + offset ("" or ", %[reg]"). */
#define TAP4(offset)                                                                           \
    "ldr %[xv], [%[x]" offset "]\n\t"                                                           \
    "ldr %[wv], [%[w]" offset "]\n\t"                                                           \
    "sxtb16 %[xe], %[xv]\n\t"                                                                  \
    "sxtb16 %[we], %[wv]\n\t"                                                                  \
    "sxtb16 %[xv], %[xv], ror #8\n\t"                                                          \
    "sxtb16 %[wv], %[wv], ror #8\n\t"                                                          \
    "smlabb %[a0], %[xe], %[we], %[a0]\n\t"                                                    \
    "smlatt %[a2], %[xe], %[we], %[a2]\n\t"                                                    \
    "smlabb %[a1], %[xv], %[wv], %[a1]\n\t"                                                    \
    "smlatt %[a3], %[xv], %[wv], %[a3]\n\t"
#define TAP4_OPERANDS                                                                          \
    [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [xv] "=&r"(xv), [wv] "=&r"(wv), \
        [xe] "=&r"(xe), [we] "=&r"(we)
#endif

/* `groups` groups of four channels over a rows x taps rectangle of the window, starting from
 * the bias: x and w step by ch bytes per tap, by x_step and w_step per row, and by 4 per group.
 * The hot loop. On ARM its body is assembly, since GCC 12 spills the accumulators: 10
 * instructions per tap for a whole 3x3 window, 14 otherwise. */
static NOINLINE void dot_groups(const int8_t *x, const int8_t *w, const int32_t *bias,
                                int32_t *acc, int32_t groups, int32_t ch, int32_t rows,
                                int32_t taps, int32_t x_step, int32_t w_step)
{
    for (int32_t g = 0; g < groups; g++, x += 4, w += 4, bias += 4, acc += 4) {
        int32_t a0 = bias[0], a1 = bias[1], a2 = bias[2], a3 = bias[3];
#if DW_ASM
        uint32_t xv, wv, xe, we;
        const int8_t *xp = x, *wp = w;
        if (rows == 3 && taps == 3 && w_step == 3 * ch) { /* a whole 3x3 window, unrolled */
            const int32_t ch2 = 2 * ch;
            __asm__ volatile(TAP4("") TAP4(", %[ch]") TAP4(", %[ch2]")
                             "add %[x], %[x], %[xs]\n\t"
                             "add %[w], %[w], %[ch]\n\t"
                             "add %[w], %[w], %[ch2]\n\t"
                             TAP4("") TAP4(", %[ch]") TAP4(", %[ch2]")
                             "add %[x], %[x], %[xs]\n\t"
                             "add %[w], %[w], %[ch]\n\t"
                             "add %[w], %[w], %[ch2]\n\t"
                             TAP4("") TAP4(", %[ch]") TAP4(", %[ch2]")
                             : TAP4_OPERANDS, [x] "+r"(xp), [w] "+r"(wp)
                             : [ch] "r"(ch), [ch2] "r"(ch2), [xs] "r"(x_step)
                             : "memory");
        } else {
            const int32_t x_skip = x_step - taps * ch, w_skip = w_step - taps * ch;
            for (int32_t r = 0; r < rows; r++, xp += x_skip, wp += w_skip) {
                int32_t n = taps;
                __asm__ volatile("1:\n\t" TAP4("")
                                 "add %[x], %[x], %[ch]\n\t"
                                 "add %[w], %[w], %[ch]\n\t"
                                 "subs %[n], %[n], #1\n\t"
                                 "bne 1b\n\t"
                                 : TAP4_OPERANDS, [x] "+r"(xp), [w] "+r"(wp), [n] "+r"(n)
                                 : [ch] "r"(ch)
                                 : "cc", "memory");
            }
        }
#else
        for (int32_t r = 0; r < rows; r++) {
            for (int32_t t = 0; t < taps * ch; t += ch) {
                MAC4(tf_read_u32(x + r * x_step + t), tf_read_u32(w + r * w_step + t));
            }
        }
#endif
        acc[0] = a0;
        acc[1] = a1;
        acc[2] = a2;
        acc[3] = a3;
    }
}

/* Four channels over the padded taps of the window (rows ky0..ky1 x taps kx0..kx1 are the
 * valid ones): each weight multiplies input_zp, whose halfword pair is zp2. */
static void padded4(const int8_t *w, int32_t ch, const window_t *win, int32_t k_h, int32_t k_w,
                    uint32_t zp2, int32_t a[4])
{
    int32_t a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3];
    for (int32_t ky = 0; ky < k_h; ky++) {
        const int32_t row_valid = ky >= win->ky0 && ky < win->ky1;
        for (int32_t kx = 0; kx < k_w; kx++, w += ch) {
            if (row_valid && kx >= win->kx0 && kx < win->kx1) {
                continue;
            }
            const uint32_t wv = tf_read_u32(w);
            const uint32_t we = tf_sxtb16(wv), wo = tf_sxtb16_ror8(wv);
            a0 = tf_smlabb(zp2, we, a0);
            a2 = tf_smlatt(zp2, we, a2);
            a1 = tf_smlabb(zp2, wo, a1);
            a3 = tf_smlatt(zp2, wo, a3);
        }
    }
    a[0] = a0;
    a[1] = a1;
    a[2] = a2;
    a[3] = a3;
}

/* All channels of one output pixel. Its valid taps are read from the input (x points at the
 * first of them); a padded tap multiplies input_zp instead, which the folded bias cancels. */
static NOINLINE void pixel(const dw_params_t *p, const window_t *win, const int8_t *x,
                           int8_t *out)
{
    const int32_t ch = p->channels, k_h = p->k_h, k_w = p->k_w;
    const int32_t rows = win->ky1 - win->ky0, taps = win->kx1 - win->kx0;
    const int32_t x_step = p->in_w * ch, w_step = k_w * ch;
    const int32_t padded = rows * taps != k_h * k_w;
    const uint32_t zp2 = (uint32_t)(uint16_t)p->input_zp * 0x10001u;
    const int8_t *w_first = p->weights + (win->ky0 * k_w + win->kx0) * ch;
    int32_t acc[CHUNK];
    for (int32_t c0 = 0; c0 < ch; c0 += CHUNK) {
        const int32_t n = ch - c0 < CHUNK ? ch - c0 : CHUNK;
        int32_t i = n & ~3;
        if (rows > 0 && taps > 0) {
            dot_groups(x + c0, w_first + c0, p->bias + c0, acc, i / 4, ch, rows, taps, x_step,
                       w_step);
        } else {
            for (int32_t j = 0; j < i; j++) {
                acc[j] = p->bias[c0 + j];
            }
        }
        if (padded) {
            for (int32_t j = 0; j < i; j += 4) {
                padded4(p->weights + c0 + j, ch, win, k_h, k_w, zp2, acc + j);
            }
        }
        for (; i < n; i++) { /* channels % 4, in the last chunk */
            const int32_t c = c0 + i;
            int32_t a = p->bias[c];
            for (int32_t ky = 0; ky < k_h; ky++) {
                for (int32_t kx = 0; kx < k_w; kx++) {
                    const int32_t ry = ky - win->ky0, rx = kx - win->kx0;
                    const int32_t valid = ry >= 0 && ry < rows && rx >= 0 && rx < taps;
                    const int32_t xv = valid ? x[ry * x_step + rx * ch + c] : p->input_zp;
                    a += xv * p->weights[(ky * k_w + kx) * ch + c];
                }
            }
            acc[i] = a;
        }
        finish_chunk(p, acc, c0, n, out);
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
    dw_params_t p = {weights,  bias,      multiplier, shift,   channels, in_w, k_h,
                     k_w,      input_zp,  output_zp,  act_min, act_max,  1};
    for (int32_t c = 0; c < channels; c++) {
        p.small_shifts &= shift[c] <= -2;
    }
    const int32_t out_h = tf_conv2d_out_size(in_h, k_h, stride, pad_top, pad_bottom);
    const int32_t out_w = tf_conv2d_out_size(in_w, k_w, stride, pad_left, pad_right);
    window_t win;
    for (int32_t oy = 0; oy < out_h; oy++) {
        win.y0 = oy * stride - pad_top;
        tf_conv2d_valid_taps(win.y0, in_h, k_h, &win.ky0, &win.ky1);
        for (int32_t ox = 0; ox < out_w; ox++, output += channels) {
            win.x0 = ox * stride - pad_left;
            tf_conv2d_valid_taps(win.x0, in_w, k_w, &win.kx0, &win.kx1);
            /* The first valid tap; a window with none never reads x (pads >= k only). */
            const int32_t empty = win.ky0 == win.ky1 || win.kx0 == win.kx1;
            const int8_t *x =
                empty ? input
                      : input + ((win.y0 + win.ky0) * in_w + win.x0 + win.kx0) * channels;
            pixel(&p, &win, x, output);
        }
    }
}
