"""Firmware that faults, hangs or does not fit: clear errors, nothing left running."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest
from conftest import FIXTURES, processes_running

from tinyformer.compiler.errors import DoesNotFitError
from tinyformer.engine.cmodel import CArray, CModel
from tinyformer.hil.errors import LinkError, TargetFault, TargetTimeout


def test_fault_is_reported_with_pc(target, build_firmware) -> None:
    fw = build_firmware(FIXTURES / "fault_model")
    start = time.monotonic()
    fault = r"PC=0x[0-9a-f]{8}.*UNDEFINSTR"
    with pytest.raises(TargetFault, match=fault) as info, target.session(fw) as dev:
        dev.run(bytes(8))
    assert "tf_model_run" in str(info.value)  # the PC is resolved to a symbol
    assert time.monotonic() - start < 10
    assert not processes_running(fw.elf)


@pytest.mark.qemu_only("killing the emulator")
def test_hang_times_out_and_kills_the_emulator(target, build_firmware) -> None:
    target.run_timeout = 1.0
    fw = build_firmware(FIXTURES / "hang_model")
    start = time.monotonic()
    try:
        with pytest.raises(TargetTimeout, match="hangs"), target.session(fw) as dev:
            dev.run(bytes(8))
    finally:
        target.run_timeout = None
    assert time.monotonic() - start < 15
    assert not processes_running(fw.elf)


@pytest.mark.qemu_only("killing the emulator")
def test_emulator_killed_mid_session_is_a_link_error(target, demo_firmware) -> None:
    """The link going away (an emulator killed, a board unplugged) is a LinkError, not
    pyserial's exception."""
    with target.session(demo_firmware) as dut:
        for pid in processes_running(demo_firmware.elf):
            os.kill(pid, signal.SIGKILL)
        with pytest.raises(LinkError, match="the serial link failed"):
            dut.info()


@pytest.mark.parametrize(
    ("region", "arena", "weights"), [("RAM", 400_000, 0), ("FLASH", 0, 1_100_000)]
)
def test_over_budget_fails_to_link(build_firmware, region, arena, weights) -> None:
    model = CModel("too_big", arena + 16, 0, 8, 8, 8)
    if weights:
        model.constants.append(CArray("w", np.ones(weights, np.int8)))
        model.layers.append(("keep w", "    arena[0] = w[arena[1]];"))
    with pytest.raises(DoesNotFitError, match=rf"{region} \(\d+ KB\) overflowed by [\d,]+ bytes"):
        build_firmware(model)
