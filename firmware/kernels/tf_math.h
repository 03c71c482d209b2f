/*
 * tf_math.h - integer arithmetic shared by every kernel.
 *
 * The single definition of these semantics is tinyformer/engine/intmath.py; this file
 * must match it bit for bit.
 *
 * Requantization (single rounding, ties towards +inf), multiplier in [2^30, 2^31)
 * as Q31 and shift in [-31, 30], positive = left:
 *
 *     tf_requantize(x, M, s) = (((int64)x * M) >> (30 - s)) + 1) >> 1
 *
 * A model imported from TensorFlow Lite is built with TF_ROUNDING_TFLITE = 1 (its folder's
 * tf_model_config.h, written with its model.c): tf_requantize is then TFLite's double
 * rounding, MultiplyByQuantizedMultiplier (intmath.requantize_tflite), and the kernels leave
 * their single-rounding fast forms for their generic paths. The engine's own models are
 * built with 0 and compile to exactly what they did before.
 */
#ifndef TF_MATH_H
#define TF_MATH_H

#include <stdint.h>

#include "tf_config.h"

/* gemmlowp's SaturatingRoundingDoublingHighMul for b >= 0 (a multiplier): its nudge and
 * truncating division come to floor((a b + 2^30) / 2^31), ties towards +inf. */
static inline int32_t tf_srdhm(int32_t a, int32_t b)
{
    return (int32_t)(((int64_t)a * (int64_t)b + (1 << 30)) >> 31);
}

/* gemmlowp's RoundingDivideByPOT: x / 2^e rounded, ties away from zero (0 <= e <= 31). */
static inline int32_t tf_rdbpot(int32_t x, int32_t e)
{
    const int32_t mask = (int32_t)((1u << e) - 1u); /* 32-bit: no library shift */
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0);
    return (x >> e) + (remainder > threshold);
}

static inline int32_t tf_requantize(int32_t x, int32_t multiplier, int32_t shift)
{
#if TF_ROUNDING_TFLITE
    const int32_t left = shift > 0 ? shift : 0;
    return tf_rdbpot(tf_srdhm((int32_t)((uint32_t)x << left), multiplier), left - shift);
#else
    const int64_t prod = (int64_t)x * (int64_t)multiplier;
    return (int32_t)(((prod >> (30 - shift)) + 1) >> 1);
#endif
}

static inline int32_t tf_clamp(int32_t x, int32_t lo, int32_t hi)
{
    return x < lo ? lo : (x > hi ? hi : x);
}

/* A 64-bit integer as a float with two 32-bit conversions (VCVT), not the library's
 * 64-bit conversion routine: relative error < 2^-22, enough for the estimates below. */
static inline float tf_i64_to_float(int64_t x)
{
    return (float)(int32_t)(x >> 32) * 4294967296.0f + (float)(uint32_t)x;
}

/* Exact floor(num / d) for d > 0 and a quotient below 2^31, without a 64-bit division
 * routine: a single-precision estimate (the STM32F746's FPU is single precision; plain C
 * floats on the host), one correction by the exact remainder divided in float, then +-1
 * steps with exact integer products. The estimate is off by < 2^10 units, the correction
 * leaves < 3, the steps make it exact however the floats rounded. */
static inline uint32_t tf_div_u64_u32(uint64_t num, uint32_t d)
{
    const float df = (float)d;
    uint32_t q = (uint32_t)(tf_i64_to_float((int64_t)num) / df);
    q += (uint32_t)(int32_t)(tf_i64_to_float((int64_t)(num - (uint64_t)q * d)) / df);
    while ((uint64_t)q * d > num) {
        q--;
    }
    while ((uint64_t)(q + 1u) * d <= num) {
        q++;
    }
    return q;
}

/* Exact floor(sqrt(v)) for v < 2^62, the same way: a single-precision estimate, one
 * Newton step r + (v - r^2) / 2r on the exact residual, +-1 steps. */
static inline uint32_t tf_isqrt_u64(uint64_t v)
{
    const float vf = tf_i64_to_float((int64_t)v);
#if defined(__ARM_FP) && (__ARM_FP & 4)
    float rf;
    __asm__("vsqrt.f32 %0, %1" : "=t"(rf) : "t"(vf)); /* sqrtf() adds an errno branch */
#else
    const float rf = __builtin_sqrtf(vf);
#endif
    uint32_t r = (uint32_t)rf;
    if (r != 0u) {
        const int64_t residual = (int64_t)(v - (uint64_t)r * r);
        r += (uint32_t)(int32_t)(tf_i64_to_float(residual) / (2.0f * (float)r));
    }
    while ((uint64_t)r * r > v) {
        r--;
    }
    while ((uint64_t)(r + 1u) * (r + 1u) <= v) {
        r++;
    }
    return r;
}

#endif /* TF_MATH_H */
