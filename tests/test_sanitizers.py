"""The kernel property tests again, with the kernels built under ASan and UBSan.

A child pytest runs with TINYFORMER_SANITIZE=1 (tests/host_kernels.py then adds
-fsanitize=address,undefined) and the sanitizer runtimes preloaded, because the python
binary itself is not instrumented. numpy's buffers then come from ASan's malloc, so a kernel
reading one byte past a tensor, or overflowing a signed int, fails the child run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
KERNEL_TESTS = sorted(
    str(p)
    for p in TESTS.glob("test_*.py")
    if p.name.endswith("kernels.py") or p.name == "test_fully_connected.py"
)


def _runtime(name: str) -> str:
    out = subprocess.run(
        ["gcc", f"-print-file-name={name}"], capture_output=True, text=True, check=True
    )
    path = out.stdout.strip()
    if not os.path.isabs(path):
        pytest.skip(f"{name} is not installed (gcc's sanitizer runtime)")
    return path


def _child(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.update(
        TINYFORMER_SANITIZE="1",
        LD_PRELOAD=f"{_runtime('libasan.so')} {_runtime('libubsan.so')}",
        # pytest's fd capture would swallow a report printed as the process dies
        ASAN_OPTIONS=f"detect_leaks=0:log_path={tmp_path}/asan",
        UBSAN_OPTIONS=f"print_stacktrace=1:halt_on_error=1:log_path={tmp_path}/ubsan",
        TMPDIR=str(tmp_path),  # a separate cache for the sanitized library
    )
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)


def _reports(tmp_path: Path) -> str:
    return "".join(p.read_text() for p in sorted(tmp_path.glob("*san.*")))


def test_kernel_tests_pass_under_asan_and_ubsan(tmp_path: Path) -> None:
    assert len(KERNEL_TESTS) >= 4
    run = _child(KERNEL_TESTS, tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + _reports(tmp_path)[:6000]
    assert list(tmp_path.glob("tinyformer-kernels-*.so")), "the child did not build kernels"


def test_sanitizer_catches_an_out_of_bounds_read(tmp_path: Path) -> None:
    """The harness itself works: a kernel call with a too-short buffer is reported."""
    probe = tmp_path / "test_probe.py"
    probe.write_text(
        "import sys, numpy as np\n"
        f"sys.path.insert(0, {str(TESTS)!r})\n"
        "from host_kernels import load, ptr\n"
        "def test_overrun():\n"
        "    lib = load()\n"
        "    x = np.zeros(7, np.int8)\n"  # the LUT below reads 8 bytes
        "    table = np.zeros(256, np.int8)\n"
        "    out = np.zeros(8, np.int8)\n"
        "    lib.tf_lut_s8(ptr(x), ptr(table), 8, ptr(out))\n"
    )
    run = _child([str(probe)], tmp_path)
    assert run.returncode != 0
    assert "AddressSanitizer: heap-buffer-overflow" in _reports(tmp_path)
