/*
 * tf_mul_s8 - TFLite's int8 MUL, broadcasting.
 *
 *   input1  int8, read at  input1[i0*s1[0] + i1*s1[1] + i2*s1[2] + i3*s1[3]]
 *   input2  int8, read at  input2[i0*s2[0] + ...]  (stride 0 along a broadcast dimension)
 *   output  [dims[0]][dims[1]][dims[2]][dims[3]] int8, contiguous; must not overlap the
 *           inputs where they are broadcast
 *
 *   output = clamp(requantize((input1 - zp1) * (input2 - zp2), M, s) + output_zp,
 *                  act_min, act_max),   M 2^(s-31) ~ scale1 scale2 / output_scale
 *
 * requantize is tf_requantize (TFLite's double rounding in an imported model).
 * Reference: tinyformer/engine/ops/tflm.py (mul, broadcast_strides).
 */
#ifndef TF_MUL_S8_H
#define TF_MUL_S8_H

#include <stdint.h>

void tf_mul_s8(const int8_t *input1, const int32_t s1[4], const int8_t *input2,
               const int32_t s2[4], const int32_t dims[4], int32_t input1_zp, int32_t input2_zp,
               int32_t output_zp, int32_t multiplier, int32_t shift, int32_t act_min,
               int32_t act_max, int8_t *output);

#endif /* TF_MUL_S8_H */
