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
    const int32_t *requant; /* NULL, or {M, rc, sh} per channel */
    int32_t channels, in_w, k_w, input_zp, output_zp, act_min, act_max;
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
    const int32_t t = (int32_t)(((int64_t)acc * multiplier) >> 31);
    return ((t >> (-1 - shift)) + 1) >> 1;
}

#if DW_ASM
/* out[i] = SSAT8(((hi_i:lo_i + acc[i] * M_i) >> 32) >> sh_i) for 2 * pairs (> 0) channels;
 * table: {M, lo, hi, sh} per channel. 12 instructions per pair, every register in use. */
void tf_dw_requant_pairs(const int32_t *acc, const int32_t *table, int8_t *out, int32_t pairs);
__asm__(
    "    .syntax unified\n"
    "    .thumb\n"
    "    .pushsection .text.tf_dw_requant_pairs,\"ax\",%progbits\n"
    "    .balign 4\n"
    "    .global tf_dw_requant_pairs\n"
    "    .type   tf_dw_requant_pairs, %function\n"
    "    .thumb_func\n"
    "tf_dw_requant_pairs:\n"
    "    push    {r4-r11, lr}\n"
    "1:\n"
    "    ldmia   r0!, {r4, r5}\n"
    "    ldmia   r1!, {r6-r12, lr}\n" /* M0 lo0 hi0 sh0 M1 lo1 hi1 sh1 */
    "    smlal   r7, r8, r4, r6\n"
    "    smlal   r11, r12, r5, r10\n"
    "    asr     r8, r8, r9\n"
    "    asr     r12, r12, lr\n"
    "    ssat    r8, #8, r8\n"
    "    ssat    r12, #8, r12\n"
    "    strb    r8, [r2], #1\n"
    "    strb    r12, [r2], #1\n"
    "    subs    r3, r3, #1\n"
    "    bne     1b\n"
    "    pop     {r4-r11, pc}\n"
    "    .size   tf_dw_requant_pairs, . - tf_dw_requant_pairs\n"
    "    .popsection\n");
#endif

/* The requant table's form (see the header): SMLAL, ASR, SSAT; then the activation range. */
static void finish_table(const dw_params_t *p, const int32_t *acc, int32_t c, int32_t n,
                         int8_t *out)
{
    const int32_t *t = p->requant + 4 * c;
    int32_t i = 0;
#if DW_ASM
    if (n >= 2) {
        tf_dw_requant_pairs(acc, t, out, n / 2);
        i = n & ~1;
    }
#endif
    for (; i < n; i++) {
        const int32_t *e = t + 4 * i;
        const int64_t sum = (int64_t)((uint64_t)(int64_t)e[2] << 32 | (uint32_t)e[1]) +
                            (int64_t)acc[i] * e[0];
        out[i] = (int8_t)tf_sat_s8((int32_t)(sum >> 32) >> e[3]);
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

#if DW_ASM
/* One tap of four channels: x - input_zp and w as halfword pairs (SXTAB16 adds -zp while it
 * sign-extends, so the zero point costs nothing), one SMLAxy per channel. Inputs at
 * [%[x] xo], weights at [wa] (address operands). */
#define TAP4(xo, wa)                                                                           \
    "ldr %[xv], [%[x]" xo "]\n\t"                                                               \
    "ldr %[wv], " wa "\n\t"                                                                    \
    "sxtab16 %[xe], %[z], %[xv]\n\t"                                                           \
    "sxtb16 %[we], %[wv]\n\t"                                                                  \
    "sxtab16 %[xv], %[z], %[xv], ror #8\n\t"                                                   \
    "sxtb16 %[wv], %[wv], ror #8\n\t"                                                          \
    "smlabb %[a0], %[xe], %[we], %[a0]\n\t"                                                    \
    "smlatt %[a2], %[xe], %[we], %[a2]\n\t"                                                    \
    "smlabb %[a1], %[xv], %[wv], %[a1]\n\t"                                                    \
    "smlatt %[a3], %[xv], %[wv], %[a3]\n\t"
/* TAP4 at [x] and [x + d], then x += ch, in 32-bit encodings only: TAP_BYTES, fixed, so
 * that a row can jump into a run of them. */
#define TAPW                                                                                   \
    "ldr.w %[xv], [%[x]]\n\t"                                                                   \
    "ldr.w %[wv], [%[x], %[d]]\n\t"                                                            \
    "sxtab16 %[xe], %[z], %[xv]\n\t"                                                           \
    "sxtb16 %[we], %[wv]\n\t"                                                                  \
    "sxtab16 %[xv], %[z], %[xv], ror #8\n\t"                                                   \
    "sxtb16 %[wv], %[wv], ror #8\n\t"                                                          \
    "smlabb %[a0], %[xe], %[we], %[a0]\n\t"                                                    \
    "smlatt %[a2], %[xe], %[we], %[a2]\n\t"                                                    \
    "smlabb %[a1], %[xv], %[wv], %[a1]\n\t"                                                    \
    "smlatt %[a3], %[xv], %[wv], %[a3]\n\t"                                                    \
    "add.w %[x], %[x], %[ch]\n\t"
#define TAP_BYTES 44
#define TAP_BYTES_STR "44"
#define UNROLL 8 /* taps a row, at most, of the unrolled path */
#define UNROLL_STR "8"
/* The accumulators (read and written, or "=&r" when the asm loads them) and the temporaries. */
#define TAP4_OPERANDS(acc)                                                                     \
    [a0] acc(a0), [a1] acc(a1), [a2] acc(a2), [a3] acc(a3), [xv] "=&r"(xv), [wv] "=&r"(wv),    \
        [xe] "=&r"(xe), [we] "=&r"(we)
#else
/* The same in C: SSUB16 of the zero point stands in for SXTAB16's add of -zp. */
#define MAC4(xv, wv, zp2)                                                                      \
    do {                                                                                       \
        const uint32_t xe_ = tf_ssub16(tf_sxtb16(xv), zp2), we_ = tf_sxtb16(wv);               \
        const uint32_t xo_ = tf_ssub16(tf_sxtb16_ror8(xv), zp2), wo_ = tf_sxtb16_ror8(wv);     \
        a0 = tf_smlabb(xe_, we_, a0);                                                          \
        a2 = tf_smlatt(xe_, we_, a2);                                                          \
        a1 = tf_smlabb(xo_, wo_, a1);                                                          \
        a3 = tf_smlatt(xo_, wo_, a3);                                                          \
    } while (0)
#endif

#if DW_ASM
/* Rows of more than UNROLL taps (k_w > 8), a tap a loop iteration: 13 instructions a tap. */
static NOINLINE void long_rows(const int8_t *xp, int32_t d, int32_t ch, int32_t rows,
                               int32_t taps, int32_t x_step, int32_t w_step, uint32_t neg_zp2,
                               const int32_t *bias, int32_t *acc)
{
    int32_t a0 = bias[0], a1 = bias[1], a2 = bias[2], a3 = bias[3];
    uint32_t xv, wv, xe, we;
    for (int32_t r = 0; r < rows; r++, xp += x_step - taps * ch, d += w_step - x_step) {
        int32_t n = taps;
        __asm__ volatile("1:\n\t" TAP4("", "[%[x], %[d]]")
                         "add %[x], %[x], %[ch]\n\t"
                         "subs %[n], %[n], #1\n\t"
                         "bne 1b\n\t"
                         : TAP4_OPERANDS("+r"), [x] "+r"(xp), [n] "+r"(n)
                         : [ch] "r"(ch), [d] "r"(d), [z] "r"(neg_zp2)
                         : "cc", "memory");
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}
#endif

#if DW_ASM
/* The group loop of the assembly paths, around their taps: the accumulators start from the
 * bias (LDRD), end in acc (STRD); x (and w) move on by 4 channels. Loop state lives in memory
 * operands (on the stack), since the taps need every register. */
#define GROUP_BEGIN                                                                            \
    "1:\n\t"                                                                                   \
    "ldr %[xv], %[bias]\n\t"                                                                   \
    "ldrd %[a0], %[a1], [%[xv]], #16\n\t"                                                      \
    "ldrd %[a2], %[a3], [%[xv], #-8]\n\t"                                                      \
    "str %[xv], %[bias]\n\t"
#define GROUP_END                                                                              \
    "ldr %[xv], %[x_back]\n\t"                                                                 \
    "add %[x], %[x], %[xv]\n\t"                                                                \
    "ldr %[xv], %[acc]\n\t"                                                                    \
    "strd %[a0], %[a1], [%[xv]], #16\n\t"                                                      \
    "strd %[a2], %[a3], [%[xv], #-8]\n\t"                                                      \
    "str %[xv], %[acc]\n\t"                                                                    \
    "ldr %[wv], %[acc_end]\n\t"                                                                \
    "cmp %[xv], %[wv]\n\t"                                                                     \
    "bne 1b\n\t"
/* One row of a whole 3x3 window (taps at w, w + ch, w + 2ch; x moves with TAP4), then the
 * step to the next row. */
#define ROW3                                                                                   \
    TAP4("", "[%[w]]")                                                                         \
    TAP4(", %[ch]", "[%[w], %[ch]]") TAP4(", %[ch], lsl #1", "[%[w], %[ch], lsl #1]")
#define NEXT_ROW                                                                               \
    "add %[x], %[x], %[xs]\n\t"                                                                \
    "add %[w], %[w], %[ch]\n\t"                                                                \
    "add %[w], %[w], %[ch], lsl #1\n\t"
#define GROUP_OUTPUTS [bias] "+m"(bias), [acc] "+m"(acc)
#define GROUP_INPUTS [acc_end] "m"(acc_end), [x_back] "m"(x_back)
#endif

/* `groups` (> 0) groups of four channels over the valid rows x taps of a window, starting
 * from the bias: x and w step by ch bytes per tap, by x_step and w_step per row, and by 4 per
 * group. Padded taps are real zeros (x - input_zp with x = input_zp) and are skipped. The hot
 * loop. On ARM it is assembly, since GCC 12 spills the accumulators: 10 instructions per tap
 * for a whole 3x3 window; otherwise rows of up to UNROLL taps, 11 per tap and 8 per row, with
 * w addressed from x (their distance is fixed within a row) so that one pointer moves. */
static NOINLINE void dot_groups(const int8_t *x, const int8_t *w, const int32_t *bias,
                                int32_t *acc, int32_t groups, int32_t ch, int32_t rows,
                                int32_t taps, int32_t x_step, int32_t w_step, int32_t zp)
{
#if DW_ASM
    const uint32_t neg_zp2 = (uint32_t)(uint16_t)-zp * 0x10001u;
    const int32_t *const acc_end = acc + 4 * groups;
    int32_t a0, a1, a2, a3;
    uint32_t xv, wv, xe, we;
    if (rows == 3 && taps == 3 && w_step == 3 * ch) { /* a whole 3x3 window, unrolled */
        const int32_t x_back = 4 - 2 * x_step, w_back = 4 - 6 * ch;
        __asm__ volatile(GROUP_BEGIN ROW3 NEXT_ROW ROW3 NEXT_ROW ROW3
                         "ldr %[xv], %[w_back]\n\t"
                         "add %[w], %[w], %[xv]\n\t"
                         GROUP_END
                         : TAP4_OPERANDS("=&r"), [x] "+r"(x), [w] "+r"(w), GROUP_OUTPUTS
                         : [ch] "r"(ch), [xs] "r"(x_step), [z] "r"(neg_zp2),
                           [w_back] "m"(w_back), GROUP_INPUTS
                         : "cc", "memory");
    } else if (taps <= UNROLL) {
        /* Each row enters UNROLL unrolled taps part-way (add pc). */
        const int32_t entry = (UNROLL - taps) * TAP_BYTES, x_back = 4 - rows * x_step;
        const int32_t x_skip = x_step - taps * ch, d_skip = w_step - x_step;
        const int32_t d0 = (int32_t)((uintptr_t)w - (uintptr_t)x); /* w - x, first row */
        int32_t d, r;
        __asm__ volatile(GROUP_BEGIN
                         "ldr %[d], %[d0]\n\t"
                         "ldr %[r], %[rows]\n\t"
                         "2:\n\t"
                         "ldr %[xv], %[entry]\n\t"
                         "add pc, %[xv]\n\t" /* pc reads as this add + 4 */
                         "nop\n\t"
                         "3:\n\t" TAPW TAPW TAPW TAPW TAPW TAPW TAPW TAPW
                         "4:\n\t"
                         ".if (4b - 3b) != " TAP_BYTES_STR " * " UNROLL_STR "\n\t"
                         ".error \"unrolled taps of unexpected size\"\n\t"
                         ".endif\n\t"
                         "ldr %[xv], %[x_skip]\n\t"
                         "add %[x], %[x], %[xv]\n\t"
                         "ldr %[xv], %[d_skip]\n\t"
                         "add %[d], %[d], %[xv]\n\t"
                         "subs %[r], %[r], #1\n\t"
                         "bne 2b\n\t"
                         GROUP_END
                         : TAP4_OPERANDS("=&r"), [x] "+r"(x), [d] "=&r"(d), [r] "=&r"(r),
                           GROUP_OUTPUTS
                         : [ch] "r"(ch), [z] "r"(neg_zp2), [entry] "m"(entry),
                           [x_skip] "m"(x_skip), [d_skip] "m"(d_skip), [d0] "m"(d0),
                           [rows] "m"(rows), GROUP_INPUTS
                         : "cc", "memory");
    } else {
        for (int32_t g = 0; g < groups; g++, x += 4, w += 4, bias += 4, acc += 4) {
            long_rows(x, (int32_t)((uintptr_t)w - (uintptr_t)x), ch, rows, taps, x_step,
                      w_step, neg_zp2, bias, acc);
        }
    }
#else
    const uint32_t zp2 = (uint32_t)(uint16_t)zp * 0x10001u;
    for (int32_t g = 0; g < groups; g++, x += 4, w += 4, bias += 4, acc += 4) {
        int32_t a0 = bias[0], a1 = bias[1], a2 = bias[2], a3 = bias[3];
        for (int32_t r = 0; r < rows; r++) {
            for (int32_t t = 0; t < taps * ch; t += ch) {
                MAC4(tf_read_u32(x + r * x_step + t), tf_read_u32(w + r * w_step + t), zp2);
            }
        }
        acc[0] = a0;
        acc[1] = a1;
        acc[2] = a2;
        acc[3] = a3;
    }
#endif
}

/* All channels of one output pixel; x points at its first valid tap. */
static NOINLINE void pixel(const dw_params_t *p, const window_t *win, const int8_t *x,
                           int8_t *out)
{
    const int32_t ch = p->channels, k_w = p->k_w, zp = p->input_zp;
    const int32_t rows = win->ky1 - win->ky0, taps = win->kx1 - win->kx0;
    const int32_t x_step = p->in_w * ch, w_step = k_w * ch;
    const int8_t *w_first = p->weights + (win->ky0 * k_w + win->kx0) * ch;
    int32_t acc[CHUNK];
    for (int32_t c0 = 0; c0 < ch; c0 += CHUNK) {
        const int32_t n = ch - c0 < CHUNK ? ch - c0 : CHUNK;
        int32_t i = n & ~3;
        if (rows > 0 && taps > 0 && i > 0) {
            dot_groups(x + c0, w_first + c0, p->bias + c0, acc, i / 4, ch, rows, taps, x_step,
                       w_step, zp);
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
                    a += (x[r * x_step + t * ch + c] - zp) * w_first[r * w_step + t * ch + c];
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
                            const int32_t *shift, const int32_t *requant, int32_t input_zp,
                            int32_t output_zp, int32_t stride, int32_t pad_top,
                            int32_t pad_left, int32_t pad_bottom, int32_t pad_right,
                            int32_t act_min, int32_t act_max, int8_t *output)
{
    dw_params_t p = {weights,  bias,      multiplier, shift,   requant, channels, in_w,
                     k_w,      input_zp,  output_zp,  act_min, act_max, 1};
    for (int32_t c = 0; c < channels; c++) {
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
