/*
 * tf_global_avgpool_s8 - int8 global average pooling: the mean of every row (pixel or
 * token) per channel; output has the input's scale and zero point.
 *
 * Shapes and layouts (row-major):
 *   input  [rows][channels]  int8 ([H][W][C] with rows = H * W, or tokens [T][C])
 *   output [channels]        int8
 *
 *   out[c] = clamp(tf_round_div(sum_r input[r][c], rows), act_min, act_max)
 *
 * with tf_round_div (tf_avgpool_s8.h) rounding half away from zero; rows >= 1 and
 * rows <= 2^24 (the int32 sum). No scratch. Reference: engine/ops/pool.py (global_avgpool).
 */
#ifndef TF_GLOBAL_AVGPOOL_S8_H
#define TF_GLOBAL_AVGPOOL_S8_H

#include <stdint.h>

void tf_global_avgpool_s8(const int8_t *input, int32_t rows, int32_t channels, int32_t act_min,
                          int32_t act_max, int8_t *output);

#endif /* TF_GLOBAL_AVGPOOL_S8_H */
