/*
 * tf_dsp.h - the Cortex-M DSP intrinsics the kernels use, with portable fallbacks.
 *
 * On ARM with the DSP extension (Cortex-M4/M7) these are GCC's arm_acle.h intrinsics
 * (SMLAD, SXTB16, ...). On the host they are plain C with the same results, so the
 * host build exercises the very same kernel code paths as the firmware.
 */
#ifndef TF_DSP_H
#define TF_DSP_H

/*
 * TF_ARM_DSP_ASM: the one switch between the kernels' assembly and their portable C.
 *
 * 1 when building for a Thumb-2 core with the DSP extension (Cortex-M4, M7, M33 with DSP):
 * each kernel then calls the assembly in its <kernel>_arm.S (tf_fully_connected_s8_arm.S,
 * ...), which assembles to nothing otherwise. 0 elsewhere (the host, a Cortex-M0/M3): the
 * same results come from the portable C next to it. Define it to 0 (-DTF_ARM_DSP_ASM=0) to
 * build the portable C on an ARM core too; the .c and the .S files see the same value, as
 * both take it from here (this part of the header is assembler-safe).
 */
#ifndef TF_ARM_DSP_ASM
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && defined(__thumb2__)
#define TF_ARM_DSP_ASM 1
#else
#define TF_ARM_DSP_ASM 0
#endif
#endif

#ifndef __ASSEMBLER__

#include <stdint.h>
#include <string.h>

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#include <arm_acle.h>

static inline uint32_t tf_sxtb16(uint32_t x) { return (uint32_t)__sxtb16((int8x4_t)x); }
/* SXTB16 of x rotated right by 8: bytes 1 and 3 sign-extended to halfwords. GCC 12's
 * arm_acle.h has no __ror and does not fold a rotate into SXTB16, so say it directly. */
static inline uint32_t tf_sxtb16_ror8(uint32_t x)
{
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}
static inline int32_t tf_smlad(uint32_t a, uint32_t b, int32_t acc)
{
    return __smlad((int16x2_t)a, (int16x2_t)b, acc);
}
/* SXTAB16: each halfword of acc plus the sign-extended byte 0 / 2 of x (ROR 8: 1 / 3). */
static inline uint32_t tf_sxtab16(uint32_t acc, uint32_t x)
{
    uint32_t r;
    __asm__("sxtab16 %0, %1, %2" : "=r"(r) : "r"(acc), "r"(x));
    return r;
}
static inline uint32_t tf_sxtab16_ror8(uint32_t acc, uint32_t x)
{
    uint32_t r;
    __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(acc), "r"(x));
    return r;
}

#else

static inline uint32_t tf_sxtb16(uint32_t x)
{
    const uint32_t lo = (uint32_t)(uint16_t)(int16_t)(int8_t)(x & 0xFFu);
    const uint32_t hi = (uint32_t)(uint16_t)(int16_t)(int8_t)((x >> 16) & 0xFFu);
    return lo | (hi << 16);
}
static inline uint32_t tf_sxtb16_ror8(uint32_t x) { return tf_sxtb16((x >> 8) | (x << 24)); }
static inline int32_t tf_smlad(uint32_t a, uint32_t b, int32_t acc)
{
    const int32_t lo = (int32_t)(int16_t)(a & 0xFFFFu) * (int32_t)(int16_t)(b & 0xFFFFu);
    const int32_t hi = (int32_t)(int16_t)(a >> 16) * (int32_t)(int16_t)(b >> 16);
    /* SMLAD wraps modulo 2^32 (it only sets the Q flag); do the same without UB. */
    return (int32_t)((uint32_t)acc + (uint32_t)lo + (uint32_t)hi);
}
static inline uint32_t tf_sxtab16(uint32_t acc, uint32_t x)
{
    const uint32_t lo = (acc + (uint32_t)(int32_t)(int8_t)(x & 0xFFu)) & 0xFFFFu;
    const uint32_t hi = ((acc >> 16) + (uint32_t)(int32_t)(int8_t)((x >> 16) & 0xFFu)) & 0xFFFFu;
    return lo | (hi << 16);
}
static inline uint32_t tf_sxtab16_ror8(uint32_t acc, uint32_t x)
{
    return tf_sxtab16(acc, (x >> 8) | (x << 24));
}

#endif

/* Unaligned 32-bit load (a single LDR on Cortex-M7). */
static inline uint32_t tf_read_u32(const int8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* SSUB16: halfword-wise a - b, each half wrapping modulo 2^16 (no saturation). */
#if defined(__ARM_FEATURE_SIMD32) && __ARM_FEATURE_SIMD32
#include <arm_acle.h>
static inline uint32_t tf_ssub16(uint32_t a, uint32_t b)
{
    return (uint32_t)__ssub16((int16x2_t)a, (int16x2_t)b);
}
#else
static inline uint32_t tf_ssub16(uint32_t a, uint32_t b)
{
    const uint32_t lo = ((a & 0xFFFFu) - (b & 0xFFFFu)) & 0xFFFFu;
    const uint32_t hi = ((a >> 16) - (b >> 16)) & 0xFFFFu;
    return lo | (hi << 16);
}
#endif

/* Saturate to int8: clamp(x, -128, 127) in one SSAT. */
#if defined(__ARM_FEATURE_SAT) && __ARM_FEATURE_SAT
#include <arm_acle.h>
static inline int32_t tf_sat_s8(int32_t x) { return __ssat(x, 8); }
#else
static inline int32_t tf_sat_s8(int32_t x) { return x < -128 ? -128 : (x > 127 ? 127 : x); }
#endif

/* SMMULR: the high word of a * b, rounded: (a * b + 2^31) >> 32 (ties towards +inf). */
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
static inline int32_t tf_smmulr(int32_t a, int32_t b)
{
    int32_t r;
    __asm__("smmulr %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
    return r;
}
#else
static inline int32_t tf_smmulr(int32_t a, int32_t b)
{
    return (int32_t)(((int64_t)a * b + ((int64_t)1 << 31)) >> 32);
}
#endif

/* SMMLA / SMMLAR: acc + the high word of a * b, truncated or rounded (+2^31), modulo 2^32. */
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
static inline int32_t tf_smmla(int32_t a, int32_t b, int32_t acc)
{
    int32_t r;
    __asm__("smmla %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
}
static inline int32_t tf_smmlar(int32_t a, int32_t b, int32_t acc)
{
    int32_t r;
    __asm__("smmlar %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
}
#else
static inline int32_t tf_smmla(int32_t a, int32_t b, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(int32_t)(((int64_t)a * b) >> 32));
}
static inline int32_t tf_smmlar(int32_t a, int32_t b, int32_t acc)
{
    const int32_t hi = (int32_t)(((int64_t)a * b + ((int64_t)1 << 31)) >> 32);
    return (int32_t)((uint32_t)acc + (uint32_t)hi);
}
#endif

/* Lane-wise signed max of four int8 lanes: SSUB8 sets GE per lane, SEL picks. */
#if defined(__ARM_FEATURE_SIMD32) && __ARM_FEATURE_SIMD32
static inline uint32_t tf_max_s8x4(uint32_t a, uint32_t b)
{
    uint32_t r;
    __asm__("ssub8 %0, %1, %2\n\tsel %0, %1, %2" : "=&r"(r) : "r"(a), "r"(b) : "cc");
    return r;
}
#else
static inline uint32_t tf_max_s8x4(uint32_t a, uint32_t b)
{
    uint32_t r = 0;
    for (int i = 0; i < 32; i += 8) {
        const int8_t x = (int8_t)(a >> i), y = (int8_t)(b >> i);
        r |= (uint32_t)(uint8_t)(x > y ? x : y) << i;
    }
    return r;
}
#endif

/* SMLABB / SMLATT: acc + bottom(a) * bottom(b), acc + top(a) * top(b), signed halfwords,
 * wrapping modulo 2^32 like the instructions (which only set the Q flag). GCC 12's
 * arm_acle.h lacks them, so they are written directly. */
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
static inline int32_t tf_smlabb(uint32_t a, uint32_t b, int32_t acc)
{
    int32_t r;
    __asm__("smlabb %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
}
static inline int32_t tf_smlatt(uint32_t a, uint32_t b, int32_t acc)
{
    int32_t r;
    __asm__("smlatt %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
}
#else
static inline int32_t tf_smlabb(uint32_t a, uint32_t b, int32_t acc)
{
    const int32_t p = (int32_t)(int16_t)(a & 0xFFFFu) * (int32_t)(int16_t)(b & 0xFFFFu);
    return (int32_t)((uint32_t)acc + (uint32_t)p);
}
static inline int32_t tf_smlatt(uint32_t a, uint32_t b, int32_t acc)
{
    const int32_t p = (int32_t)(int16_t)(a >> 16) * (int32_t)(int16_t)(b >> 16);
    return (int32_t)((uint32_t)acc + (uint32_t)p);
}
#endif

/* Unaligned 32-bit store (a single STR on Cortex-M7). */
static inline void tf_write_u32(int8_t *p, uint32_t v) { memcpy(p, &v, sizeof v); }

#endif /* !__ASSEMBLER__ */

#endif /* TF_DSP_H */
