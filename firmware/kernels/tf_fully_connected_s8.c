/* tf_fully_connected_s8 - see the header for shapes, layouts and the formula. */
#include "tf_fully_connected_s8.h"

#include "tf_dsp.h"
#include "tf_math.h"

/* The assembly needs the DSP extension, Thumb-2 and no frame pointer in r7 (-O1 and up). */
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && defined(__thumb2__) &&                 \
    defined(__OPTIMIZE__)
#define FC_ASM 1
#else
#define FC_ASM 0
#endif

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
    const int32_t sh = -1 - shift;
    const int32_t v = tf_smmla(acc, mult, z2 * (int32_t)(1u << (sh - 1))) >> sh;
    return mode == MODE_FAST ? tf_sat_s8(v) : tf_clamp(v, lo, hi);
}

/* ---------------------------------------------------------------------------------------------
 * Generic path (tf_fully_connected_s8_generic): any requantization parameters (tf_requantize
 * + tf_clamp per output), 4-token tiles extended into scratch, leftover tokens one at a time.
 * ------------------------------------------------------------------------------------------- */

#define GEN_TILE 4

static inline int8_t finish(int32_t acc, int32_t mult, int32_t shift, int32_t zp, int32_t lo,
                            int32_t hi)
{
    return (int8_t)tf_clamp(tf_requantize(acc, mult, shift) + zp, lo, hi);
}

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

/* Sign-extend GEN_TILE tokens into scratch: group g, token t at words 2*(g*TILE + t). */
static void gen_extend_tile(const int8_t *x, int32_t k, uint32_t *xs)
{
    const int32_t groups = k / 4;
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
}

/* One weight row against the extended 4-token tile. */
static inline void gen_tile_dot(const int8_t *w, const uint32_t *s, int32_t groups, int32_t *p0,
                                int32_t *p1, int32_t *p2, int32_t *p3)
{
    int32_t a0 = *p0, a1 = *p1, a2 = *p2, a3 = *p3;
    const uint32_t *s_end = s + 2 * GEN_TILE * groups;
#if FC_ASM
    uint32_t we, wo, lo, hi;
    while (s < s_end) {
        __asm__ volatile("ldr %[wo], [%[w]], #4\n\t"
                         "sxtb16 %[we], %[wo]\n\t"
                         "sxtb16 %[wo], %[wo], ror #8\n\t"
                         "ldrd %[lo], %[hi], [%[s]], #8\n\t"
                         "smlad %[a0], %[lo], %[we], %[a0]\n\t"
                         "smlad %[a0], %[hi], %[wo], %[a0]\n\t"
                         "ldrd %[lo], %[hi], [%[s]], #8\n\t"
                         "smlad %[a1], %[lo], %[we], %[a1]\n\t"
                         "smlad %[a1], %[hi], %[wo], %[a1]\n\t"
                         "ldrd %[lo], %[hi], [%[s]], #8\n\t"
                         "smlad %[a2], %[lo], %[we], %[a2]\n\t"
                         "smlad %[a2], %[hi], %[wo], %[a2]\n\t"
                         "ldrd %[lo], %[hi], [%[s]], #8\n\t"
                         "smlad %[a3], %[lo], %[we], %[a3]\n\t"
                         "smlad %[a3], %[hi], %[wo], %[a3]\n\t"
                         : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3),
                           [w] "+r"(w), [s] "+r"(s), [we] "=&r"(we), [wo] "=&r"(wo),
                           [lo] "=&r"(lo), [hi] "=&r"(hi)
                         :
                         : "memory");
    }
#else
    while (s < s_end) {
        const uint32_t wv = tf_read_u32(w);
        const uint32_t we = tf_sxtb16(wv), wo = tf_sxtb16_ror8(wv);
        a0 = tf_smlad(s[1], wo, tf_smlad(s[0], we, a0));
        a1 = tf_smlad(s[3], wo, tf_smlad(s[2], we, a1));
        a2 = tf_smlad(s[5], wo, tf_smlad(s[4], we, a2));
        a3 = tf_smlad(s[7], wo, tf_smlad(s[6], we, a3));
        s += 2 * GEN_TILE;
        w += 4;
    }
#endif
    *p0 = a0;
    *p1 = a1;
    *p2 = a2;
    *p3 = a3;
}

/* The generic path (tf_fully_connected_s8_generic). */
static FC_INLINE void fc_generic(const int8_t *input, const int8_t *weights, const int32_t *bias,
                                 const int32_t *multiplier, const int32_t *shift,
                                 int32_t output_zp, int32_t act_min, int32_t act_max, int32_t n,
                                 int32_t k, int32_t m, int8_t *output, void *scratch)
{
    uint32_t *xs = (uint32_t *)scratch;
    const int32_t groups = k / 4, tail = k - 4 * groups;
    int32_t t = 0;
    for (; t + GEN_TILE <= n; t += GEN_TILE) {
        const int8_t *x = input + t * k;
        int8_t *out = output + t * m;
        gen_extend_tile(x, k, xs);
        for (int32_t j = 0; j < m; j++) {
            const int8_t *w = weights + j * k;
            int32_t a0 = bias[j], a1 = a0, a2 = a0, a3 = a0;
            gen_tile_dot(w, xs, groups, &a0, &a1, &a2, &a3);
            for (int32_t i = k - tail; i < k; i++) {
                const int32_t wi = w[i];
                a0 += x[i] * wi;
                a1 += x[k + i] * wi;
                a2 += x[2 * k + i] * wi;
                a3 += x[3 * k + i] * wi;
            }
            const int32_t mu = multiplier[j], sh = shift[j];
            out[j] = finish(a0, mu, sh, output_zp, act_min, act_max);
            out[m + j] = finish(a1, mu, sh, output_zp, act_min, act_max);
            out[2 * m + j] = finish(a2, mu, sh, output_zp, act_min, act_max);
            out[3 * m + j] = finish(a3, mu, sh, output_zp, act_min, act_max);
        }
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

#if FC_ASM
/* Four groups of one token per iteration: 4 LDR (unaligned is fine), 8 SXTB16, 4 STRD
 * post-incremented by the tile's group stride (an immediate, STRIDE: 8 T bytes). */
#define FC_EXTEND_ASM(STRIDE)                                                                  \
    __asm__ volatile("1:\n\t"                                                                 \
                     "ldr %[a], [%[x]], #4\n\t"                                                \
                     "ldr %[b], [%[x]], #4\n\t"                                                \
                     "ldr %[c], [%[x]], #4\n\t"                                                \
                     "ldr %[d], [%[x]], #4\n\t"                                                \
                     "sxtb16 %[e], %[a]\n\t"                                                   \
                     "sxtb16 %[a], %[a], ror #8\n\t"                                           \
                     "strd %[e], %[a], [%[o]], #" STRIDE "\n\t"                                \
                     "sxtb16 %[e], %[b]\n\t"                                                   \
                     "sxtb16 %[b], %[b], ror #8\n\t"                                           \
                     "strd %[e], %[b], [%[o]], #" STRIDE "\n\t"                                \
                     "sxtb16 %[e], %[c]\n\t"                                                   \
                     "sxtb16 %[c], %[c], ror #8\n\t"                                           \
                     "strd %[e], %[c], [%[o]], #" STRIDE "\n\t"                                \
                     "sxtb16 %[e], %[d]\n\t"                                                   \
                     "sxtb16 %[d], %[d], ror #8\n\t"                                           \
                     "strd %[e], %[d], [%[o]], #" STRIDE "\n\t"                                \
                     "cmp %[x], %[end]\n\t"                                                    \
                     "bne 1b\n\t"                                                              \
                     : [x] "+r"(x), [o] "+r"(dst), [a] "=&r"(a), [b] "=&r"(b), [c] "=&r"(c),   \
                       [d] "=&r"(d), [e] "=&r"(e)                                              \
                     : [end] "r"(end)                                                          \
                     : "cc", "memory")
#endif

/* Extend `groups` groups of 4 inputs from x into one token's slot of a tile of T tokens
 * (T = 6; T = 1: a token on its own): group g at dst + 2 T g (words). */
static inline void extend_groups(const int8_t *x, int32_t groups, uint32_t *dst, int32_t T)
{
    int32_t g = groups;
#if FC_ASM
    if (groups >= 4) {
        const int8_t *end = x + 16 * (groups / 4);
        uint32_t a, b, c, d, e;
        if (T == TILE) {
            FC_EXTEND_ASM("48");
        } else {
            FC_EXTEND_ASM("8");
        }
        g = groups % 4;
    }
#endif
    for (; g > 0; g--) {
        const uint32_t v = tf_read_u32(x);
        dst[0] = tf_sxtb16(v);
        dst[1] = tf_sxtb16_ror8(v);
        dst += 2 * T;
        x += 4;
    }
}

/* Extend one token's inputs into a tile of T tokens, its tail group (k % 4 != 0) at tail. */
static inline void extend_token(const int8_t *x, int32_t k, uint32_t *dst, int32_t T,
                                uint32_t *tail)
{
    const int32_t rest = k % 4;
    extend_groups(x, k / 4, dst, T);
    if (rest) {
        const uint32_t v = tf_read_u32(x + k - 4) & (0xFFFFFFFFu << (8 * (4 - rest)));
        tail[0] = tf_sxtb16(v);
        tail[1] = tf_sxtb16_ror8(v);
    }
}

typedef struct {
    const int8_t *weights;
    const int32_t *bias, *multiplier, *shift;
    int32_t k, m, z2, lo, hi, mode;
} fc_args_t;

#if FC_ASM

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

/* Register use of the tile loops: r0-r3 two tokens' pairs (LDM), r4-r9 the accumulators of
 * tokens 0-5, r10/r11 the weight word's even/odd pairs, r12 the weights, lr the tile. */
#define FC_W "ldr r11, [r12, #4]!\n\tsxtb16 r10, r11\n\tsxtb16 r11, r11, ror #8\n\t"
#define FC_MAC(XA, XB, ACC, INIT)                                                              \
    "smlad " ACC ", " XA ", r10, " INIT "\n\tsmlad " ACC ", " XB ", r11, " ACC "\n\t"
#define FC_LDM "ldmia lr!, {r0-r3}\n\t"
#define FC_PAIR(A0, A1, I0, I1) FC_MAC("r0", "r1", A0, I0) FC_MAC("r2", "r3", A1, I1) FC_LDM
/* One group: the weight word, then per two tokens 4 SMLADs and the next two tokens' LDM
 * (the last LDM loads the next group's first tokens, or the end marker). The first group of
 * a row (PEEL) starts every accumulator from the bias, held in the last one. */
#define FC_GROUP6                                                                              \
    FC_W FC_PAIR("r4", "r5", "r4", "r5") FC_PAIR("r6", "r7", "r6", "r7")                       \
        FC_PAIR("r8", "r9", "r8", "r9")
#define FC_PEEL6                                                                               \
    FC_LDM FC_W FC_PAIR("r4", "r5", "r9", "r9") FC_PAIR("r6", "r7", "r9", "r9")                \
        FC_PAIR("r8", "r9", "r9", "r9")
#define FC_GROUP4 FC_W FC_PAIR("r4", "r5", "r4", "r5") FC_PAIR("r6", "r7", "r6", "r7")
#define FC_PEEL4 FC_LDM FC_W FC_PAIR("r4", "r5", "r7", "r7") FC_PAIR("r6", "r7", "r7", "r7")
#define FC_GROUP2 FC_W FC_PAIR("r4", "r5", "r4", "r5")
#define FC_PEEL2 FC_LDM FC_W FC_PAIR("r4", "r5", "r5", "r5")

/* Two tokens' tail pairs at [lr + OFF] (lr at the state). */
#define FC_TAIL2(OFF, RA, RB)                                                                  \
    "ldrd r0, r1, [lr, #" OFF "]\n\t"                                                          \
    "ldrd r2, r3, [lr, #" OFF "+8]\n\t" FC_MAC("r0", "r1", RA, RA) FC_MAC("r2", "r3", RB, RB)
#define FC_TAIL6 FC_TAIL2("64", "r4", "r5") FC_TAIL2("80", "r6", "r7") FC_TAIL2("96", "r8", "r9")
#define FC_TAIL4 FC_TAIL2("64", "r4", "r5") FC_TAIL2("80", "r6", "r7")
#define FC_TAIL2ONLY FC_TAIL2("64", "r4", "r5")

/* The row's requantization constants: M in r11, sh in r10, c in r2; r0 = next multiplier. */
#define FC_PARAMS                                                                              \
    "ldm lr, {r0-r2}\n\t"                                                                      \
    "ldr r11, [r0], #4\n\t"                                                                    \
    "ldr r10, [r1], #4\n\t"                                                                    \
    "strd r0, r1, [lr]\n\t"                                                                    \
    "mvn r10, r10\n\t"                                                                         \
    "sub r1, r10, #1\n\t"                                                                      \
    "lsl r2, r2, r1\n\t"
/* Requantize accumulator R: SMMLA, ASR, then SSAT or a clamp to [r1, r3]. */
#define FC_SAT(R)                                                                              \
    "smmla " R ", " R ", r11, r2\n\tasr " R ", " R ", r10\n\tssat " R ", #8, " R "\n\t"
#define FC_CLAMP(R)                                                                            \
    "smmla " R ", " R ", r11, r2\n\tasr " R ", " R ", r10\n\t"                                 \
    "cmp " R ", r1\n\tit lt\n\tmovlt " R ", r1\n\tcmp " R ", r3\n\tit gt\n\tmovgt " R ", r3\n\t"
#define FC_SAT6 FC_SAT("r4") FC_SAT("r5") FC_SAT("r6") FC_SAT("r7") FC_SAT("r8") FC_SAT("r9")
#define FC_CLAMP6                                                                              \
    FC_CLAMP("r4") FC_CLAMP("r5") FC_CLAMP("r6") FC_CLAMP("r7") FC_CLAMP("r8") FC_CLAMP("r9")
#define FC_SAT4 FC_SAT("r4") FC_SAT("r5") FC_SAT("r6") FC_SAT("r7")
#define FC_CLAMP4 FC_CLAMP("r4") FC_CLAMP("r5") FC_CLAMP("r6") FC_CLAMP("r7")
#define FC_SAT2 FC_SAT("r4") FC_SAT("r5")
#define FC_CLAMP2 FC_CLAMP("r4") FC_CLAMP("r5")
/* Strided stores of the row's outputs (token t at out + t m + j), pointers advanced by 1. */
#define FC_STORE6                                                                              \
    "ldrd r1, r2, [lr, #16]\n\tldrd r3, r10, [lr, #24]\n\t"                                    \
    "strb r4, [r1], #1\n\tstrb r5, [r1, r3]\n\tstrb r6, [r1, r10]\n\t"                         \
    "strb r7, [r2], #1\n\tstrb r8, [r2, r3]\n\tstrb r9, [r2, r10]\n\t"                         \
    "strd r1, r2, [lr, #16]\n\t"
#define FC_STORE4                                                                              \
    "ldrd r1, r2, [lr, #16]\n\tldr r3, [lr, #24]\n\t"                                          \
    "strb r4, [r1], #1\n\tstrb r5, [r1, r3]\n\tstrb r6, [r2], #1\n\tstrb r7, [r2, r3]\n\t"     \
    "strd r1, r2, [lr, #16]\n\t"
#define FC_STORE2                                                                              \
    "ldr r1, [lr, #16]\n\tldr r3, [lr, #24]\n\t"                                               \
    "strb r4, [r1], #1\n\tstrb r5, [r1, r3]\n\tstr r1, [lr, #16]\n\t"

/* Every row of one tile: MACs, requantization, stores. Per row: the first group, a jump
 * (LDR PC) into the 8-group loop so that it runs whole iterations, the loop until it loads
 * the end marker, a jump to the tail group (k % 4 != 0) or the epilogue, the epilogue, which
 * falls into the next row. Code addresses are kept in scratch: the setup turns the table
 * indices the C code wrote into them. ENTRY: the header's offset from lr after the first
 * group (-(8 T + 20)); BIAS: the last accumulator. */
#define FC_TILE_ASM(PEEL, GROUP, ENTRY, TAIL, SAT, CLAMP, STORE, BIAS)                        \
    "mov lr, r0\n\t"                                                                           \
    "adr r3, .Lfc_tab%=\n\t"                                                                   \
    "ldr r2, [lr, #48]\n\t"                                                                    \
    "ldr r1, [r2, #-4]\n\t"                                                                    \
    "ldr r1, [r3, r1, lsl #2]\n\t"                                                             \
    "str r1, [r2, #-4]\n\t"                                                                    \
    "ldr r1, [lr, #52]\n\t"                                                                    \
    "ldr r1, [r3, r1, lsl #2]\n\t"                                                             \
    "str r1, [lr, #52]\n\t"                                                                    \
    "ldr r1, [lr, #56]\n\t"                                                                    \
    "ldr r1, [r3, r1, lsl #2]\n\t"                                                             \
    "str r1, [lr, #56]\n\t"                                                                    \
    "ldr r0, [lr, #0]\n\t"                                                                     \
    "ldr r1, [lr, #32]\n\t"                                                                    \
    "ldr " BIAS ", [r0, r1]\n\t"                                                               \
    "ldr r12, [lr, #60]\n\t"                                                                   \
    "ldr lr, [lr, #48]\n\t"                                                                    \
    "b .Lfc_row%=\n\t"                                                                         \
    ".p2align 2\n"                                                                             \
    ".Lfc_tab%=:\n\t"                                                                          \
    ".word .Lfc_done%=+1, .Lfc_g0%=+1, .Lfc_g1%=+1, .Lfc_g2%=+1, .Lfc_g3%=+1\n\t"              \
    ".word .Lfc_g4%=+1, .Lfc_g5%=+1, .Lfc_g6%=+1, .Lfc_g7%=+1\n\t"                             \
    ".word .Lfc_ef%=+1, .Lfc_eg%=+1, .Lfc_t1%=+1, .Lfc_t2%=+1, .Lfc_t3%=+1\n"                  \
    ".Lfc_eg%=:\n\t" FC_PARAMS "ldrd r1, r3, [lr, #40]\n\t" CLAMP "b .Lfc_st%=\n"              \
    ".Lfc_ef%=:\n\t" FC_PARAMS SAT ".Lfc_st%=:\n\t" STORE                                      \
    "ldrd r1, r2, [lr, #32]\n\t"                                                               \
    "cmp r0, r2\n\t"                                                                           \
    "beq .Lfc_exit%=\n\t"                                                                      \
    "ldr " BIAS ", [r0, r1]\n\t"                                                               \
    "ldr lr, [lr, #48]\n"                                                                      \
    ".Lfc_row%=:\n\t" PEEL "ldr pc, [lr, #-" ENTRY "]\n"                                       \
    ".Lfc_g0%=:\n\t" GROUP ".Lfc_g1%=:\n\t" GROUP ".Lfc_g2%=:\n\t" GROUP                       \
    ".Lfc_g3%=:\n\t" GROUP ".Lfc_g4%=:\n\t" GROUP ".Lfc_g5%=:\n\t" GROUP                       \
    ".Lfc_g6%=:\n\t" GROUP ".Lfc_g7%=:\n\t" GROUP "cmp r0, #0x80000000\n\t"                   \
    "bne .Lfc_g0%=\n"                                                                          \
    ".Lfc_done%=:\n\t"                                                                         \
    "ldr pc, [lr, #52]\n"                                                                      \
    ".Lfc_t1%=:\n\t"                                                                           \
    "ldr r11, [r12, #1]!\n\t"                                                                  \
    "b .Lfc_tc%=\n"                                                                            \
    ".Lfc_t2%=:\n\t"                                                                           \
    "ldr r11, [r12, #2]!\n\t"                                                                  \
    "b .Lfc_tc%=\n"                                                                            \
    ".Lfc_t3%=:\n\t"                                                                           \
    "ldr r11, [r12, #3]!\n"                                                                    \
    ".Lfc_tc%=:\n\t"                                                                           \
    "sxtb16 r10, r11\n\t"                                                                      \
    "sxtb16 r11, r11, ror #8\n\t" TAIL "ldr pc, [lr, #56]\n"                                   \
    ".Lfc_exit%=:\n\t"

#define FC_CLOBBERS                                                                            \
    "r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9", "r10", "r11", "r12", "lr", "cc",      \
        "memory"

/* One row-loop function per tile size: the asm template needs its pieces as literals. */
#define FC_TILE_FN(NAME, PEEL, GROUP, FRAME, TAIL, SAT, CLAMP, STORE, LAST)                     \
    static FC_NOINLINE void NAME(fc_state_t *state)                                            \
    {                                                                                          \
        register fc_state_t *st __asm__("r0") = state;                                         \
        __asm__ volatile(FC_TILE_ASM(PEEL, GROUP, FRAME, TAIL, SAT, CLAMP, STORE, LAST)        \
                         : "+r"(st)                                                            \
                         :                                                                     \
                         : FC_CLOBBERS);                                                       \
    }

FC_TILE_FN(tile6_asm, FC_PEEL6, FC_GROUP6, "68", FC_TAIL6, FC_SAT6, FC_CLAMP6, FC_STORE6, "r9")
FC_TILE_FN(tile4_asm, FC_PEEL4, FC_GROUP4, "52", FC_TAIL4, FC_SAT4, FC_CLAMP4, FC_STORE4, "r7")
FC_TILE_FN(tile2_asm, FC_PEEL2, FC_GROUP2, "36", FC_TAIL2ONLY, FC_SAT2, FC_CLAMP2, FC_STORE2,
           "r5")

/* Table indices of the code addresses. */
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
        tile6_asm(st);
    } else if (T == 4) {
        tile4_asm(st);
    } else {
        tile2_asm(st);
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

/* Registers: r0-r3 two groups of the token (LDM), r4/r5 the two rows' accumulators, r6/r7
 * two weight words, r8 a temporary, r9/r10 the rows, r11 the token, r12 its end, lr state. */
#define SOLO_ROW(ACC)                                                                          \
    "sxtb16 r8, r6\n\tsxtb16 r6, r6, ror #8\n\t"                                               \
    "smlad " ACC ", r0, r8, " ACC "\n\tsmlad " ACC ", r1, r6, " ACC "\n\t"                     \
    "sxtb16 r8, r7\n\tsxtb16 r7, r7, ror #8\n\t"                                               \
    "smlad " ACC ", r2, r8, " ACC "\n\tsmlad " ACC ", r3, r7, " ACC "\n\t"
#define SOLO_STEP_LDRD                                                                         \
    "ldmia r11!, {r0-r3}\n\tldrd r6, r7, [r9], #8\n\t" SOLO_ROW("r4")                          \
    "ldrd r6, r7, [r10], #8\n\t" SOLO_ROW("r5")
#define SOLO_STEP_LDR                                                                          \
    "ldmia r11!, {r0-r3}\n\tldr r6, [r9], #4\n\tldr r7, [r9], #4\n\t" SOLO_ROW("r4")           \
    "ldr r6, [r10], #4\n\tldr r7, [r10], #4\n\t" SOLO_ROW("r5")
/* One row's requantization: M in RM, shift in RS (becomes sh), z2 in r2, accumulator ACC. */
#define SOLO_REQ(RM, RS, ACC)                                                                  \
    "mvn " RS ", " RS "\n\tsub r8, " RS ", #1\n\tlsl r8, r2, r8\n\t"                           \
    "smmla " ACC ", " ACC ", " RM ", r8\n\tasr " ACC ", " ACC ", " RS "\n\t"
#define SOLO_PARAMS                                                                            \
    "ldm lr, {r0-r2}\n\t"                                                                      \
    "ldrd r3, r12, [r0], #8\n\t"                                                               \
    "ldrd r6, r7, [r1], #8\n\t"                                                                \
    "strd r0, r1, [lr]\n\t"                                                                    \
    SOLO_REQ("r3", "r6", "r4") SOLO_REQ("r12", "r7", "r5")

/* Every pair of rows against one token: pairs of groups by a 4-pair loop (LDRD or LDR
 * weights), the odd group and the tail group if any, requantization, two stores. */
static FC_NOINLINE void solo_asm(fc_solo_state_t *state)
{
    register fc_solo_state_t *st __asm__("r0") = state;
    __asm__ volatile(
        "mov lr, r0\n\t"
        "adr r3, .Lfs_tab%=\n\t"
        "ldr r1, [lr, #48]\n\t"
        "ldr r1, [r3, r1, lsl #2]\n\t"
        "str r1, [lr, #48]\n\t"
        "ldr r1, [lr, #52]\n\t"
        "ldr r1, [r3, r1, lsl #2]\n\t"
        "str r1, [lr, #52]\n\t"
        "ldr r1, [lr, #56]\n\t"
        "ldr r1, [r3, r1, lsl #2]\n\t"
        "str r1, [lr, #56]\n\t"
        "ldr r1, [lr, #60]\n\t"
        "ldr r1, [r3, r1, lsl #2]\n\t"
        "str r1, [lr, #60]\n\t"
        "ldr r0, [lr, #0]\n\t"
        "ldr r1, [lr, #32]\n\t"
        "add r1, r0, r1\n\t"
        "ldrd r4, r5, [r1]\n\t"
        "ldr r9, [lr, #68]\n\t"
        "ldr r10, [lr, #72]\n\t"
        "add r10, r9, r10\n\t"
        "ldrd r11, r12, [lr, #24]\n\t"
        "b .Lfs_row%=\n\t"
        ".p2align 2\n"
        ".Lfs_tab%=:\n\t"
        ".word .Lfs_done%=+1, .Lfs_a0%=+1, .Lfs_a1%=+1, .Lfs_a2%=+1, .Lfs_a3%=+1\n\t"
        ".word .Lfs_u0%=+1, .Lfs_u1%=+1, .Lfs_u2%=+1, .Lfs_u3%=+1\n\t"
        ".word .Lfs_ef%=+1, .Lfs_eg%=+1, .Lfs_odd%=+1, .Lfs_tail%=+1\n"
        ".Lfs_eg%=:\n\t"
        SOLO_PARAMS
        "ldrd r1, r3, [lr, #40]\n\t"
        "cmp r4, r1\n\tit lt\n\tmovlt r4, r1\n\tcmp r4, r3\n\tit gt\n\tmovgt r4, r3\n\t"
        "cmp r5, r1\n\tit lt\n\tmovlt r5, r1\n\tcmp r5, r3\n\tit gt\n\tmovgt r5, r3\n\t"
        "b .Lfs_st%=\n"
        ".Lfs_ef%=:\n\t"
        SOLO_PARAMS
        "ssat r4, #8, r4\n\t"
        "ssat r5, #8, r5\n"
        ".Lfs_st%=:\n\t"
        "ldrd r1, r2, [lr, #16]\n\t"
        "strb r4, [r1], #1\n\t"
        "strb r5, [r1], #1\n\t"
        "str r1, [lr, #16]\n\t"
        "ldrd r1, r3, [lr, #32]\n\t"
        "cmp r0, r3\n\t"
        "beq .Lfs_exit%=\n\t"
        "add r1, r0, r1\n\t"
        "ldrd r4, r5, [r1]\n\t"
        "add r9, r9, r2\n\t"
        "add r10, r10, r2\n\t"
        "ldrd r11, r12, [lr, #24]\n"
        ".Lfs_row%=:\n\t"
        "ldr pc, [lr, #56]\n"
        ".Lfs_a0%=:\n\t" SOLO_STEP_LDRD
        ".Lfs_a1%=:\n\t" SOLO_STEP_LDRD
        ".Lfs_a2%=:\n\t" SOLO_STEP_LDRD
        ".Lfs_a3%=:\n\t" SOLO_STEP_LDRD
        "cmp r11, r12\n\t"
        "bne .Lfs_a0%=\n\t"
        "ldr pc, [lr, #48]\n"
        ".Lfs_u0%=:\n\t" SOLO_STEP_LDR
        ".Lfs_u1%=:\n\t" SOLO_STEP_LDR
        ".Lfs_u2%=:\n\t" SOLO_STEP_LDR
        ".Lfs_u3%=:\n\t" SOLO_STEP_LDR
        "cmp r11, r12\n\t"
        "bne .Lfs_u0%=\n"
        ".Lfs_done%=:\n\t"
        "ldr pc, [lr, #48]\n"
        ".Lfs_odd%=:\n\t"
        "ldrd r0, r1, [r11], #8\n\t"
        "ldr r6, [r9], #4\n\t"
        "sxtb16 r8, r6\n\tsxtb16 r6, r6, ror #8\n\t"
        "smlad r4, r0, r8, r4\n\tsmlad r4, r1, r6, r4\n\t"
        "ldr r6, [r10], #4\n\t"
        "sxtb16 r8, r6\n\tsxtb16 r6, r6, ror #8\n\t"
        "smlad r5, r0, r8, r5\n\tsmlad r5, r1, r6, r5\n\t"
        "ldr pc, [lr, #60]\n"
        ".Lfs_tail%=:\n\t"
        "ldrd r0, r1, [r11]\n\t"
        "ldr r12, [lr, #64]\n\t"
        "ldr r6, [r9, r12]\n\t"
        "sxtb16 r8, r6\n\tsxtb16 r6, r6, ror #8\n\t"
        "smlad r4, r0, r8, r4\n\tsmlad r4, r1, r6, r4\n\t"
        "ldr r6, [r10, r12]\n\t"
        "sxtb16 r8, r6\n\tsxtb16 r6, r6, ror #8\n\t"
        "smlad r5, r0, r8, r5\n\tsmlad r5, r1, r6, r5\n\t"
        "ldr pc, [lr, #52]\n"
        ".Lfs_exit%=:\n\t"
        : "+r"(st)
        :
        : FC_CLOBBERS);
}

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
    solo_asm(st);
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

#endif /* FC_ASM */

/* Tokens [t, t + T) as one tile. */
#if FC_ASM
/* Load the word of tokens at B and B + k (post-incrementing B), extend into RE/RO pairs. */
#define FC_XT2(B, E0, O0, E1, O1)                                                              \
    "ldr " O0 ", [%[" B "]], #4\n\tldr " O1 ", [%[" B "], %[k4]]\n\t"                          \
    "sxtb16 " E0 ", " O0 "\n\tsxtb16 " O0 ", " O0 ", ror #8\n\t"                                \
    "sxtb16 " E1 ", " O1 "\n\tsxtb16 " O1 ", " O1 ", ror #8\n\t"
#define FC_XT1(B, OFF, E, O)                                                                   \
    "ldr " O ", [%[" B "], %[" OFF "]]\n\tsxtb16 " E ", " O "\n\tsxtb16 " O ", " O ", ror #8\n\t"
#endif

/* Extend the T tokens at x (k apart) into the tile at tile, whole groups: group g's 2T words
 * are contiguous, so per group the T tokens' words are loaded, extended and stored (STM). */
static FC_NOINLINE void extend_tile(const int8_t *x, int32_t k, int32_t T, uint32_t *tile)
{
    const int32_t groups = k / 4;
#if FC_ASM
    register uint32_t r0 __asm__("r0");
    register uint32_t r1 __asm__("r1");
    register uint32_t r2 __asm__("r2");
    register uint32_t r3 __asm__("r3");
    register uint32_t r4 __asm__("r4");
    register uint32_t r5 __asm__("r5");
    const int8_t *end = x + 4 * groups, *x3 = x + 3 * k, *x2 = x + 2 * k;
    const int32_t k4 = k - 4, k24 = 2 * k - 4;
    if (groups == 0) {
        return;
    }
    if (T == 6) {
        __asm__ volatile("1:\n\t" FC_XT2("x", "r0", "r1", "r2", "r3") FC_XT1("x", "k24", "r4", "r5")
                         "stmia %[d]!, {r0-r5}\n\t" FC_XT2("x3", "r0", "r1", "r2", "r3")
                         FC_XT1("x3", "k24", "r4", "r5")
                         "stmia %[d]!, {r0-r5}\n\t"
                         "cmp %[x], %[end]\n\t"
                         "bne 1b\n\t"
                         : [x] "+&r"(x), [x3] "+&r"(x3), [d] "+&r"(tile), "=&r"(r0), "=&r"(r1),
                           "=&r"(r2), "=&r"(r3), "=&r"(r4), "=&r"(r5)
                         : [k4] "r"(k4), [k24] "r"(k24), [end] "r"(end)
                         : "cc", "memory");
    } else if (T == 4) {
        __asm__ volatile("1:\n\t" FC_XT2("x", "r0", "r1", "r2", "r3")
                         "stmia %[d]!, {r0-r3}\n\t" FC_XT2("x2", "r0", "r1", "r2", "r3")
                         "stmia %[d]!, {r0-r3}\n\t"
                         "cmp %[x], %[end]\n\t"
                         "bne 1b\n\t"
                         : [x] "+&r"(x), [x2] "+&r"(x2), [d] "+&r"(tile), "=&r"(r0), "=&r"(r1),
                           "=&r"(r2), "=&r"(r3)
                         : [k4] "r"(k4), [end] "r"(end)
                         : "cc", "memory");
    } else {
        __asm__ volatile("1:\n\t" FC_XT2("x", "r0", "r1", "r2", "r3")
                         "stmia %[d]!, {r0-r3}\n\t"
                         "cmp %[x], %[end]\n\t"
                         "bne 1b\n\t"
                         : [x] "+&r"(x), [d] "+&r"(tile), "=&r"(r0), "=&r"(r1), "=&r"(r2),
                           "=&r"(r3)
                         : [k4] "r"(k4), [end] "r"(end)
                         : "cc", "memory");
    }
#else
    for (int32_t i = 0; i < T; i++) {
        extend_groups(x + i * k, groups, tile + 2 * i, T);
    }
#endif
}

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
    extend_token(input + t * k, k, sb, 1, sb + 2 * (k / 4));
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

/* Internal API for tf_conv2d_s8 (see the header). */
void tf_fully_connected_s8_tile_put(void *scratch, int32_t token, int32_t group,
                                    const int8_t *x, int32_t groups)
{
    extend_groups(x, groups, (uint32_t *)scratch + 2 + 2 * (TILE * group + token), TILE);
}

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
    tf_fully_connected_s8_run(input, weights, bias, multiplier, shift, output_zp, act_min,
                              act_max, n, k, m, output, scratch,
                              fc_mode(shift, output_zp, act_min, act_max, k, m));
}
