"""renode/tinyformer.robot, checked here where Renode cannot run.

Robot Framework's own parser reads the suite: every keyword it calls must exist (its own,
BuiltIn's, Collections', its frame library's, or one of Renode's, with arguments Renode's
keyword takes), and its ELF path must be where `tinyformer compile --board stm32f746` writes.
Then the frames its library builds are played against the firmware's own code (the fake
board's host build of that very ELF): every reply the suite waits for is the one the firmware
sends, and the counts frame is the one the firmware reports.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import serial
from robot import api as robot_api
from robot.libraries.BuiltIn import BuiltIn
from robot.libraries.Collections import Collections
from robot.running import model as robot_model
from robot.variables import Variables
from test_stm32f746_build import needs_gcc

from tinyformer.compiler.driver import compile_model, firmware_in
from tinyformer.engine import ir
from tinyformer.engine.demo import demo_graph
from tinyformer.hil import protocol as p

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "renode" / "tinyformer.robot"
sys.path.insert(0, str(ROOT / "hil" / "fake_board"))

# Renode's keywords the suite may call, with the named arguments each takes: from Renode's
# src/Renode/RobotFramework (UartKeywords.cs: CreateTerminalTester, WaitForBytesOnUart,
# SendKeyToUart; RenodeKeywords: ExecuteCommand, StartEmulation) and its
# renode-keywords.robot (Setup, Teardown, Test Teardown).
RENODE_KEYWORDS: dict[str, set[str]] = {
    "Execute Command": {"command", "machine"},
    "Start Emulation": set(),
    "Create Terminal Tester": {
        "uart",
        "timeout",
        "machine",
        "endLineOption",
        "binaryMode",
        "defaultPauseEmulation",
        "defaultWaitForEcho",
        "defaultMatchNextLine",
    },
    "Wait For Bytes On Uart": {
        "content",
        "timeout",
        "testerId",
        "treatAsRegex",
        "pauseEmulation",
        "matchStart",
    },
    "Send Key To Uart": {"c", "testerId"},
    "Setup": set(),
    "Teardown": set(),
    "Test Teardown": set(),
}


def _norm(name: str) -> str:
    return name.lower().replace(" ", "").replace("_", "")


def _methods(obj: object) -> set[str]:
    return {_norm(n) for n in dir(obj) if not n.startswith("_")}


@pytest.fixture(scope="module")
def suite() -> robot_model.TestSuite:
    return robot_api.TestSuiteBuilder().build(str(SUITE))


def _frames_library() -> ModuleType:
    spec = importlib.util.spec_from_file_location("tinyformer_frames", SUITE.parent /
                                                  "tinyformer_frames.py")  # fmt: skip
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _calls(body: Any) -> Iterator[robot_model.Keyword]:
    for item in body:
        if isinstance(item, robot_model.Keyword):
            yield item
        if hasattr(item, "body"):
            yield from _calls(item.body)


def test_every_keyword_exists_with_the_arguments_it_takes(suite: robot_model.TestSuite) -> None:
    imports = {(i.type, Path(i.name).name if i.name.endswith(".py") else i.name)
               for i in suite.resource.imports}  # fmt: skip
    assert imports == {("RESOURCE", "${RENODEKEYWORDS}"), ("LIBRARY", "Collections"),
                       ("LIBRARY", "tinyformer_frames.py")}  # fmt: skip
    own = {_norm(k.name) for k in suite.resource.keywords}
    library = _methods(_frames_library())
    robot_libs = _methods(BuiltIn()) | _methods(Collections())
    renode = {_norm(k): args for k, args in RENODE_KEYWORDS.items()}
    bodies = [t.body for t in suite.tests] + [k.body for k in suite.resource.keywords]
    setups = [suite.setup.name, suite.teardown.name, *(t.teardown.name for t in suite.tests)]
    called = [c for b in bodies for c in _calls(b)]
    assert {c.name for c in called} >= {"Send Key To Uart", "Wait For Bytes On Uart",
                                        "Execute Command", "Layer Counts Exchange"}  # fmt: skip
    for name in setups:
        assert _norm(name) in renode, name
    for call in called:
        key = _norm(call.name)
        assert key in own | library | robot_libs | set(renode), f"unknown keyword {call.name}"
        if key in renode and key not in own:
            named = {a.split("=", 1)[0] for a in call.args if "=" in a and "{" not in a[:2]}
            assert named <= renode[key], f"{call.name} takes no {named - renode[key]}"


def test_the_elf_path_is_where_compile_writes(suite: robot_model.TestSuite, tmp_path: Path) -> None:
    out = tmp_path / "fw"
    variables = Variables()
    variables["${OUT}"] = str(out)  # as `--variable OUT:...` gives it
    for var in suite.resource.variables:
        if var.name != "${OUT}":
            variables[var.name] = variables.replace_scalar(var.value[0])
    elf = Path(variables.replace_string("${ELF}"))
    default_out = Path(suite.resource.variables[0].value[0]).resolve()
    assert default_out == ROOT / "build" / "stm32f746"  # the folder the suite documents
    assert "-o build/stm32f746 --board stm32f746" in suite.doc
    ir.save(demo_graph(3, 4, 16, 8), tmp_path / "m.tfir")
    compile_model(tmp_path / "m.tfir", out, board="stm32f746")
    assert elf.is_file()
    assert firmware_in(out, "stm32f746")[0].elf == elf  # what `tinyformer run` would load


def _wait_for(link: serial.Serial, expected: bytes, seen: bytearray, timeout: float = 10) -> None:
    """As Renode's Wait For Bytes On Uart: ``expected`` anywhere after the last match."""
    deadline = time.monotonic() + timeout
    while expected not in seen:
        assert time.monotonic() < deadline, f"{expected.hex(' ')} never came: {seen.hex(' ')}"
        seen += link.read(4096)
    del seen[: seen.index(expected) + len(expected)]


def _send(link: serial.Serial, request: list[str]) -> None:
    """As the suite's Send Frame: its "0xNN" bytes, in order."""
    link.write(bytes(int(b, 16) for b in request))


@needs_gcc
def test_the_suites_frames_are_what_the_firmware_answers(
    suite: robot_model.TestSuite, tmp_path
) -> None:
    from fake_board import FakeBoard

    frames = _frames_library()
    graph = demo_graph(3, 40, 64, 24)  # an input bigger than one INPUT frame
    ir.save(graph, tmp_path / "m.tfir")
    out = tmp_path / "fw"
    compile_model(tmp_path / "m.tfir", out, board="stm32f746")
    boot = next(v.value[0] for v in suite.resource.variables if v.name == "${BOOT_FRAME}")
    board = FakeBoard(tmp_path / "board")
    link = serial.Serial(board.port, 115200, timeout=0.05)
    seen = bytearray()
    try:
        assert board.command({"op": "program", "elf": str(out / "build" / "firmware.elf")}) == {}
        board.command({"op": "reset"})
        _wait_for(link, bytes.fromhex(boot), seen)
        exchange = frames.input_exchange(str(out))
        assert len(exchange) > 1
        for request, reply in exchange:
            _send(link, request)
            _wait_for(link, bytes.fromhex(reply), seen)
        _send(link, frames.run_request(str(out)))
        output = b""
        for request, reply in frames.output_exchange(str(out)):
            _send(link, request)
            _wait_for(link, bytes.fromhex(reply), seen)
            output += p.decode_frame(bytes.fromhex(reply)[:-1]).payload[4:]
        assert hashlib.sha256(output).hexdigest() == frames.output_sha256(str(out))
        address, layers = frames.layer_counts_address(str(out))
        assert layers == len(graph.nodes) and address >= 0x2000_0000  # in the STM32's SRAM
        # What the suite reads from memory is what READ LAYER_COUNTS returns: take the
        # firmware's DATA frame, and the suite's frame for its counts must be that frame.
        [[request, _]] = frames.layer_counts_exchange(*[0] * layers)
        _send(link, request)
        reader, data = p.FrameReader(), []
        deadline = time.monotonic() + 10
        while not data and time.monotonic() < deadline:
            items = reader.feed(bytes(seen) + link.read(4096))
            seen.clear()
            data = [f for f in items if isinstance(f, p.Frame) and f.type == p.Msg.DATA]
        assert data, "no DATA frame with the layer counts"
        counts = [int.from_bytes(data[0].payload[at : at + 4], "little")
                  for at in range(4, 4 + 4 * layers, 4)]  # fmt: skip
        assert all(c > 0 for c in counts)
        [[_, reply]] = frames.layer_counts_exchange(*counts)
        assert bytes.fromhex(reply) == p.encode_frame(data[0])
    finally:
        link.close()
        board.close()
