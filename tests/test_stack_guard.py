"""The stack guard, host side: builds are checked against it, fault reports name overflows.

The firmware side runs on QEMU in hil/test_stack_overflow.py; here are the parts that need no
emulator: the build check on call-graph files, FaultInfo.describe and the client's message,
and the guard's place in a real stm32f746 build.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from test_stm32f746_build import RAM_BASE, build_tiny_firmware, needs_gcc

from tinyformer.compiler.elfinfo import StackLayout
from tinyformer.compiler.errors import FirmwareBuildError
from tinyformer.compiler.firmware import Firmware
from tinyformer.compiler.stackusage import CallGraph, check_stack_guard
from tinyformer.hil import protocol as p
from tinyformer.hil.client import DeviceClient
from tinyformer.hil.errors import TargetFault

LAYOUT = StackLayout(
    guard_start=0x1FFF_8000,
    guard_end=0x2000_0000,
    stack_limit=0x2000_0000,
    stack_top=0x2000_2000,
    fault_stack_bytes=128,
)
MEMMANAGE_IN_GUARD = p.FaultInfo(
    pc=0, lr=0, sp=0x1FFF_FFE0, xpsr=0, cfsr=0x92, hfsr=0, mmfar=0x1FFF_FFFC, bfar=0
)  # DACCVIOL MSTKERR MMARVALID: what a recursion into the guard reports
UNDEFINED = p.FaultInfo(
    pc=0x0000_0ABC, lr=0x0000_0A01, sp=0x2000_1F00, xpsr=0x0100_0000, cfsr=1 << 16, hfsr=0,
    mmfar=0, bfar=0,
)  # fmt: skip

CI = """graph: { title: "a.c"
node: { title: "main" label: "main\\na.c:1:1\\n16 bytes (static)" }
node: { title: "tf_fault_report" label: "tf_fault_report\\na.c:2:1\\n40 bytes (static)" }
node: { title: "tf_frame_send" label: "tf_frame_send\\na.c:3:1\\n32 bytes (static)" }
node: { title: "/src/kernels/k.c:helper" label: "helper\\nk.c:4:1\\nFRAME" }
edge: { sourcename: "main" targetname: "/src/kernels/k.c:helper" label: "a.c:1:2" }
edge: { sourcename: "tf_fault_report" targetname: "tf_frame_send" label: "a.c:2:2" }
}
"""


def _graph(tmp_path: Path, helper_frame: str) -> Path:
    (tmp_path / "obj").mkdir(exist_ok=True)
    (tmp_path / "obj" / "a.ci").write_text(CI.replace("FRAME", helper_frame))
    return tmp_path


# -- the build check -----------------------------------------------------------------------


def test_frames_within_the_guard_pass(tmp_path: Path) -> None:
    check_stack_guard(_graph(tmp_path, "272 bytes (static)"), LAYOUT)
    check_stack_guard(_graph(tmp_path, "64 bytes (dynamic,bounded)"), LAYOUT)


def test_a_frame_bigger_than_the_guard_fails_the_build(tmp_path: Path) -> None:
    with pytest.raises(FirmwareBuildError, match=r"frame of k\.c:helper is 40,000 B, bigger "
                       r"than the 32,768 B MPU guard .* TF_STACK_GUARD_SIZE"):  # fmt: skip
        check_stack_guard(_graph(tmp_path, "40000 bytes (static)"), LAYOUT)


def test_an_unbounded_frame_fails_the_build(tmp_path: Path) -> None:
    with pytest.raises(FirmwareBuildError, match=r"without a static size \(k\.c:helper\)"):
        check_stack_guard(_graph(tmp_path, "8 bytes (dynamic)"), LAYOUT)


def test_the_fault_reporter_must_fit_its_stack(tmp_path: Path) -> None:
    small = StackLayout(0x1FFF_8000, 0x2000_0000, 0x2000_0000, 0x2000_2000, fault_stack_bytes=64)
    with pytest.raises(FirmwareBuildError, match=r"fault reporter needs 72 B .* has 64 B"):
        check_stack_guard(_graph(tmp_path, "8 bytes (static)"), small)


def test_a_firmware_without_a_guard_is_not_checked(tmp_path: Path) -> None:
    check_stack_guard(_graph(tmp_path, "40000 bytes (dynamic)"), None)


def test_call_graph_keeps_reading_frame_sizes(tmp_path: Path) -> None:
    graph = CallGraph.from_build(_graph(tmp_path, "8 bytes (dynamic)"))
    assert graph.frames["/src/kernels/k.c:helper"] == 8
    assert graph.unbounded == {"/src/kernels/k.c:helper"}
    assert graph.worst("tf_fault_report") == 72


# -- fault descriptions ----------------------------------------------------------------------


def test_a_guard_hit_is_described_as_a_stack_overflow() -> None:
    text = MEMMANAGE_IN_GUARD.describe(LAYOUT)
    assert text.startswith(
        "stack overflow: the stack (8,192 B at 0x20000000..0x20002000) ran into its MPU guard "
        "(0x1fff8000..0x20000000) at 0x1ffffffc: the run needed more than 8,196 B. "
        "Raise the stack size"
    )
    assert "PC unknown (the core could not push the exception frame) SP=0x1fffffe0" in text
    assert "(DACCVIOL MSTKERR MMARVALID) MMFAR=0x1ffffffc" in text


def test_an_sp_in_the_guard_is_an_overflow_without_mmfar() -> None:
    """A push that failed as a BusFault (STKERR), no valid MMFAR: SP alone tells."""
    fault = p.FaultInfo(pc=0, lr=0, sp=0x1FFF_FF00, xpsr=0, cfsr=1 << 12, hfsr=1 << 30,
                        mmfar=0, bfar=0)  # fmt: skip
    assert fault.overflow_address(LAYOUT) == 0x1FFF_FF00
    assert fault.describe(LAYOUT).startswith("stack overflow:")


def test_other_faults_keep_their_registers() -> None:
    text = UNDEFINED.describe(LAYOUT)
    assert text == (
        "PC=0x00000abc LR=0x00000a01 SP=0x20001f00 CFSR=0x00010000 (UNDEFINSTR) HFSR=0x00000000"
    )
    # an MPU fault outside the guard is no overflow either
    elsewhere = p.FaultInfo(0x100, 0x101, 0x2000_1000, 0, 0x82, 0, 0x4000_0000, 0)
    assert elsewhere.overflow_address(LAYOUT) is None


def test_without_the_layout_the_registers_still_say_what_happened() -> None:
    text = MEMMANAGE_IN_GUARD.describe()
    assert not text.startswith("stack overflow")
    assert "PC unknown" in text and "MSTKERR" in text


class _Replay:
    """A serial port that answers every request with one recorded FAULT frame."""

    def __init__(self, fault: p.FaultInfo) -> None:
        payload = struct.pack("<8I", *vars(fault).values())
        self._data = p.encode_frame(p.Frame(p.Msg.FAULT, 0, payload))
        self.timeout: float | None = None

    def read(self, size: int = 1) -> bytes:
        out, self._data = self._data[:size], self._data[size:]
        return out

    def write(self, data: bytes) -> int:
        return len(data)

    @property
    def in_waiting(self) -> int:
        return len(self._data)


def test_the_client_names_the_overflow() -> None:
    client = DeviceClient(_Replay(MEMMANAGE_IN_GUARD), stack=LAYOUT)
    with pytest.raises(TargetFault, match=r"^firmware fault: stack overflow: ") as info:
        client.info()
    assert info.value.fault == MEMMANAGE_IN_GUARD


def test_the_client_places_an_ordinary_fault_at_its_pc() -> None:
    client = DeviceClient(_Replay(UNDEFINED), describe_pc=lambda pc: f"0x{pc:08x} (f+0x4)")
    with pytest.raises(TargetFault, match=r"^firmware fault at 0x00000abc \(f\+0x4\): PC="):
        client.info()


# -- the stm32f746 build ---------------------------------------------------------------------


@needs_gcc
def test_stm32f746_build_has_the_guard_below_ram(tmp_path: Path) -> None:
    fw: Firmware = build_tiny_firmware(tmp_path)
    layout = fw.info.stack_layout
    assert layout is not None
    # the stack starts RAM, the guard is the address space below it: no SRAM spent on it
    assert layout.stack_limit == layout.guard_end == RAM_BASE
    assert layout.stack_bytes == fw.stack_size
    assert layout.guard_bytes & (layout.guard_bytes - 1) == 0
    assert layout.guard_start % layout.guard_bytes == 0
    assert layout.fault_stack_bytes >= CallGraph.from_build(fw.elf.parent).worst("tf_fault_report")
    with fw.elf.open("rb") as fh:
        elf = ELFFile(fh)
        symbols = {s.name: s["st_value"] for s in elf.get_section_by_name(".symtab").iter_symbols()}
        vectors = struct.unpack("<7I", elf.get_section_by_name(".isr_vector").data()[:28])
    assert "tf_stack_guard_init" in symbols
    # HardFault, MemManage, BusFault, UsageFault: one handler, which switches stacks first
    assert set(vectors[3:7]) == {symbols["HardFault_Handler"] | 1}
