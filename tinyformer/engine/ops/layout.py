"""Layout ops between NHWC feature maps and token sequences (MobileViT unfold / fold).

MobileViT unfolding with a p x p patch: the feature map [H][W][C] (H, W multiples of p) is
cut into N = (H/p) * (W/p) patches; pixel (py, px) of every patch forms one sequence, so
there are P = p*p sequences of N tokens, each token a C-vector:

    tokens[py*p + px][by*(W/p) + bx][c] = x[by*p + py][bx*p + px][c]

i.e. the 4-D transpose [H/p][p][W/p][p] -> [p][p][H/p][W/p] over blocks of C bytes.
Attention then runs on each sequence [N][C] (tokens-major), and token_to_patch is the
inverse permutation. Both lower to ``tf_transpose_s8`` (firmware/kernels/tf_transpose_s8.h);
reshape moves no data.
"""

from __future__ import annotations

import numpy as np


def transpose_s8(
    x: np.ndarray, shape: tuple[int, int, int, int], perm: tuple[int, int, int, int], inner: int
) -> np.ndarray:
    """Blocks of ``inner`` bytes laid out [shape[0]][..][shape[3]] -> output dim i = input
    dim perm[i] (numpy's transpose convention). Returns the flat int8 output."""
    blocks = np.asarray(x, np.int8).reshape(*shape, inner)
    return np.ascontiguousarray(blocks.transpose(*perm, 4)).reshape(-1)


def _check(h: int, w: int, p: int) -> None:
    if p < 1 or h % p or w % p:
        raise ValueError(f"feature map {h}x{w} is not a whole number of {p}x{p} patches")


def patch_to_token(x: np.ndarray, p: int) -> np.ndarray:
    """x [H][W][C] int8 -> tokens [p*p][N][C], N = (H/p)*(W/p)."""
    h, w, c = x.shape
    _check(h, w, p)
    out = transpose_s8(x, (h // p, p, w // p, p), (1, 3, 0, 2), c)
    return out.reshape(p * p, (h // p) * (w // p), c)


def token_to_patch(tokens: np.ndarray, h: int, w: int, p: int) -> np.ndarray:
    """tokens [p*p][N][C] int8 -> x [H][W][C] (inverse of patch_to_token)."""
    c = tokens.shape[-1]
    _check(h, w, p)
    out = transpose_s8(tokens, (p, p, h // p, w // p), (2, 0, 3, 1), c)
    return out.reshape(h, w, c)


def reshape(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Reshape of a contiguous tensor: same bytes, new shape (no kernel, no copy)."""
    if not x.flags["C_CONTIGUOUS"]:
        raise ValueError("reshape needs a contiguous tensor")
    return x.reshape(shape)
