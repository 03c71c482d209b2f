"""The engine's cost model: instructions of the dense and block-sparse kernels predicted from
a layer's shape and its block-rle statistics, and the storage choice built on it.

Each kernel's count is a sum of terms (:func:`dense_terms`, :func:`sparse_terms`: what a call
does, by name) times coefficients fitted by ``tinyformer bench sparse-cost`` on QEMU's
instruction counts (``perf/sparse_cost_bench.py``) and shipped as ``fitted/sparse_cost.json``,
keyed to the kernels it measured (:func:`~tinyformer.engine.kernel_headers.kernel_sources_key`).
``hil/test_sparse_cost_model_on_qemu.py`` checks the shipped fit against fresh QEMU counts.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from tinyformer.engine.kernel_headers import SPARSE_TILE
from tinyformer.engine.sparse_format import BLOCKS, ENCODING, as_matrix, block_stats
from tinyformer.errors import ToolError

FITTED = Path(__file__).parent / "fitted" / "sparse_cost.json"
REFIT = "`tinyformer bench sparse-cost --target qemu` fits it again"
TILE = SPARSE_TILE
DENSE_TILE_SIZES = (6, 4, 2, 1)  # the tiles dense_tiles runs: 6 tokens, 4 or 2, one alone

# The dense kernel's terms (tf_fully_connected_s8; tf_conv2d_s8 adds its patch gather): per
# call, per tile, per input byte sign-extended for a tile, per tile size T: per (row, group of
# 4 inputs) and per row (requantize, clamp, store T outputs; T = 1 runs two rows per pass).
DENSE_TERMS = (
    "per_call", "per_tile", "per_input", "im2col_per_byte",
    *(f"{term}_{t}" for term in ("per_group_row", "per_row") for t in DENSE_TILE_SIZES),
)  # fmt: skip
# The block-sparse kernels' terms (tf_sparse_fully_connected_s8, tf_sparse_conv2d_s8). Per
# call (header check, calls); per row once (the row table and the first tile's look at each
# row; per_row_check instead below 8 tokens in a linear: no table, the shifts checked); per
# 8-token tile: a row with entries (SMMLA + SSAT, strided stores, the row change), a row
# without (its output stored, not computed), a stored entry at B (the assembly's block body);
# the leftover tokens (n % 8) run one at a time: per row and per entry at B. Widening: a
# linear per input byte at B (B = 1 widens token pairs) and per token; a k x k conv per
# output pixel and per patch byte at B, or gathered then widened (B >= 4, Cin % 4 != 0).
SPARSE_TERMS = (
    "per_call", "per_row", "per_row_check", "per_row_tile", "per_empty_row_tile",
    "per_row_token", "per_token", "conv_per_pixel", "conv_gather_per_byte",
    *(f"{term}_{b}" for term in ("per_block", "per_block_token", "per_input", "conv_per_byte")
      for b in BLOCKS),
)  # fmt: skip
# The kernels a fit reports its error for.
DENSE_KERNELS = ("tf_fully_connected_s8", "tf_conv2d_s8")
SPARSE_KERNELS = ("tf_sparse_fully_connected_s8", "tf_sparse_conv2d_s8")


class CostModelError(ToolError):
    """The shipped fit is missing or damaged."""


@dataclass(frozen=True)
class KernelError:
    """How far a fit's predictions are from the calls it was fitted on."""

    calls: int
    mean_pct: float  # mean |predicted - measured| / measured, in percent
    max_pct: float


@dataclass(frozen=True)
class CostFit:
    """Coefficients (instructions per term) fitted on QEMU counts of the cost kernels."""

    kernel_sources: str  # kernel_sources_key() of the sources measured
    date: str  # when the calls were measured (ISO 8601)
    calls: int  # kernel calls fitted on (results/sparse_cost_calls.csv)
    dense: dict[str, float]  # DENSE_TERMS -> instructions
    sparse: dict[str, float]  # SPARSE_TERMS -> instructions
    error: dict[str, KernelError]  # per kernel

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> CostFit:
        """Parse and validate; ValueError naming the first problem."""
        data = json.loads(text)
        if not isinstance(data, dict) or set(data) != set(cls.__dataclass_fields__):
            raise ValueError(f"expected the keys {sorted(cls.__dataclass_fields__)}")
        for key in ("kernel_sources", "date"):
            if not isinstance(data[key], str) or not data[key]:
                raise ValueError(f"{key}: not a string")
        if not _count(data["calls"]):
            raise ValueError("calls: not a positive integer")
        errors = data["error"]
        if not isinstance(errors, dict) or set(errors) != {*DENSE_KERNELS, *SPARSE_KERNELS}:
            raise ValueError(f"error: expected the kernels {[*DENSE_KERNELS, *SPARSE_KERNELS]}")
        for kernel, e in errors.items():
            if not isinstance(e, dict) or set(e) != set(KernelError.__dataclass_fields__):
                raise ValueError(f"error.{kernel}: expected calls, mean_pct, max_pct")
            if not _count(e["calls"]) or not _number(e["mean_pct"]) or not _number(e["max_pct"]):
                raise ValueError(f"error.{kernel}: not a count and two percentages")
        return cls(
            data["kernel_sources"],
            data["date"],
            data["calls"],
            _coefficients(data["dense"], DENSE_TERMS, "dense"),
            _coefficients(data["sparse"], SPARSE_TERMS, "sparse"),
            {k: KernelError(**e) for k, e in errors.items()},
        )


def _count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v >= 0


def _coefficients(data: Any, names: tuple[str, ...], what: str) -> dict[str, float]:
    if not isinstance(data, dict) or set(data) != set(names):
        raise ValueError(f"{what}: expected the terms {list(names)}")
    bad = [n for n in names if not _number(data[n])]
    if bad:
        raise ValueError(f"{what}.{bad[0]}: not a finite number >= 0")
    return {n: float(data[n]) for n in names}


@cache
def shipped_fit(path: Path = FITTED) -> CostFit:
    """The fit shipped with the package (read once)."""
    try:
        return CostFit.from_json(path.read_text())
    except FileNotFoundError:
        raise CostModelError(f"the cost model's fit {path} is missing: {REFIT}") from None
    except (OSError, ValueError) as exc:  # JSONDecodeError is a ValueError
        raise CostModelError(f"the cost model's fit {path} is damaged ({exc}): {REFIT}") from None


def predict(coefficients: dict[str, float], terms: dict[str, float]) -> float:
    """Instructions: each term times its coefficient."""
    return sum(coefficients[name] * value for name, value in terms.items())


@dataclass(frozen=True)
class StorageChoice:
    """What :func:`choose_storage` picked, with the estimates it compared."""

    encoding: str | None  # None (dense, as Tensor.encoding) or "block-rle"
    block: int  # 0 for dense
    bytes: int
    instructions: float
    dense_bytes: int
    dense_instructions: float
    candidates: dict[int, tuple[int, float]]  # B -> (bytes, instructions)

    @property
    def key(self) -> str | tuple[str, int]:
        """``"dense"`` or ``("block-rle", B)``."""
        return "dense" if self.encoding is None else (self.encoding, self.block)

    @property
    def speedup(self) -> float:
        return self.dense_instructions / self.instructions


def dense_tiles(n: int) -> list[int]:
    """Token tile sizes tf_fully_connected_s8 runs for ``n`` tokens (its fc_fast schedule).

    Tiles of 6; the last 1-5 tokens: a tile of 4 or 2, a 6- or 4-tile overlapping the tokens
    before it (for 5 or 3 left), or one token alone.
    """
    tiles, t = [], 0
    while t < n:
        left = n - t
        size = 6 if left >= 6 else left - 1 if left in (5, 3) else left
        if left == 5 and n >= 6:
            size, t = 6, n - 6
        elif left == 3 and n >= 4:
            size, t = 4, n - 4
        tiles.append(size)
        t += size
    return tiles


def dense_terms(tokens: int, k: int, m: int, im2col: bool = False) -> dict[str, float]:
    """tf_fully_connected_s8's terms (tf_conv2d_s8's with ``im2col``), by DENSE_TERMS name."""
    tiles = dense_tiles(tokens)
    terms = {
        "per_call": 1.0,
        "per_tile": float(len(tiles)),
        "per_input": float(sum(tiles) * k),
        "im2col_per_byte": float(tokens * k if im2col else 0),
    }
    for size in DENSE_TILE_SIZES:
        terms[f"per_group_row_{size}"] = tiles.count(size) * (k / 4) * m
        terms[f"per_row_{size}"] = float(tiles.count(size) * m)
    return terms


def dense_instructions(tokens: int, k: int, m: int, im2col: bool = False) -> float:
    """Estimated instructions of tf_fully_connected_s8 (or tf_conv2d_s8 with ``im2col``)."""
    return predict(shipped_fit().dense, dense_terms(tokens, k, m, im2col))


def sparse_terms(
    tokens: int,
    k: int,
    m: int,
    block: int,
    entries: int,
    empty_rows: int = 0,
    im2col: bool = False,
    channels_aligned: bool = True,
) -> dict[str, float]:
    """The block-sparse kernel's terms, by SPARSE_TERMS name; ``entries`` = stored entries.

    ``im2col``: a k x k conv (k = kh*kw*Cin) whose patches are widened per pixel;
    ``channels_aligned``: Cin % 4 == 0 (B >= 4 then widens straight from the input).
    """
    if block not in BLOCKS:
        raise ValueError(f"block size {block}: the format stores {BLOCKS}")
    full, rest = divmod(tokens, TILE)
    terms = dict.fromkeys(SPARSE_TERMS, 0.0)
    terms["per_call"] = 1.0
    table = im2col or full > 0  # the conv's plan always builds it
    terms["per_row" if table else "per_row_check"] = float(m)
    terms["per_row_tile"] = float(full * (m - empty_rows))
    terms["per_empty_row_tile"] = float(full * empty_rows)
    terms[f"per_block_{block}"] = float(full * entries)
    terms["per_row_token"] = float(rest * m)
    terms[f"per_block_token_{block}"] = float(rest * entries)
    if im2col:
        gather = block >= 4 and not channels_aligned
        terms["conv_gather_per_byte" if gather else f"conv_per_byte_{block}"] = float(tokens * k)
        terms["conv_per_pixel"] = float(tokens)
    else:
        widened = tokens + (tokens & 1) if block == 1 else tokens  # B = 1 widens token pairs
        terms[f"per_input_{block}"] = float(widened * k)
        terms["per_token"] = float(tokens)
    return terms


def sparse_instructions(
    tokens: int,
    k: int,
    m: int,
    block: int,
    entries: int,
    empty_rows: int = 0,
    im2col: bool = False,
    channels_aligned: bool = True,
) -> float:
    """Estimated instructions of the block-sparse kernel (terms: :func:`sparse_terms`)."""
    terms = sparse_terms(tokens, k, m, block, entries, empty_rows, im2col, channels_aligned)
    return predict(shipped_fit().sparse, terms)


def choose_storage(
    weights: np.ndarray,
    tokens: int,
    blocks: tuple[int, ...] | None = BLOCKS,
    im2col: bool = False,
    channels_aligned: bool = True,
    bytes_weight: float = 0.0,
) -> StorageChoice:
    """Dense or block-rle with which B, for a layer applying ``weights`` to ``tokens`` rows.

    ``tokens`` is the number of activation rows the weights meet per call (tokens of a
    linear, output pixels of a conv); ``im2col=True`` for a k x k conv (not 1x1 stride 1),
    with ``channels_aligned`` telling whether Cin % 4 == 0. Block-rle is chosen only when it
    is both smaller and faster than dense; among the B that are, the one with the lowest
    ``instructions * (1 + bytes_weight * bytes / dense_bytes)`` wins (instructions alone by
    default), ties going to fewer bytes. ``blocks=None`` means every B. The result's
    ``.encoding`` is None for dense (as ``Tensor.encoding``) or ``"block-rle"``; ``.key`` is
    ``"dense"`` or ``("block-rle", B)``.
    """
    blocks = BLOCKS if blocks is None else blocks
    m, k = as_matrix(weights).shape
    dense_bytes = m * k
    dense_est = dense_instructions(tokens, k, m, im2col)
    cands: dict[int, tuple[int, float]] = {}
    for b in blocks:
        st = block_stats(weights, b)
        est = sparse_instructions(tokens, k, m, b, st.entries, st.empty_rows, im2col,
                                  channels_aligned)  # fmt: skip
        cands[b] = (st.total_bytes, est)
    best = None
    for b, (size, est) in cands.items():
        if size >= dense_bytes or est >= dense_est:
            continue
        score = (est * (1.0 + bytes_weight * size / dense_bytes), size)
        if best is None or score < best[0]:
            best = (score, b)
    if best is None:
        return StorageChoice(None, 0, dense_bytes, dense_est, dense_bytes, dense_est, cands)
    b = best[1]
    return StorageChoice(ENCODING, b, cands[b][0], cands[b][1], dense_bytes, dense_est, cands)
