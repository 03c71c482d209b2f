"""The lab path of the HIL suite, `pytest hil --target board --port ... --probe ...`, run
against the fake board (hil/fake_board): a pseudo-terminal whose far end runs the host build
of the flashed ELF's own firmware sources, with pyOCD's probe side answered by that board.

The suite runs in a pytest of its own, as a lab runs it: the in-process sessions and the
`tinyformer` commands the tests start all reach the board through the options given, and
counts are compared with the board's default tolerance (the fake board's cycles: basic
blocks plus a cold instruction cache after reset, host_board.c). Its stack is an x86 one, so
the predicted-SRAM comparison of test_compile_then_run_a_folder is left to real boards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tinyformer.hil.targets.emulator import spawn

HIL = Path(__file__).resolve().parent
ROOT = HIL.parent
FAKE = HIL / "fake_board"
SUITE = [
    "hil/test_cli.py::test_run_json_prints_the_measurement",
    "hil/test_cli.py::test_evaluate_on_the_target",
    "hil/test_spine.py::test_boot_and_info",
    "hil/test_spine.py::test_counts_repeat",
    "hil/test_spine.py::test_counts_repeat_across_boots",
    "hil/test_spine.py::test_flaky_link_retries_to_the_right_answer",
    "hil/test_spine.py::test_reset_reboots_and_serves_again",
    "hil/test_exactly_once.py::test_boot_loop_is_named",
]

pytestmark = pytest.mark.qemu_only("it runs the board suite against a fake board of its own")


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    work = tmp_path_factory.mktemp("fake_board")
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{FAKE}"}
    # spawn: the board (and the firmware it runs) dies with this process, killed or not
    proc = spawn([sys.executable, str(FAKE / "fake_board.py"), str(work)],
                 stdout=subprocess.PIPE, env=env)  # fmt: skip
    assert proc.stdout is not None
    info: dict[str, Any] = json.loads(proc.stdout.readline())
    yield info
    proc.terminate()
    proc.wait(timeout=10)


def _board_log(board: dict[str, Any]) -> list[dict[str, Any]]:
    import socket

    with socket.socket(socket.AF_UNIX) as s:
        s.connect(board["socket"])
        s.sendall(b'{"op": "log"}\n')
        return list(json.loads(s.makefile().readline())["log"])


def _suite(board: dict[str, Any], tmp_path: Path, tests: list[str], *opts: str) -> dict[str, str]:
    """Run ``tests`` as a lab would; each test's outcome: passed, failed or the skip reason."""
    xml = tmp_path / "junit.xml"
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{FAKE}",
           "TINYFORMER_FAKE_PROBE": board["socket"]}  # fmt: skip
    cmd = [sys.executable, "-m", "pytest", *tests, "-q", "-p", "no:cacheprovider",
           f"--junitxml={xml}", "--target", "board", *opts]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert xml.is_file(), proc.stdout + proc.stderr
    outcomes = {}
    for case in ET.parse(xml).iter("testcase"):
        name = case.get("name", "")
        skipped = case.find("skipped")
        # an Element without children is false: compare with None, never `or` them
        failed = case.find("failure")
        failed = case.find("error") if failed is None else failed
        if failed is not None:
            outcomes[name] = "failed: " + (failed.get("message") or "")
        elif skipped is not None:
            outcomes[name] = skipped.get("message") or ""
        else:
            outcomes[name] = "passed"
    return outcomes


def test_the_board_suite_passes_on_the_fake_board(board, tmp_path) -> None:
    pack = tmp_path / "Keil.STM32F7xx_DFP.2.16.0.pack"  # only its presence is the stand-in's
    pack.write_bytes(b"PK")
    probe = board["probe"][-6:]  # pyOCD matches a part of the unique id
    outcomes = _suite(board, tmp_path, SUITE, "--port", board["port"], "--probe", probe,
                      "--pyocd-target", "stm32f746zgtx", "--pack", str(pack))  # fmt: skip
    qemu_only = {"test_boot_loop_is_named"}
    assert {n: o for n, o in outcomes.items() if n not in qemu_only} == dict.fromkeys(
        [t.split("::")[1] for t in SUITE if t.split("::")[1] not in qemu_only], "passed"
    )
    assert outcomes["test_boot_loop_is_named"].startswith("QEMU only (")
    log = _board_log(board)
    opened = [r for r in log if r["op"] == "open"]
    # every session, the CLI's included, came through the options given: port, probe, pack
    assert len(opened) >= 6
    assert all(r["pack"] == str(pack) and r["target"] == "stm32f746zgtx" for r in opened)
    assert all(r["unique_id"] == board["probe"] for r in opened)
    flashed = {Path(r["elf"]).name for r in log if r["op"] == "program"}
    assert flashed == {"firmware.elf"}
    # each flash is followed by the reset that starts it, after a halt (as pyOCD does)
    ops = [r["op"] for r in log if r["op"] in ("halt", "program", "reset")]
    assert ops[:3] == ["halt", "program", "reset"]


def test_a_wrong_probe_id_skips_every_board_test_with_one_reason(board, tmp_path) -> None:
    """The board is there, the id names another probe: the real path's own message, once
    for every test that needs the board (in-process sessions and CLI tests alike)."""
    tests = ["hil/test_spine.py", "hil/test_cli.py::test_run_json_prints_the_measurement",
             "hil/test_cli.py::test_unknown_target_is_one_clear_line"]  # fmt: skip
    outcomes = _suite(board, tmp_path, tests, "--port", board["port"], "--probe", "NOPE")
    reason = "no debug probe matches id 'NOPE'"  # what BoardTarget says on a real probe
    assert outcomes.pop("test_unknown_target_is_one_clear_line") == "passed"  # needs no board
    reasons = set(outcomes.values())
    assert len(outcomes) > 10 and len(reasons) == 1, reasons
    assert reasons.pop().startswith(reason)


def test_options_for_a_board_without_target_board_are_refused(tmp_path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "hil/test_spine.py", "--pack", "x.pack", "-q"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 4  # usage error, before anything runs on QEMU
    assert "--pack: only with --target board" in proc.stderr
