"""Hand-made kernel layers run on QEMU: the ARM code paths (the kernels' assembly) that the host
builds of the kernels cannot reach. A test fills a CModel with one layer per case and the
input data; this builds the firmware around it and runs it once."""

from __future__ import annotations

from pathlib import Path

import pytest

from tinyformer.compiler.firmware import DEFAULT_STACK, build
from tinyformer.engine.cmodel import CModel
from tinyformer.hil.errors import TargetUnavailable
from tinyformer.hil.measure import Measurement, measure
from tinyformer.hil.targets.registry import make_target


def align16(n: int) -> int:
    return -(-n // 16) * 16


def run_on_qemu(cm: CModel, data: bytes, work: Path) -> Measurement:
    """Build ``cm`` into a firmware under ``work`` and run it on ``data`` in QEMU."""
    try:
        target = make_target("qemu")
    except TargetUnavailable as e:  # pragma: no cover - QEMU is part of `make setup`
        pytest.skip(str(e))
    cm.write(work / "model")
    fw = build(work / "model", work / "build", board=target.board, stack_size=DEFAULT_STACK)
    return measure(target, fw, data)
