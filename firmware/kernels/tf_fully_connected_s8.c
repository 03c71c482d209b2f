/* tf_fully_connected_s8 - see the header for shapes, layouts and the formula. */
#include "tf_fully_connected_s8.h"

#include "tf_dsp.h"
#include "tf_math.h"

/* TF_ARM_DSP_ASM (tf_dsp.h): the row loops (fast and generic), and the sign extension of
 * tokens into scratch, are assembly, tf_fully_connected_s8_arm.S; otherwise the portable C
 * below, with the same arithmetic and the same scratch layouts. */

#if defined(__GNUC__)
#define FC_NOINLINE __attribute__((noinline))
#define FC_INLINE inline __attribute__((always_inline))
#else
#define FC_NOINLINE
#define FC_INLINE inline
#endif

/* ---------------------------------------------------------------------------------------------
 * Requantization. tf_requantize(x, M, s) = floor((x * M + 2^(30-s)) / 2^(31-s)). When
 * -24 <= s <= -2 the division is by 2^32 at least, and with sh = -1 - s, c = (2 zp + 1) 2^(sh-1):
 *
 *     tf_requantize(x, M, s) + zp == (c + floor(x * M / 2^32)) >> sh == SMMLA(x, M, c) >> sh
 *
 * exactly (the high word of the product is within +-2^30 and |c| < 2^30, so nothing wraps).
 * That is SMMLA + ASR + SSAT per output. Anything else takes the generic path below.
 * ------------------------------------------------------------------------------------------- */

enum { MODE_GENERIC = 0, MODE_FAST = 1, MODE_FAST_CLAMP = 2 };

static inline int32_t fc_mode(const int32_t *shift, int32_t output_zp, int32_t act_min,
                              int32_t act_max, int32_t k, int32_t m)
{
    if (k < 4 || m < 1 || output_zp < -128 || output_zp > 127 || act_min < -128 ||
        act_max > 127 || act_min > act_max) {
        return MODE_GENERIC;
    }
    int32_t j = 0;
    for (; j + 2 <= m; j += 2) { /* two at a time: one LDRD, one branch */
        if (((uint32_t)(shift[j] + 24) > 22u) | ((uint32_t)(shift[j + 1] + 24) > 22u)) {
            return MODE_GENERIC;
        }
    }
    if (j < m && (uint32_t)(shift[j] + 24) > 22u) {
        return MODE_GENERIC;
    }
    return act_min == -128 && act_max == 127 ? MODE_FAST : MODE_FAST_CLAMP;
}

int32_t tf_fully_connected_s8_mode(const int32_t *shift, int32_t output_zp, int32_t act_min,
                                   int32_t act_max, int32_t k, int32_t m)
{
    return fc_mode(shift, output_zp, act_min, act_max, k, m);
}

/* The fast form's per-row constants: sh = -1 - shift, c = z2 * 2^(sh - 1), z2 = 2 zp + 1. */
static inline int32_t fast_out(int32_t acc, int32_t mult, int32_t shift, int32_t z2, int32_t mode,
                               int32_t lo, int32_t hi)
{
#if TF_ROUNDING_TFLITE /* TFLite's double rounding (the assembly's epilogue: see there) */
    const int32_t v = tf_requantize(acc, mult, shift) + (z2 >> 1);
#else
    const int32_t sh = -1 - shift;
    const int32_t v = tf_smmla(acc, mult, z2 * (int32_t)(1u << (sh - 1))) >> sh;
#endif
    return mode == MODE_FAST ? tf_sat_s8(v) : tf_clamp(v, lo, hi);
}

#if TF_ROUNDING_TFLITE
int32_t tf_fully_connected_s8_tflite_fast(const int32_t *bias, int32_t k, int32_t m)
{
    /* |acc| <= |bias| + k 128^2 must stay below 2^31 - 2^24: the epilogue adds up to 2^23 to
     * SRDHM(acc, M), |SRDHM| <= |acc|, in 32 bits. */
    const int64_t room = ((int64_t)1 << 31) - ((int64_t)1 << 24) - (int64_t)k * 128 * 128;
    for (int32_t j = 0; j < m; j++) {
        if ((bias[j] < 0 ? -(int64_t)bias[j] : (int64_t)bias[j]) >= room) {
            return 0;
        }
    }
    return 1;
}
#endif

/* ---------------------------------------------------------------------------------------------
 * Generic path (tf_fully_connected_s8_generic): any requantization parameters (tf_requantize
 * + tf_clamp per output). Tiles of 4 tokens, leftover tokens one at a time (dot_1x1). Scratch
 * layout of a tile, G = k / 4 groups, r = k % 4:
 *
 *   0               group g, token t at 8 (4 g + t): SXTB16(x), SXTB16(x ror 8) of the token's
 *                   inputs 4g..4g+3
 *   32 G            the tail, 8 bytes per input 4G + i (i < r): (x_0, x_1), (x_2, x_3) as
 *                   int16 pairs, one per token (24 bytes)
 *   32 G + 24       gen_state_t: the row loop's parameters
 *
 * Every row of the weights against the tile: the bias, G groups (two SMLADs per token), the
 * tail (SMLABB / SMLATB against each weight byte), tf_requantize + output_zp, tf_clamp, four
 * strided stores (gen_tile: tf_fc_gen_tile on ARM).
 * ------------------------------------------------------------------------------------------- */

#define GEN_TILE 4
#define GEN_TAIL_BYTES 24

/* gen_tile's parameters; tf_fc_gen_tile reads them by offset (and moves out on by m). */
typedef struct {
    const uint32_t *xs;                /*  0: the tile */
    int32_t rest;                      /*  4: k % 4 */
    const int32_t *bias;               /*  8 */
    const int32_t *multiplier, *shift; /* 12, 16 */
    int32_t zp, lo, hi;                /* 20, 24, 28: output_zp, act_min, act_max */
    int8_t *out;                       /* 32: token 0's output of the current row */
    int32_t d1, d2, d3;                /* 36-44: m - 1, 2m - 1, 3m - 1 (tokens 1-3, from out
                                        * after its post-increment) */
    int32_t m;                         /* 48 */
    const int8_t *weights;             /* 52 */
} gen_state_t;

#if TF_ARM_DSP_ASM
_Static_assert(sizeof(gen_state_t) == 56, "gen_state_t is the assembly's layout");
void tf_fc_gen_tile(gen_state_t *st);
#endif

static inline int8_t finish(int32_t acc, int32_t mult, int32_t shift, int32_t zp, int32_t lo,
                            int32_t hi)
{
    return (int8_t)tf_clamp(tf_requantize(acc, mult, shift) + zp, lo, hi);
}

#if TF_ARM_DSP_ASM
static inline void gen_tile(gen_state_t *st) { tf_fc_gen_tile(st); }
#else
static void gen_tile(gen_state_t *st)
{
    const uint32_t *xs_end = (const uint32_t *)st - GEN_TAIL_BYTES / 4;
    const int8_t *w = st->weights;
    int8_t *out = st->out;
    for (int32_t j = 0; j < st->m; j++, out++) {
        int32_t a0 = st->bias[j], a1 = a0, a2 = a0, a3 = a0;
        const uint32_t *s = st->xs;
        for (; s < xs_end; s += 2 * GEN_TILE, w += 4) {
            const uint32_t wv = tf_read_u32(w);
            const uint32_t we = tf_sxtb16(wv), wo = tf_sxtb16_ror8(wv);
            a0 = tf_smlad(s[1], wo, tf_smlad(s[0], we, a0));
            a1 = tf_smlad(s[3], wo, tf_smlad(s[2], we, a1));
            a2 = tf_smlad(s[5], wo, tf_smlad(s[4], we, a2));
            a3 = tf_smlad(s[7], wo, tf_smlad(s[6], we, a3));
        }
        for (int32_t i = 0; i < st->rest; i++, s += 2, w++) {
            const uint32_t wi = (uint32_t)(int32_t)*w;
            a0 = tf_smlabb(s[0], wi, a0);
            a1 = tf_smlabb(s[0] >> 16, wi, a1);
            a2 = tf_smlabb(s[1], wi, a2);
            a3 = tf_smlabb(s[1] >> 16, wi, a3);
        }
        const int32_t mu = st->multiplier[j], sh = st->shift[j];
        out[0] = finish(a0, mu, sh, st->zp, st->lo, st->hi);
        out[st->d1 + 1] = finish(a1, mu, sh, st->zp, st->lo, st->hi);
        out[st->d2 + 1] = finish(a2, mu, sh, st->zp, st->lo, st->hi);
        out[st->d3 + 1] = finish(a3, mu, sh, st->zp, st->lo, st->hi);
    }
}
#endif

/* One token x one row, for the tokens left over by the tiles. */
static int32_t dot_1x1(const int8_t *x, const int8_t *w, int32_t k, int32_t acc)
{
    int32_t i = 0;
    for (; i + 4 <= k; i += 4) {
        const uint32_t a = tf_read_u32(x + i), b = tf_read_u32(w + i);
        acc = tf_smlad(tf_sxtb16(a), tf_sxtb16(b), acc);
        acc = tf_smlad(tf_sxtb16_ror8(a), tf_sxtb16_ror8(b), acc);
    }
    for (; i < k; i++) {
        acc += (int32_t)x[i] * (int32_t)w[i];
    }
    return acc;
}

/* Sign-extend GEN_TILE tokens into scratch: their groups and their tail (the layout above). */
static void gen_extend_tile(const int8_t *x, int32_t k, uint32_t *xs)
{
    const int32_t groups = k / 4;
    uint32_t *tail = xs + 2 * GEN_TILE * groups;
    for (int32_t t = 0; t < GEN_TILE; t++) {
        const int8_t *row = x + t * k;
        uint32_t *dst = xs + 2 * t;
        for (int32_t g = 0; g < groups; g++) {
            const uint32_t v = tf_read_u32(row + 4 * g);
            dst[0] = tf_sxtb16(v);
            dst[1] = tf_sxtb16_ror8(v);
            dst += 2 * GEN_TILE;
        }
    }
    for (int32_t i = 4 * groups; i < k; i++, tail += 2) {
        tail[0] = (uint16_t)x[i] | (uint32_t)(uint16_t)x[k + i] << 16;
        tail[1] = (uint16_t)x[2 * k + i] | (uint32_t)(uint16_t)x[3 * k + i] << 16;
    }
}

/* The generic path (tf_fully_connected_s8_generic). */
static FC_INLINE void fc_generic(const int8_t *input, const int8_t *weights, const int32_t *bias,
                                 const int32_t *multiplier, const int32_t *shift,
                                 int32_t output_zp, int32_t act_min, int32_t act_max, int32_t n,
                                 int32_t k, int32_t m, int8_t *output, void *scratch)
{
    uint32_t *xs = (uint32_t *)scratch;
    gen_state_t *st = (gen_state_t *)(xs + 2 * GEN_TILE * (k / 4) + GEN_TAIL_BYTES / 4);
    int32_t t = 0;
    if (n >= GEN_TILE) {
        *st = (gen_state_t){xs, k % 4, bias, multiplier, shift, output_zp, act_min, act_max,
                            output, m - 1, 2 * m - 1, 3 * m - 1, m, weights};
    }
    for (; t + GEN_TILE <= n; t += GEN_TILE) {
        gen_extend_tile(input + t * k, k, xs);
        st->out = output + t * m;
        gen_tile(st);
    }
    for (; t < n; t++) {
        const int8_t *x = input + t * k;
        for (int32_t j = 0; j < m; j++) {
            output[t * m + j] = finish(dot_1x1(x, weights + j * k, k, bias[j]), multiplier[j],
                                       shift[j], output_zp, act_min, act_max);
        }
    }
}

/* ---------------------------------------------------------------------------------------------
 * Fast path (k >= 4, parameters in the fast form). Tiles of T = 6, 4 or 2 tokens; scratch
 * layout of a tile, G = k / 4 groups:
 *
 *   0               header; word 1: the row loop's entry after its first group (ARM)
 *   8               the tile: group g, token t at 8 + 8 (T g + t): SXTB16(x), SXTB16(x ror 8)
 *                   of the token's inputs 4g..4g+3
 *   8 + 8 T G       end marker, 16 bytes, first word FC_END (no SXTB16 result equals it)
 *   24 + 8 T G      the row loop's state, 64 bytes (fc_state_t, ARM)
 *   88 + 8 T G      tail group, T x 8 bytes: inputs k-4..k-1 with the ones already in the
 *                   tile zeroed, read against the weight word at k - 4, so no load passes
 *                   the end of a row
 *
 * A token on its own: its groups at 0 (8 bytes each), its tail group, then (ARM) the state
 * of the one-token loop (fc_solo_state_t).
 * ------------------------------------------------------------------------------------------- */

#define TILE TF_FC_TILE
_Static_assert(TF_FC_TILE == 6, "the assembly is written for 6-token tiles");
#define FC_END 0x80000000u

#if TF_ARM_DSP_ASM
void tf_fc_extend_token(const int8_t *x, int32_t k, uint32_t *xs);

/* A token on its own: its k / 4 groups at xs (8 bytes each), then its tail group. */
static inline void extend_token(const int8_t *x, int32_t k, uint32_t *xs)
{
    tf_fc_extend_token(x, k, xs);
}
#else
/* Extend `groups` groups of 4 inputs from x into one token's slot of a tile of T tokens
 * (T = 6; T = 1: a token on its own): group g at dst + 2 T g (words). */
static inline void extend_groups(const int8_t *x, int32_t groups, uint32_t *dst, int32_t T)
{
    for (int32_t g = groups; g > 0; g--) {
        const uint32_t v = tf_read_u32(x);
        dst[0] = tf_sxtb16(v);
        dst[1] = tf_sxtb16_ror8(v);
        dst += 2 * T;
        x += 4;
    }
}

/* A token on its own: its k / 4 groups at xs (8 bytes each), then its tail group (k % 4 !=
 * 0): inputs k-4..k-1 with the ones already in a group zeroed. */
static inline void extend_token(const int8_t *x, int32_t k, uint32_t *xs)
{
    const int32_t rest = k % 4;
    extend_groups(x, k / 4, xs, 1);
    if (rest) {
        uint32_t *tail = xs + 2 * (k / 4);
        const uint32_t v = tf_read_u32(x + k - 4) & (0xFFFFFFFFu << (8 * (4 - rest)));
        tail[0] = tf_sxtb16(v);
        tail[1] = tf_sxtb16_ror8(v);
    }
}
#endif

typedef struct {
    const int8_t *weights;
    const int32_t *bias, *multiplier, *shift;
    int32_t k, m, z2, lo, hi, mode;
} fc_args_t;

#if TF_ARM_DSP_ASM

/* The row loop's state, in scratch right after the end marker: the assembly finds it there
 * with the tile pointer it has just walked, so no register is spent on it. */
typedef struct {
    const int32_t *pm;     /*  0: multiplier of the current row */
    const int32_t *ps;     /*  4: its shift */
    int32_t z2;            /*  8: 2 * output_zp + 1 */
    int32_t unused;        /* 12 */
    int8_t *pa, *pb;       /* 16, 20: outputs of tokens 0 and T/2, current row */
    int32_t d1, d2;        /* 24, 28: m - 1, 2m - 1 (the next tokens, after a post-increment) */
    int32_t db;            /* 32: bias - multiplier, in bytes */
    const int32_t *pm_end; /* 36: multiplier + m */
    int32_t lo, hi;        /* 40, 44: activation range (MODE_FAST_CLAMP) */
    const uint32_t *tile;  /* 48 */
    uint32_t after;        /* 52: code after the MACs (table index in, address inside) */
    uint32_t epi;          /* 56: the epilogue (likewise) */
    uint32_t w0;           /* 60: weights - 4 (every weight load pre-increments) */
} fc_state_t;
_Static_assert(sizeof(fc_state_t) == 64, "fc_state_t is the assembly's layout");

/* tf_fully_connected_s8_arm.S: every row against the T tokens of a tile (registers, the
 * row loop and its jumps: see there). */
void tf_fc_tile6(fc_state_t *st);
void tf_fc_tile4(fc_state_t *st);
void tf_fc_tile2(fc_state_t *st);

/* Table indices of the code addresses (the assembly's table, in this order). */
enum { AT_DONE = 0, AT_G0 = 1, AT_EPI = 9, AT_EPI_CLAMP = 10, AT_TAIL = 10 /* + k % 4 */ };

/* Every row against the T tokens extended at sb. */
static FC_INLINE void tile_rows(int32_t T, const fc_args_t *a, uint32_t *sb, int8_t *out)
{
    const int32_t groups = a->k / 4, rest = a->k % 4;
    uint32_t *tile = sb + 2;
    fc_state_t *st = (fc_state_t *)(tile + 2 * T * groups + 4);
    const int32_t left = groups - 1; /* groups after the first, run by the 8-group loop */
    tile[2 * T * groups] = FC_END;
    sb[1] = left == 0 ? AT_DONE : (uint32_t)(AT_G0 + (8 - left % 8) % 8);
    st->pm = a->multiplier;
    st->ps = a->shift;
    st->z2 = a->z2;
    st->pa = out;
    st->pb = out + (T / 2) * a->m;
    st->d1 = a->m - 1;
    st->d2 = 2 * a->m - 1;
    st->db = (int32_t)((uintptr_t)a->bias - (uintptr_t)a->multiplier);
    st->pm_end = a->multiplier + a->m;
    st->lo = a->lo;
    st->hi = a->hi;
    st->tile = tile;
    st->epi = a->mode == MODE_FAST ? AT_EPI : AT_EPI_CLAMP;
    st->after = rest ? (uint32_t)(AT_TAIL + rest) : st->epi;
    st->w0 = (uint32_t)(uintptr_t)a->weights - 4u;
    if (T == 6) {
        tf_fc_tile6(st);
    } else if (T == 4) {
        tf_fc_tile4(st);
    } else {
        tf_fc_tile2(st);
    }
}

/* The one-token loop's state, after the token's groups and tail group. */
typedef struct {
    const int32_t *pm;     /*  0: multiplier of the pair's first row */
    const int32_t *ps;     /*  4: its shift */
    int32_t z2;            /*  8 */
    int32_t unused;        /* 12 */
    int8_t *out;           /* 16: output of the pair's first row */
    int32_t adv;           /* 20: 2k - 4G: the weight pointers, pair's groups done -> next pair */
    const uint32_t *xs;    /* 24: the extended token */
    const uint32_t *xend;  /* 28: its whole pairs of groups */
    int32_t db;            /* 32: bias - multiplier, bytes */
    const int32_t *pm_end; /* 36 */
    int32_t lo, hi;        /* 40, 44 */
    uint32_t after;        /* 48: after the pairs of groups: odd group, tail or epilogue */
    uint32_t epi;          /* 52: the epilogue */
    uint32_t entry;        /* 56: into the 4-pair loop */
    uint32_t after_odd;    /* 60: after the odd group: tail or epilogue */
    int32_t toff;          /* 64: k % 4 - 4: the tail word's offset from the groups' end */
    const int8_t *w0;      /* 68: the first row */
    int32_t k;             /* 72 */
} fc_solo_state_t;
_Static_assert(sizeof(fc_solo_state_t) == 76, "fc_solo_state_t is the assembly's layout");

/* tf_fully_connected_s8_arm.S: every pair of rows against one token. */
void tf_fc_solo(fc_solo_state_t *st);

/* Table indices of the code addresses (the assembly's table, in this order). */
enum {
    AS_DONE = 0, AS_A0 = 1, AS_U0 = 5, AS_EPI = 9, AS_EPI_CLAMP = 10, AS_ODD = 11, AS_TAIL = 12
};

/* Rows [j0, j0 + 2 * pairs) against the token extended at xs (pairs >= 1). */
static FC_INLINE void solo_run(const fc_args_t *a, uint32_t *xs, int32_t j0, int32_t row_pairs,
                     int8_t *out)
{
    const int32_t k = a->k, groups = k / 4, pairs = groups / 2, rest = k % 4;
    fc_solo_state_t *st = (fc_solo_state_t *)(xs + 2 * groups + 2);
    const int32_t aligned = rest == 0 && (uintptr_t)a->weights % 4 == 0;
    const uint32_t epi = a->mode == MODE_FAST ? AS_EPI : AS_EPI_CLAMP;
    st->pm = a->multiplier + j0;
    st->ps = a->shift + j0;
    st->z2 = a->z2;
    st->out = out + j0;
    st->adv = 2 * k - 4 * groups;
    st->xs = xs;
    st->xend = xs + 4 * pairs;
    st->db = (int32_t)((uintptr_t)a->bias - (uintptr_t)a->multiplier);
    st->pm_end = st->pm + 2 * row_pairs;
    st->lo = a->lo;
    st->hi = a->hi;
    st->after_odd = rest ? AS_TAIL : epi;
    st->after = groups & 1 ? AS_ODD : st->after_odd;
    st->epi = epi;
    st->entry = pairs == 0 ? AS_DONE : (uint32_t)((aligned ? AS_A0 : AS_U0) + (4 - pairs % 4) % 4);
    st->toff = rest - 4;
    st->w0 = a->weights + j0 * k;
    st->k = k;
    tf_fc_solo(st);
}

/* One token against every row, two rows at a time (an odd m: the last pair overlaps). */
static FC_INLINE void solo_rows(const fc_args_t *a, uint32_t *xs, int8_t *out)
{
    const int32_t m = a->m;
    if (m >= 2) {
        solo_run(a, xs, 0, m / 2, out);
        if (m & 1) {
            solo_run(a, xs, m - 2, 1, out);
        }
        return;
    }
    /* m == 1 */
    const int32_t k = a->k, groups = k / 4, rest = k % 4;
    int32_t acc = a->bias[0];
    for (int32_t g = 0; g < groups; g++) {
        const uint32_t v = tf_read_u32(a->weights + 4 * g);
        acc = tf_smlad(xs[2 * g + 1], tf_sxtb16_ror8(v), tf_smlad(xs[2 * g], tf_sxtb16(v), acc));
    }
    if (rest) {
        const uint32_t v = tf_read_u32(a->weights + k - 4);
        const uint32_t *xt = xs + 2 * groups;
        acc = tf_smlad(xt[1], tf_sxtb16_ror8(v), tf_smlad(xt[0], tf_sxtb16(v), acc));
    }
    out[0] = (int8_t)fast_out(acc, a->multiplier[0], a->shift[0], a->z2, a->mode, a->lo, a->hi);
}

#else /* portable C with the same arithmetic and layouts */

static FC_INLINE void tile_rows(int32_t T, const fc_args_t *a, uint32_t *sb, int8_t *out)
{
    const int32_t k = a->k, m = a->m, groups = k / 4, rest = k % 4;
    const uint32_t *tile = sb + 2;
    const uint32_t *tail = tile + 2 * T * groups + 4 + 16;
    for (int32_t j = 0; j < m; j++) {
        const int8_t *w = a->weights + j * k;
        int32_t acc[TILE];
        for (int32_t i = 0; i < T; i++) {
            acc[i] = a->bias[j];
        }
        for (int32_t g = 0; g < groups; g++) {
            const uint32_t wv = tf_read_u32(w + 4 * g);
            const uint32_t we = tf_sxtb16(wv), wo = tf_sxtb16_ror8(wv);
            const uint32_t *s = tile + 2 * T * g;
            for (int32_t i = 0; i < T; i++) {
                acc[i] = tf_smlad(s[2 * i + 1], wo, tf_smlad(s[2 * i], we, acc[i]));
            }
        }
        if (rest) {
            const uint32_t wv = tf_read_u32(w + k - 4);
            const uint32_t we = tf_sxtb16(wv), wo = tf_sxtb16_ror8(wv);
            for (int32_t i = 0; i < T; i++) {
                acc[i] = tf_smlad(tail[2 * i + 1], wo, tf_smlad(tail[2 * i], we, acc[i]));
            }
        }
        for (int32_t i = 0; i < T; i++) {
            out[i * m + j] = (int8_t)fast_out(acc[i], a->multiplier[j], a->shift[j], a->z2,
                                              a->mode, a->lo, a->hi);
        }
    }
}

/* One token (extended at xs, its tail group after its groups) against every row. */
static FC_INLINE void solo_rows(const fc_args_t *a, uint32_t *xs, int8_t *out)
{
    const int32_t k = a->k, groups = k / 4, rest = k % 4;
    const uint32_t *xt = xs + 2 * groups;
    for (int32_t j = 0; j < a->m; j++) {
        const int8_t *w = a->weights + j * k;
        int32_t acc = a->bias[j];
        for (int32_t g = 0; g < groups; g++) {
            const uint32_t v = tf_read_u32(w + 4 * g);
            acc = tf_smlad(xs[2 * g + 1], tf_sxtb16_ror8(v),
                           tf_smlad(xs[2 * g], tf_sxtb16(v), acc));
        }
        if (rest) {
            const uint32_t v = tf_read_u32(w + k - 4);
            acc = tf_smlad(xt[1], tf_sxtb16_ror8(v), tf_smlad(xt[0], tf_sxtb16(v), acc));
        }
        out[j] = (int8_t)fast_out(acc, a->multiplier[j], a->shift[j], a->z2, a->mode, a->lo,
                                  a->hi);
    }
}

#endif /* TF_ARM_DSP_ASM */

/* Extend the T tokens at x (k apart) into the tile at tile, whole groups: group g's 2T words
 * are contiguous, so per group the T tokens' words are loaded, extended and stored (STM). */
#if TF_ARM_DSP_ASM
void tf_fc_extend_tile(const int8_t *x, int32_t k, int32_t T, uint32_t *tile);

static inline void extend_tile(const int8_t *x, int32_t k, int32_t T, uint32_t *tile)
{
    tf_fc_extend_tile(x, k, T, tile);
}
#else
static FC_NOINLINE void extend_tile(const int8_t *x, int32_t k, int32_t T, uint32_t *tile)
{
    for (int32_t i = 0; i < T; i++) {
        extend_groups(x + i * k, k / 4, tile + 2 * i, T);
    }
}
#endif

/* Tokens [t, t + T) as one tile. */
static FC_INLINE void run_tile(const fc_args_t *a, int32_t T, const int8_t *input, int32_t t,
                     int8_t *output, uint32_t *sb)
{
    const int32_t k = a->k, groups = k / 4, rest = k % 4;
    const int8_t *x = input + t * k;
    uint32_t *tile = sb + 2;
    extend_tile(x, k, T, tile);
    if (rest) {
        uint32_t *tail = tile + 2 * T * groups + 4 + 16;
        const uint32_t mask = 0xFFFFFFFFu << (8 * (4 - rest));
        for (int32_t i = 0; i < T; i++) {
            const uint32_t v = tf_read_u32(x + i * k + k - 4) & mask;
            tail[2 * i] = tf_sxtb16(v);
            tail[2 * i + 1] = tf_sxtb16_ror8(v);
        }
    }
    tile_rows(T, a, sb, output + t * a->m);
}

static FC_INLINE void run_solo(const fc_args_t *a, const int8_t *input, int32_t t, int8_t *output,
                     uint32_t *sb)
{
    const int32_t k = a->k;
    extend_token(input + t * k, k, sb);
    solo_rows(a, sb, output + t * a->m);
}

/* Tiles of 6; the last 1-5 tokens: a tile of 4 or 2, one overlapping the tokens before it
 * (recomputing a token costs less than running it alone), or one token alone. One call site
 * each for the tile and the lone token keeps the code small. */
static FC_NOINLINE void fc_fast(const fc_args_t *a, const int8_t *input, int32_t n,
                                int8_t *output, uint32_t *sb)
{
    for (int32_t t = 0; t < n;) {
        const int32_t left = n - t;
        int32_t T = left >= TILE ? TILE : left == 5 || left == 3 ? left - 1 : left;
        if (left == 5 && n >= TILE) {
            T = TILE;
            t = n - TILE;
        } else if (left == 3 && n >= 4) {
            T = 4;
            t = n - 4;
        }
        if (T == 1) {
            run_solo(a, input, t, output, sb);
        } else {
            run_tile(a, T, input, t, output, sb);
        }
        t += T;
    }
}

/* Internal API for tf_conv2d_s8 (see the header); tile_put is assembly on ARM. */
#if !TF_ARM_DSP_ASM
void tf_fully_connected_s8_tile_put(void *scratch, int32_t token, int32_t group,
                                    const int8_t *x, int32_t groups)
{
    extend_groups(x, groups, (uint32_t *)scratch + 2 + 2 * (TILE * group + token), TILE);
}
#endif

void tf_fully_connected_s8_tile_pad(void *scratch, int32_t token, int32_t group, int32_t value,
                                    int32_t groups)
{
    const uint32_t pair = ((uint32_t)value & 0xFFFFu) | ((uint32_t)value << 16);
    uint32_t *dst = (uint32_t *)scratch + 2 + 2 * (TILE * group + token);
    for (int32_t g = 0; g < groups; g++, dst += 2 * TILE) {
        dst[0] = pair;
        dst[1] = pair;
    }
}

void tf_fully_connected_s8_tile_rows(const int8_t *weights, const int32_t *bias,
                                     const int32_t *multiplier, const int32_t *shift,
                                     int32_t output_zp, int32_t act_min, int32_t act_max,
                                     int32_t k, int32_t m, int8_t *output, void *scratch,
                                     int32_t mode)
{
    const fc_args_t a = {weights, bias,   multiplier, shift,   k,
                         m,       2 * output_zp + 1, act_min, act_max, mode};
    tile_rows(TILE, &a, (uint32_t *)scratch, output);
}

void tf_fully_connected_s8_run(const int8_t *input, const int8_t *weights, const int32_t *bias,
                               const int32_t *multiplier, const int32_t *shift,
                               int32_t output_zp, int32_t act_min, int32_t act_max, int32_t n,
                               int32_t k, int32_t m, int8_t *output, void *scratch,
                               int32_t mode)
{
    if (mode == MODE_GENERIC) {
        tf_fully_connected_s8_generic(input, weights, bias, multiplier, shift, output_zp,
                                      act_min, act_max, n, k, m, output, scratch);
        return;
    }
    const fc_args_t a = {weights, bias,   multiplier, shift,   k,
                         m,       2 * output_zp + 1, act_min, act_max, mode};
    fc_fast(&a, input, n, output, (uint32_t *)scratch);
}

void tf_fully_connected_s8_generic(const int8_t *input, const int8_t *weights,
                                   const int32_t *bias, const int32_t *multiplier,
                                   const int32_t *shift, int32_t output_zp, int32_t act_min,
                                   int32_t act_max, int32_t n, int32_t k, int32_t m,
                                   int8_t *output, void *scratch)
{
    fc_generic(input, weights, bias, multiplier, shift, output_zp, act_min, act_max, n, k, m,
               output, scratch);
}

/* The fast path when the parameters allow it, else the generic one (a call of its own, so
 * that its frame and the fast path's do not add up): tf_fully_connected_s8_run. */
void tf_fully_connected_s8(const int8_t *input, const int8_t *weights, const int32_t *bias,
                           const int32_t *multiplier, const int32_t *shift, int32_t output_zp,
                           int32_t act_min, int32_t act_max, int32_t n, int32_t k, int32_t m,
                           int8_t *output, void *scratch)
{
    int32_t mode = fc_mode(shift, output_zp, act_min, act_max, k, m);
#if TF_ROUNDING_TFLITE
    mode = mode && tf_fully_connected_s8_tflite_fast(bias, k, m) ? mode : MODE_GENERIC;
#endif
    tf_fully_connected_s8_run(input, weights, bias, multiplier, shift, output_zp, act_min,
                              act_max, n, k, m, output, scratch, mode);
}
