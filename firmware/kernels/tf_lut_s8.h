/*
 * tf_lut_s8 - elementwise int8 -> int8 function as a 256-entry lookup table.
 *
 * Any elementwise function of an int8 input with a known scale and zero point is exactly
 * a table; GELU's comes from ops/gelu.py (gelu_table, integer i-GELU).
 *   input  [size] int8 (any shape, flattened)
 *   table  [256] int8, entry q + 128 is the output for input q
 *   output [size] int8, may alias input
 *
 *   output[i] = table[input[i] + 128]
 *
 * Reference: tinyformer/engine/ops/gelu.py (lut).
 */
#ifndef TF_LUT_S8_H
#define TF_LUT_S8_H

#include <stdint.h>

void tf_lut_s8(const int8_t *input, const int8_t *table, int32_t size, int8_t *output);

#endif /* TF_LUT_S8_H */
