"""Stack overflow on real firmware: the MPU guard catches it, the fault report is whole.

The fixture firmware (fixtures/stack_overflow_model) overflows on request: by recursion, or by
one frame bigger than the whole stack that writes only at its bottom (the case that used to
write into .bss unseen). Both must come back as a stack-overflow TargetFault with the
complete FAULT frame, not a cut-off report or a dropped link; a normal run of the same
firmware still reports its stack use.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from conftest import FIXTURES

from tinyformer.compiler.elfinfo import StackLayout
from tinyformer.compiler.firmware import DEFAULT_STACK, Firmware
from tinyformer.compiler.stackusage import CallGraph, predicted_stack_bytes
from tinyformer.hil.errors import TargetFault
from tinyformer.hil.protocol import CFSR_MMARVALID, CFSR_MSTKERR, FaultInfo
from tinyformer.hil.targets.base import Target

RECURSION, BIG_FRAME = 1, 2


@pytest.fixture(scope="module")
def overflow_firmware(build_firmware: Callable[..., Firmware]) -> Firmware:
    return build_firmware(FIXTURES / "stack_overflow_model")


def _layout(fw: Firmware) -> StackLayout:
    layout = fw.info.stack_layout
    assert layout is not None, "the firmware exports its stack guard symbols"
    return layout


def _overflow(target: Target, fw: Firmware, mode: int) -> tuple[str, FaultInfo]:
    start = time.monotonic()
    with pytest.raises(TargetFault) as info, target.session(fw) as dev:
        dev.run(bytes([mode]) + bytes(7))
    assert time.monotonic() - start < 10
    assert isinstance(info.value.fault, FaultInfo)
    return str(info.value), info.value.fault


@pytest.mark.parametrize("mode", [RECURSION, BIG_FRAME], ids=["recursion", "big-frame"])
def test_overflow_is_reported_as_one(
    target: Target, overflow_firmware: Firmware, mode: int
) -> None:
    message, fault = _overflow(target, overflow_firmware, mode)
    layout = _layout(overflow_firmware)
    assert message.startswith("firmware fault: stack overflow: the stack (8,192 B at ")
    assert f"MPU guard (0x{layout.guard_start:08x}..0x{layout.guard_end:08x})" in message
    assert "Raise the stack size" in message
    # The whole report arrived: a MemManage for a data access in the guard (MMFAR) and the
    # failed push of the exception frame on the overflowed stack (MSTKERR).
    assert fault.cfsr & CFSR_MMARVALID and fault.cfsr & CFSR_MSTKERR
    assert layout.guard_start <= fault.mmfar < layout.guard_end
    assert layout.guard_start <= fault.sp < layout.stack_limit
    assert not fault.frame_pushed and "PC unknown" in message


def test_big_frame_overflow_names_what_the_run_needed(
    target: Target, overflow_firmware: Firmware
) -> None:
    """The frame jumps 1 KB past the stack's bottom: the report says how far it reached."""
    message, fault = _overflow(target, overflow_firmware, BIG_FRAME)
    needed = _layout(overflow_firmware).stack_top - fault.mmfar
    assert DEFAULT_STACK + 1024 <= needed < DEFAULT_STACK + 2048
    assert f"the run needed more than {needed:,} B" in message


def test_a_normal_run_still_reports_its_stack(target: Target, overflow_firmware: Firmware) -> None:
    with target.session(overflow_firmware) as dev:
        info = dev.info()
        result = dev.run(bytes(range(8)))
    assert result.output == bytes(range(8))
    layout = _layout(overflow_firmware)
    # the painted, measured area is the stack alone, the guard is not part of it
    assert info.stack_bytes == result.stack_bytes == layout.stack_bytes == DEFAULT_STACK
    assert 0 < result.stack_used < 1024


def test_demo_stack_figure_stays_within_the_static_bound(dut, demo_firmware: Firmware) -> None:
    """The high-water mark of a real model under the guard: measured, below the call-graph
    bound, far from the stack's end."""
    result = dut.run(bytes(dut.info().input_bytes))
    predicted = predicted_stack_bytes(demo_firmware.elf.parent)
    assert 0 < result.stack_used <= predicted < result.stack_bytes


def test_the_guard_sits_right_below_the_stack(overflow_firmware: Firmware) -> None:
    layout = _layout(overflow_firmware)
    size = layout.guard_bytes
    assert size >= 32 and size & (size - 1) == 0, "an MPU region is a power of two >= 32 B"
    assert layout.guard_start % size == 0, "an MPU region is aligned to its size"
    assert layout.guard_end == layout.stack_limit
    frames = CallGraph.from_build(overflow_firmware.elf.parent).frames
    assert max(frames.values()) <= size, "no frame can jump over the guard"
    big = [size for name, size in frames.items() if name.endswith(":big_frame")]
    assert big and big[0] > DEFAULT_STACK  # ... the fixture's own included
