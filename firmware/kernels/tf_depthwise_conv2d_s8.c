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

/* TF_ARM_DSP_ASM (tf_dsp.h): the taps' loops (dot_groups) and the requant table's
 * requantization are assembly, tf_depthwise_conv2d_s8_arm.S; otherwise the portable C below. */

/* Channels are accumulated CHUNK at a time into a stack array, then requantized by a loop of
 * their own: either loop alone fits the registers, the two together do not. */
#define CHUNK 32

/* Everything the per-pixel helpers need, passed by one pointer to keep registers free. */
typedef struct {
    const uint32_t *weights; /* widened (see the header) */
    const int32_t *bias, *multiplier, *shift;
    const int32_t *requant; /* NULL, or {M, lo, hi, sh} per channel */
    int32_t channels, in_w, k_h, k_w, input_zp, output_zp, act_min, act_max;
    int32_t fast_shifts; /* every shift[c] in [-31, -1] */
} dw_params_t;

/* One output pixel's window: its valid taps [ky0,ky1) x [kx0,kx1). */
typedef struct {
    int32_t ky0, ky1, kx0, kx1;
} window_t;

/* tf_requantize for -31 <= shift <= -1 (p->fast_shifts, the usual case): the rounding shift
 * 30 - shift is 31 or more, and floor(floor(p / 2^31) / 2^n) == floor(p / 2^(31+n)) lets the
 * 32-bit p >> 31 (|p| < 2^62) stand in for the 64-bit product: SMULL, then two instructions
 * instead of a 64-bit shift (same result). */
static inline int32_t requantize_fast(int32_t acc, int32_t multiplier, int32_t shift)
{
#if TF_ROUNDING_TFLITE /* TFLite's double rounding has no such shortcut */
    return tf_requantize(acc, multiplier, shift);
#endif
    const int32_t t = (int32_t)(((int64_t)acc * multiplier) >> 31);
    return ((t >> (-1 - shift)) + 1) >> 1;
}

#if TF_ARM_DSP_ASM
/* out[i] = SSAT8(((hi_i:lo_i + acc[i] * M_i) >> 32) >> sh_i) for 2 * pairs (> 0) channels;
 * table: {M, lo, hi, sh} per channel (tf_depthwise_conv2d_s8_arm.S). */
void tf_dw_requant_pairs(const int32_t *acc, const int32_t *table, int8_t *out, int32_t pairs);
#endif

/* The requant table's form (see the header): SMLAL, ASR, SSAT; then the activation range. */
static void finish_table(const dw_params_t *p, const int32_t *acc, int32_t c, int32_t n,
                         int8_t *out)
{
    const int32_t *t = p->requant + 4 * c;
    int32_t i = 0;
#if TF_ARM_DSP_ASM
    if (n >= 2) {
        tf_dw_requant_pairs(acc, t, out, n / 2);
        i = n & ~1;
    }
#endif
    for (; i < n; i++) {
        const int32_t *e = t + 4 * i;
#if TF_ROUNDING_TFLITE /* {M, c, n, 0}: intmath.tflite_requant_table */
        const int32_t h = tf_srdhm(acc[i], e[0]);
        out[i] = (int8_t)tf_sat_s8((h + e[1] - (int32_t)((uint32_t)h >> 31)) >> e[2]);
#else
        const int64_t sum = (int64_t)((uint64_t)(int64_t)e[2] << 32 | (uint32_t)e[1]) +
                            (int64_t)acc[i] * e[0];
        out[i] = (int8_t)tf_sat_s8((int32_t)(sum >> 32) >> e[3]);
#endif
    }
    if (p->act_min > -128 || p->act_max < 127) {
        for (i = 0; i < n; i++) {
            out[i] = (int8_t)tf_clamp(out[i], p->act_min, p->act_max);
        }
    }
}

/* Requantize the n accumulators of channels c.. into out[c..], as tf_requantize does: one loop
 * per case, so that GCC does not compute the general form (or clamp twice) every iteration.
 * The full int8 range (no fused activation, or ReLU at the zero point -128) is one SSAT. */
static NOINLINE void finish_chunk(const dw_params_t *p, const int32_t *acc, int32_t c, int32_t n,
                                  int8_t *out)
{
    const int32_t zp = p->output_zp, lo = p->act_min, hi = p->act_max;
    const int32_t *mult = p->multiplier + c, *shift = p->shift + c;
    out += c;
    if (p->requant != NULL) {
        finish_table(p, acc, c, n, out);
    } else if (p->fast_shifts && lo <= -128 && hi >= 127) {
        for (int32_t i = 0; i < n; i++) {
            out[i] = (int8_t)tf_sat_s8(requantize_fast(acc[i], mult[i], shift[i]) + zp);
        }
    } else if (p->fast_shifts) {
        for (int32_t i = 0; i < n; i++) {
            out[i] = (int8_t)tf_clamp(requantize_fast(acc[i], mult[i], shift[i]) + zp, lo, hi);
        }
    } else {
        for (int32_t i = 0; i < n; i++) {
            out[i] = (int8_t)tf_clamp(tf_requantize(acc[i], mult[i], shift[i]) + zp, lo, hi);
        }
    }
}

/* Group g's widened weights of tap (ky, kx): words w[2 * ((g * k_h + ky) * k_w + kx)], +1. */
#define WORDS_PER_TAP 2

/* The window of one output pixel, for dot_groups: its valid rows x taps, where its first
 * valid tap is in the input (x_step bytes a row) and in the weights (w_skip bytes skipped
 * after each row's taps, w_back after the last row to reach the next group). */
typedef struct {
    int32_t rows, taps, x_step, w_skip, w_back;
} span_t;

/* `groups` (> 0) groups of four channels over a window's valid taps, starting from the bias:
 * x steps by ch bytes per tap, by sp->x_step per row and by 4 per group; w (the first valid
 * tap's widened weights of the first group) by a tap's 8 bytes, by sp->w_skip per row and
 * sp->w_back per group. Padded taps are real zeros (x - input_zp with x = input_zp) and are
 * skipped. The hot loop. On ARM it is assembly (tf_dw_dot_groups), since GCC 12 spills the
 * accumulators: 8 instructions per tap for a whole 3x3 window, rows of up to 8 taps entered
 * part way into 8 unrolled taps (9 per tap and 6 per row), longer rows a loop. */
#if TF_ARM_DSP_ASM
void tf_dw_dot_groups(const int8_t *x, const uint32_t *w, const int32_t *bias, int32_t *acc,
                      int32_t groups, int32_t ch, const span_t *sp, int32_t zp);

static inline void dot_groups(const int8_t *x, const uint32_t *w, const int32_t *bias,
                              int32_t *acc, int32_t groups, int32_t ch, const span_t *sp,
                              int32_t zp)
{
    tf_dw_dot_groups(x, w, bias, acc, groups, ch, sp, zp);
}
#else
/* One tap of four channels: SSUB16 of the zero point stands in for the assembly's SXTAB16
 * add of -zp. */
#define MAC4(xv, we, wo, zp2)                                                                  \
    do {                                                                                       \
        const uint32_t xe_ = tf_ssub16(tf_sxtb16(xv), zp2);                                    \
        const uint32_t xo_ = tf_ssub16(tf_sxtb16_ror8(xv), zp2);                               \
        a0 = tf_smlabb(xe_, we, a0);                                                           \
        a2 = tf_smlatt(xe_, we, a2);                                                           \
        a1 = tf_smlabb(xo_, wo, a1);                                                           \
        a3 = tf_smlatt(xo_, wo, a3);                                                           \
    } while (0)

static NOINLINE void dot_groups(const int8_t *x, const uint32_t *w, const int32_t *bias,
                                int32_t *acc, int32_t groups, int32_t ch, const span_t *sp,
                                int32_t zp)
{
    const uint32_t zp2 = (uint32_t)(uint16_t)zp * 0x10001u;
    for (int32_t g = 0; g < groups; g++, x += 4, bias += 4, acc += 4) {
        int32_t a0 = bias[0], a1 = bias[1], a2 = bias[2], a3 = bias[3];
        for (int32_t r = 0; r < sp->rows; r++, w += sp->w_skip / 4) {
            for (int32_t t = 0; t < sp->taps; t++, w += WORDS_PER_TAP) {
                MAC4(tf_read_u32(x + r * sp->x_step + t * ch), w[0], w[1], zp2);
            }
        }
        w += sp->w_back / 4;
        acc[0] = a0;
        acc[1] = a1;
        acc[2] = a2;
        acc[3] = a3;
    }
}
#endif

/* Channel c's weight at tap t (= ky * k_w + kx) of the widened layout. */
static inline int32_t weight_at(const dw_params_t *p, int32_t c, int32_t t)
{
    const uint32_t word = p->weights[WORDS_PER_TAP * ((c / 4) * p->k_h * p->k_w + t) + (c & 1)];
    return (int16_t)(uint16_t)(word >> (16 * ((c >> 1) & 1)));
}

/* All channels of one output pixel; x points at its first valid tap. */
static NOINLINE void pixel(const dw_params_t *p, const window_t *win, const int8_t *x,
                           int8_t *out)
{
    const int32_t ch = p->channels, k_w = p->k_w, zp = p->input_zp;
    const int32_t rows = win->ky1 - win->ky0, taps = win->kx1 - win->kx0;
    const int32_t first = win->ky0 * k_w + win->kx0, group_taps = p->k_h * k_w;
    const span_t sp = {rows, taps, p->in_w * ch, 8 * (k_w - taps), 8 * (p->k_h - rows) * k_w};
    int32_t acc[CHUNK];
    for (int32_t c0 = 0; c0 < ch; c0 += CHUNK) {
        const int32_t n = ch - c0 < CHUNK ? ch - c0 : CHUNK;
        int32_t i = n & ~3;
        if (rows > 0 && taps > 0 && i > 0) {
            const uint32_t *w = p->weights + WORDS_PER_TAP * ((c0 / 4) * group_taps + first);
            dot_groups(x + c0, w, p->bias + c0, acc, i / 4, ch, &sp, zp);
        } else {
            for (int32_t j = 0; j < i; j++) {
                acc[j] = p->bias[c0 + j];
            }
        }
        for (; i < n; i++) { /* channels % 4, in the last chunk */
            const int32_t c = c0 + i;
            int32_t a = p->bias[c];
            for (int32_t r = 0; r < rows; r++) {
                for (int32_t t = 0; t < taps; t++) {
                    const int32_t w = weight_at(p, c, first + r * k_w + t);
                    a += (x[r * sp.x_step + t * ch + c] - zp) * w;
                }
            }
            acc[i] = a;
        }
        finish_chunk(p, acc, c0, n, out);
    }
}

void tf_depthwise_conv2d_s8(const int8_t *input, int32_t in_h, int32_t in_w, int32_t channels,
                            const uint32_t *weights, int32_t k_h, int32_t k_w,
                            const int32_t *bias, const int32_t *multiplier,
                            const int32_t *shift, const int32_t *requant, int32_t input_zp,
                            int32_t output_zp, int32_t stride, int32_t pad_top,
                            int32_t pad_left, int32_t pad_bottom, int32_t pad_right,
                            int32_t act_min, int32_t act_max, int8_t *output)
{
    dw_params_t p = {weights,  bias,    multiplier, shift,     requant, channels,
                     in_w,     k_h,     k_w,        input_zp,  output_zp, act_min,
                     act_max,  1};
    for (int32_t c = 0; requant == NULL && c < channels; c++) {
        p.fast_shifts &= shift[c] <= -1 && shift[c] >= -31;
    }
    const int32_t out_h = tf_conv2d_out_size(in_h, k_h, stride, pad_top, pad_bottom);
    const int32_t out_w = tf_conv2d_out_size(in_w, k_w, stride, pad_left, pad_right);
    window_t win;
    for (int32_t oy = 0; oy < out_h; oy++) {
        const int32_t y0 = oy * stride - pad_top;
        tf_conv2d_valid_taps(y0, in_h, k_h, &win.ky0, &win.ky1);
        for (int32_t ox = 0; ox < out_w; ox++, output += channels) {
            const int32_t x0 = ox * stride - pad_left;
            tf_conv2d_valid_taps(x0, in_w, k_w, &win.kx0, &win.kx1);
            /* The first valid tap; a window with none never reads x (pads >= k only). */
            const int32_t empty = win.ky0 == win.ky1 || win.kx0 == win.kx1;
            const int8_t *x =
                empty ? input : input + ((y0 + win.ky0) * in_w + x0 + win.kx0) * channels;
            pixel(&p, &win, x, output);
        }
    }
}
