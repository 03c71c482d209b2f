/*
 * tf_add_s8 - elementwise add of two int8 tensors with their own scales and zero points,
 * requantized to the output's (TFLite's int8 Add, with single-rounding tf_requantize).
 *
 * Shapes: input1, input2, output: n int8 each (any layout, the same for all three), any
 * byte alignment. output may alias input1 or input2 (each element is read before it is
 * written).
 *
 *   a   = tf_requantize((input1[i] - input1_zp) * 2^left_shift, input1_multiplier, input1_shift)
 *   b   = tf_requantize((input2[i] - input2_zp) * 2^left_shift, input2_multiplier, input2_shift)
 *   out = clamp(tf_requantize(a + b, output_multiplier, output_shift) + output_zp,
 *               act_min, act_max)
 *
 * The real multipliers are s1 / (2 max(s1, s2)), s2 / (2 max(s1, s2)) and
 * 2 max(s1, s2) / (2^left_shift * s_out) (engine/ops/elementwise.py: add_params), with
 * left_shift = 20: (x - zp) * 2^20 < 2^28, and a + b fits int32 with room to spare.
 * ReLU / ReLU6 are the [act_min, act_max] clamp (np.clip's order if act_min > act_max).
 * No scratch. Parameters as add_params makes them run an exact SMMULR / SMMLAR / SMMLA form
 * (Cortex-M7: an assembly loop, tf_add_s8_arm.S, four elements in ~42 instructions); others
 * an int64 path.
 * Reference: engine/ops/elementwise.py (add).
 */
#ifndef TF_ADD_S8_H
#define TF_ADD_S8_H

#include <stdint.h>

void tf_add_s8(const int8_t *input1, const int8_t *input2, int32_t n, int32_t input1_zp,
               int32_t input1_multiplier, int32_t input1_shift, int32_t input2_zp,
               int32_t input2_multiplier, int32_t input2_shift, int32_t output_zp,
               int32_t output_multiplier, int32_t output_shift, int32_t act_min,
               int32_t act_max, int32_t left_shift, int8_t *output);

#endif /* TF_ADD_S8_H */
