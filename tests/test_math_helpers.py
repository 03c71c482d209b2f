"""tf_math.h's exact division and square root (float estimate + integer corrections) equal
Python's integer floor division and isqrt on boundaries and random operands."""

from __future__ import annotations

import ctypes
import math
import subprocess
from pathlib import Path

import numpy as np
import pytest

KERNELS = Path(__file__).resolve().parents[1] / "firmware" / "kernels"
SHIM = r"""
#include "tf_math.h"
uint32_t div_u64_u32(uint64_t num, uint32_t d) { return tf_div_u64_u32(num, d); }
uint32_t isqrt_u64(uint64_t v) { return tf_isqrt_u64(v); }
"""


@pytest.fixture(scope="module")
def lib(tmp_path_factory: pytest.TempPathFactory) -> ctypes.CDLL:
    d = tmp_path_factory.mktemp("mathshim")
    (d / "shim.c").write_text(SHIM)
    subprocess.run(
        ["gcc", "-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-fPIC", "-shared",
         f"-I{KERNELS}", str(d / "shim.c"), "-o", str(d / "shim.so")],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    lib = ctypes.CDLL(str(d / "shim.so"))
    for name in ("div_u64_u32", "isqrt_u64"):
        getattr(lib, name).restype = ctypes.c_uint32
    lib.div_u64_u32.argtypes = [ctypes.c_uint64, ctypes.c_uint32]
    lib.isqrt_u64.argtypes = [ctypes.c_uint64]
    return lib


def test_division_is_exact(lib) -> None:
    rng = np.random.default_rng(0)
    cases = [((1 << 61) - 1, d) for d in (1 << 30, (1 << 30) + 1, (1 << 31) - 1, 3 << 29)]
    cases += [((1 << (30 + b)) - 1, s) for b in range(1, 33) for s in (1 << (b - 1), (1 << b) - 1)]
    for _ in range(20000):  # quotients below 2^31, divisors of every size
        d = int(rng.integers(1, 1 << int(rng.integers(1, 33)), dtype=np.uint64))
        q = int(rng.integers(0, 1 << 31))
        cases.append((q * d + int(rng.integers(0, d)), d))
    for num, d in cases:
        assert lib.div_u64_u32(num, d) == num // d, (num, d)


def test_square_root_is_exact(lib) -> None:
    rng = np.random.default_rng(1)
    values = [0, 1, 2, 3, 4, (1 << 60), (1 << 62) - 1, (1 << 61) + 12345]
    for r in (1, 2, 1000, (1 << 30), (1 << 31) - 1):  # perfect squares and their neighbours
        values += [r * r - 1, r * r, r * r + 1]
    values += [int(v) for v in rng.integers(0, 1 << 62, 20000, dtype=np.uint64)]
    values += [1 << int(e) for e in rng.integers(0, 62, 100)]
    for v in values:
        if v < (1 << 62):
            assert lib.isqrt_u64(v) == math.isqrt(v), v


@pytest.mark.parametrize("output_zp", [-128, -7, 0, 127])
def test_smlal_requant_table_is_requantize(output_zp: int) -> None:
    """((hi:lo + x * M) >> 32) >> sh equals requantize(x, M, s) + zp over the whole int32
    range, for every shift the table takes; shifts outside [-22, -1] are refused."""
    from tinyformer.engine.intmath import requantize, smlal_requant_table

    rng = np.random.default_rng(output_zp + 200)
    shifts = np.arange(-22, 0)
    mult = rng.integers(2**30, 2**31, shifts.size)
    mult[3] = 0  # a dead channel
    table = smlal_requant_table(mult, shifts, output_zp)
    assert table is not None and table.dtype == np.int32
    x = np.concatenate([rng.integers(-(2**31), 2**31, (4000, 1)), [[-(2**31)], [2**31 - 1], [0]]])
    m, lo, hi, sh = (table[:, i].astype(np.int64) for i in range(4))
    high = ((hi << 32) + (lo & 0xFFFFFFFF) + x * m) >> 32  # SMLAL's high word
    assert np.all(np.abs(high) < 2**31)  # fits 32 bits
    np.testing.assert_array_equal(high >> sh, requantize(x, mult, shifts) + output_zp)
    assert smlal_requant_table(mult[:1], np.array([0]), output_zp) is None
    assert smlal_requant_table(mult[:1], np.array([-23]), output_zp) is None
    assert smlal_requant_table(np.array([0]), np.array([5]), output_zp) is not None  # dead
    assert smlal_requant_table(mult[:1], np.array([-5]), 128) is None
