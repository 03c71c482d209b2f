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
 */
#ifndef TF_MATH_H
#define TF_MATH_H

#include <stdint.h>

static inline int32_t tf_requantize(int32_t x, int32_t multiplier, int32_t shift)
{
    const int64_t prod = (int64_t)x * (int64_t)multiplier;
    return (int32_t)(((prod >> (30 - shift)) + 1) >> 1);
}

static inline int32_t tf_clamp(int32_t x, int32_t lo, int32_t hi)
{
    return x < lo ? lo : (x > hi ? hi : x);
}

#endif /* TF_MATH_H */
