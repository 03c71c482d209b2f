"""Build firmware/kernels/*.c for the host and load them with ctypes.

The same sources that go into the firmware are compiled with the host gcc (portable DSP
fallbacks from tf_dsp.h), so the tests compare the real kernel code with the numpy
reference. With TINYFORMER_SANITIZE=1 (set by tests/test_sanitizers.py, which also
preloads the sanitizer runtimes) the library is built with ASan and UBSan.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np

KERNELS = Path(__file__).resolve().parents[1] / "firmware" / "kernels"
SANITIZE = os.environ.get("TINYFORMER_SANITIZE") == "1"
CFLAGS = ["-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-fPIC", "-shared"]
SAN_FLAGS = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-g"]

_cache: dict[str, ctypes.CDLL] = {}


def load() -> ctypes.CDLL:
    """All kernels in one shared library, rebuilt when any source changes."""
    sources = sorted(KERNELS.glob("*.c"))
    digest = hashlib.sha256()
    for path in [*sources, *sorted(KERNELS.glob("*.h"))]:
        digest.update(path.name.encode() + path.read_bytes())
    digest.update(str(SANITIZE).encode())
    key = digest.hexdigest()[:16]
    if key in _cache:
        return _cache[key]
    out = Path(tempfile.gettempdir()) / f"tinyformer-kernels-{key}.so"
    if not out.exists():
        tmp = out.with_suffix(f".{os.getpid()}.tmp")
        flags = CFLAGS + (SAN_FLAGS if SANITIZE else [])
        cmd = ["gcc", *flags, f"-I{KERNELS}", *map(str, sources), "-o", str(tmp), "-lm"]
        subprocess.run(cmd, check=True, capture_output=True, text=True)
        os.replace(tmp, out)
    _cache[key] = ctypes.CDLL(str(out))
    return _cache[key]


def ptr(a: np.ndarray) -> ctypes.c_void_p:
    """Pointer to a C-contiguous numpy array's data."""
    assert a.flags["C_CONTIGUOUS"], "kernels take C-contiguous arrays"
    return ctypes.c_void_p(a.ctypes.data)
