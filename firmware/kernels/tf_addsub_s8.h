/*
 * tf_addsub_s8 - TFLite's int8 ADD, SUB and SQUARED_DIFFERENCE, broadcasting: input1 +- input2
 * or their squared difference, both rescaled as in tf_add_s8 (which runs the same-shape ADD
 * of the engine's own models).
 *
 *   input1  int8, read at  input1[i0*s1[0] + i1*s1[1] + i2*s1[2] + i3*s1[3]]
 *   input2  int8, read at  input2[i0*s2[0] + ...]  (stride 0 along a broadcast dimension)
 *   output  [dims[0]][dims[1]][dims[2]][dims[3]] int8, contiguous; must not overlap the
 *           inputs where they are broadcast
 *   mode    0: ADD, 1: SUB, 2: SQUARED_DIFFERENCE
 *
 *   a = requantize((input1 - zp1) << left_shift, m1, e1)
 *   b = requantize((input2 - zp2) << left_shift, m2, e2)
 *   output = clamp(requantize(a + b | a - b | (a - b)^2, mo, eo) + output_zp, act_min, act_max)
 *
 * requantize is tf_requantize (TFLite's double rounding in an imported model).
 * Reference: tinyformer/engine/ops/tflm.py (add_sub, broadcast_strides).
 */
#ifndef TF_ADDSUB_S8_H
#define TF_ADDSUB_S8_H

#include <stdint.h>

void tf_addsub_s8(const int8_t *input1, const int32_t s1[4], const int8_t *input2,
                  const int32_t s2[4], const int32_t dims[4], int32_t input1_zp,
                  int32_t input1_multiplier, int32_t input1_shift, int32_t input2_zp,
                  int32_t input2_multiplier, int32_t input2_shift, int32_t output_zp,
                  int32_t output_multiplier, int32_t output_shift, int32_t act_min,
                  int32_t act_max, int32_t left_shift, int32_t mode,
                  int8_t *output);

#endif /* TF_ADDSUB_S8_H */
