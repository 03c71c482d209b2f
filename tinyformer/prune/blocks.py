"""Block masks on torch weights, in the engine's row layout.

The engine stores a weight matrix as rows of ``K`` weights cut into blocks of ``B`` consecutive
weights (``tinyformer.engine.sparse_format``):

- linear ``weight [M][K]`` (torch and engine agree): row ``m`` is ``weight[m, :]``;
- dense conv, torch ``weight [Cout][Cin][kh][kw]``; the engine's OHWI weight
  ``[Cout][kh][kw][Cin]`` flattened per output channel, so row ``o`` is
  ``weight[o].permute(1, 2, 0).reshape(-1)`` (index ``(i * kw + j) * Cin + c``): a block runs
  along the input channels of one kernel tap (across taps when ``Cin`` is not a multiple of B).

When ``K`` is not a multiple of ``B`` the last block of a row is short (the engine zero-pads
it in storage). A block's magnitude is its L2 norm; :func:`block_mask` zeroes the
``round(sparsity * blocks)`` blocks of smallest norm over the whole matrix, ties going to the
earlier block (row-major), as ``sparse_format.prune_blocks`` does on int8 weights.
"""

from __future__ import annotations

import torch

from tinyformer.prune.plan import BLOCKS


def _check(block: int) -> int:
    if int(block) not in BLOCKS:
        raise ValueError(f"block size must be one of {BLOCKS}, got {block}")
    return int(block)


def engine_rows(weight: torch.Tensor) -> torch.Tensor:
    """[rows][K] in the engine's order: linear as is, conv OIHW -> OHWI flattened."""
    if weight.ndim == 2:
        return weight
    if weight.ndim == 4:
        return weight.permute(0, 2, 3, 1).reshape(weight.shape[0], -1)
    raise ValueError(f"expected a linear [M][K] or conv [O][I][kh][kw] weight, got {weight.shape}")


def from_engine_rows(rows: torch.Tensor, shape: torch.Size | tuple[int, ...]) -> torch.Tensor:
    """Inverse of :func:`engine_rows` for a weight of ``shape``."""
    if len(shape) == 2:
        return rows.reshape(shape)
    out_c, in_c, k_h, k_w = shape
    return rows.reshape(out_c, k_h, k_w, in_c).permute(0, 3, 1, 2).contiguous()


def _padded_blocks(rows: torch.Tensor, block: int) -> torch.Tensor:
    """[rows][nb][B], the last block zero-padded."""
    pad = (-rows.shape[1]) % block
    if pad:
        rows = torch.nn.functional.pad(rows, (0, pad))
    return rows.reshape(rows.shape[0], -1, block)


def block_norms(weight: torch.Tensor, block: int) -> torch.Tensor:
    """[rows][ceil(K / B)] L2 norms of the blocks (float64)."""
    rows = engine_rows(weight.detach().to(torch.float64))
    return _padded_blocks(rows, _check(block)).pow(2).sum(dim=2).sqrt()


def expand_block_mask(
    keep: torch.Tensor, weight_shape: tuple[int, ...], block: int
) -> torch.Tensor:
    """[rows][nb] bool block mask -> a 0/1 mask of ``weight_shape`` (torch layout)."""
    rows = keep.repeat_interleave(block, dim=1)
    k = 1
    for d in weight_shape[1:]:
        k *= d
    return from_engine_rows(rows[:, :k].to(torch.float32), tuple(weight_shape))


def block_mask(weight: torch.Tensor, block: int, sparsity: float) -> torch.Tensor:
    """0/1 float mask (same shape and device as ``weight``) zeroing exactly
    ``round(sparsity * blocks)`` blocks of smallest L2 norm; ties go to the earlier block."""
    if not 0.0 <= sparsity <= 1.0:
        raise ValueError(f"sparsity must be in [0, 1], got {sparsity}")
    norms = block_norms(weight, block)
    flat = norms.reshape(-1).cpu()
    drop = round(sparsity * flat.numel())
    keep = torch.ones(flat.numel(), dtype=torch.bool)
    if drop:
        order = torch.sort(flat, stable=True).indices
        keep[order[:drop]] = False
    mask = expand_block_mask(keep.reshape(norms.shape), tuple(weight.shape), _check(block))
    return mask.to(device=weight.device, dtype=weight.dtype)


def zero_blocks(weight: torch.Tensor, block: int) -> torch.Tensor:
    """[rows][nb] bool: which blocks are entirely zero."""
    return block_norms(weight, block) == 0


def block_sparsity(weight: torch.Tensor, block: int) -> float:
    """Fraction of the weight's B-blocks that are entirely zero."""
    return float(zero_blocks(weight, block).to(torch.float64).mean())


def mask_from_zeros(weight: torch.Tensor, block: int) -> torch.Tensor:
    """The mask of a pruned weight recovered from its zero blocks (a saved pruned model)."""
    keep = ~zero_blocks(weight, block).cpu()
    mask = expand_block_mask(keep, tuple(weight.shape), _check(block))
    return mask.to(device=weight.device, dtype=weight.dtype)
