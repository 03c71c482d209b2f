/*
 * tf_transpose_s8 - 4-D transpose of blocks of int8, and the MobileViT unfold / fold.
 *
 *   input  [shape[0]][shape[1]][shape[2]][shape[3]][inner] int8, contiguous
 *   output [shape[perm[0]]][shape[perm[1]]][shape[perm[2]]][shape[perm[3]]][inner] int8:
 *          output dim i is input dim perm[i] (numpy transpose); must not overlap input.
 *
 *   output[i0][i1][i2][i3][:] = input[j][:] where j[perm[n]] = i_n
 *
 * MobileViT unfold with p x p patches of an NHWC map [H][W][C] (H, W multiples of p):
 *   tokens[py*p + px][by*(W/p) + bx][c] = x[by*p + py][bx*p + px][c]
 * i.e. shape {H/p, p, W/p, p}, perm {1, 3, 0, 2}, inner C: p*p sequences of N = HW/p^2
 * tokens [N][C] each. token_to_patch is the inverse: shape {p, p, H/p, W/p}, perm
 * {2, 0, 3, 1}.
 * Reference: tinyformer/engine/ops/layout.py (transpose_s8, patch_to_token, token_to_patch).
 */
#ifndef TF_TRANSPOSE_S8_H
#define TF_TRANSPOSE_S8_H

#include <stdint.h>

void tf_transpose_s8(const int8_t *input, const int32_t shape[4], const int32_t perm[4],
                     int32_t inner, int8_t *output);

static inline void tf_patch_to_token_s8(const int8_t *input, int32_t h, int32_t w, int32_t c,
                                        int32_t p, int8_t *output)
{
    const int32_t shape[4] = {h / p, p, w / p, p}, perm[4] = {1, 3, 0, 2};
    tf_transpose_s8(input, shape, perm, c, output);
}

static inline void tf_token_to_patch_s8(const int8_t *input, int32_t h, int32_t w, int32_t c,
                                        int32_t p, int8_t *output)
{
    const int32_t shape[4] = {p, p, h / p, w / p}, perm[4] = {2, 0, 3, 1};
    tf_transpose_s8(input, shape, perm, c, output);
}

#endif /* TF_TRANSPOSE_S8_H */
