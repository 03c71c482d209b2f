/*
 * tf_concat_s8 - CONCATENATION of two int8 tensors of one quantization along one axis.
 *
 *   input1  [outer][inner1] int8 (the dimensions before the axis flattened into outer, the
 *           axis and those after it into inner1)
 *   input2  [outer][inner2] int8
 *   output  [outer][inner1 + inner2] int8; must not overlap the inputs
 *
 *   output[o] = input1[o] ++ input2[o]
 *
 * Reference: tinyformer/engine/ops/tflm.py (concat).
 */
#ifndef TF_CONCAT_S8_H
#define TF_CONCAT_S8_H

#include <stdint.h>

void tf_concat_s8(const int8_t *input1, int32_t inner1, const int8_t *input2, int32_t inner2,
                  int32_t outer, int8_t *output);

#endif /* TF_CONCAT_S8_H */
