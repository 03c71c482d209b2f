/*
 * tf_softmax_s8 - integer softmax over the last axis, TFLite output convention.
 *
 * Shapes and layouts (row-major):
 *   input     [rows][n] int8 (zero point cancels; the scale is baked into exp_table)
 *   exp_table [256] int32, EXP[k] = round(2^Q * exp(-beta * input_scale * k)), built
 *             offline by softmax_exp_table(); requires n * EXP[0] < 2^31 (Q = 20: n <= 2047)
 *   output    [rows][n] int8, scale 1/256, zero point -128; may alias input
 *   no scratch.
 *
 * Per row, all integer:
 *   m     = max_i x_i,  e_i = EXP[m - x_i],  sum = sum_i e_i        (int32)
 *   L     = bitlen(sum),  r = (2^(30+L) - 1) / sum                  (r in [2^30, 2^31))
 *   out_i = clamp(tf_requantize(e_i, r, 9 - L) - 128, -128, 127)    (~ round(256 e_i / sum) - 128)
 * r starts from a single-precision quotient corrected with exact integer products (tf_math.h).
 *
 * Built with TF_ROUNDING_TFLITE (a model imported from TensorFlow Lite), it is TFLite Micro's
 * softmax instead: exp_table holds exp(-beta * input_scale * k) as Q0.31 (0 below its
 * diff_min), the row's Q12.19 sum of exps is inverted by gemmlowp's Newton-Raphson and each
 * output is RDBPOT(SRDHM(1/sum, e_i), n + 23) - 128; rows of up to 511 (ops/tflm.py).
 *
 * Reference: tinyformer/engine/ops/softmax.py (softmax, softmax_exp_table),
 * tinyformer/engine/ops/tflm.py (softmax_tflite, softmax_exp_table_tflite).
 */
#ifndef TF_SOFTMAX_S8_H
#define TF_SOFTMAX_S8_H

#include <stdint.h>

void tf_softmax_s8(const int8_t *input, const int32_t *exp_table, int32_t rows, int32_t n,
                   int8_t *output);

#endif /* TF_SOFTMAX_S8_H */
