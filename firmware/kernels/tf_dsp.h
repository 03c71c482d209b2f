/*
 * tf_dsp.h - the Cortex-M DSP intrinsics the kernels use, with portable fallbacks.
 *
 * On ARM with the DSP extension (Cortex-M4/M7) these are GCC's arm_acle.h intrinsics
 * (SMLAD, SXTB16, ...). On the host they are plain C with the same results, so the
 * host build exercises the very same kernel code paths as the firmware.
 */
#ifndef TF_DSP_H
#define TF_DSP_H

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

#endif

/* Unaligned 32-bit load (a single LDR on Cortex-M7). */
static inline uint32_t tf_read_u32(const int8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

#endif /* TF_DSP_H */
