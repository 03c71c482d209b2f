"""Kill a search at any moment and resume it: the same search, each measurement counted
once, nothing left running.

Each test runs driver.py in a process group of its own, watches the filesystem for its
moment and SIGKILLs the whole group there (driver, compile workers, make, the compilers),
then resumes. The resumed search must end as the undisturbed one (one reference run, shared):
the same candidates, measurements, unseen predictions and winner, and the same samples table
(no measurement's rows twice).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from conftest import processes_running
from driver import GENERATIONS
from elftools.elf.elffile import ELFFile
from processes import Moment, finish, kill_when  # tests/processes.py

from tinyformer.compiler.elfinfo import ElfInfo
from tinyformer.compiler.firmware import Firmware
from tinyformer.engine.codegen import generate
from tinyformer.hil.targets.base import Target
from tinyformer.nas.search import SEARCH_STATE

DRIVER = Path(__file__).with_name("driver.py")


def _start(*args: str | Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, str(DRIVER), *map(str, args)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a group of its own, to kill with all its children
        )


def _nothing_left(path: Path) -> None:
    """No process still names ``path``: the emulator dies with the killed driver."""
    deadline = time.monotonic() + 5
    while processes_running(path) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = processes_running(path)
    for pid in left:  # not one spinning on after the test
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert not left


def _state(out: Path) -> dict | None:
    path = out / SEARCH_STATE
    return json.loads(path.read_text()) if path.exists() else None


def _table(path: Path) -> pd.DataFrame:
    """A CSV table as its text (exact comparisons, NaN as '')."""
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _samples(results: Path) -> pd.DataFrame:
    path = results / "latency_samples.csv"
    return _table(path) if path.exists() else pd.DataFrame(columns=["model_id"])


def _outcome(out: Path, results: Path) -> dict[str, object]:
    """What a finished search decided and stored (timings and dates aside)."""
    # which worker measured a candidate is where, not what: any free one may
    candidates = _table(out / "candidates.csv").drop(columns=["seconds", "measured_on"])
    # a one-generation search has no check: nothing was predicted before it was measured
    checked = (out / "latency_check.csv").exists()
    check = _table(out / "latency_check.csv") if checked else pd.DataFrame(columns=["key"])
    samples = _samples(results).drop(columns="time")
    return {
        "candidates": candidates.sort_values("key").to_dict("records"),
        "latency_check": check.sort_values("key").to_dict("records"),
        "winner": json.loads((out / "chosen" / "candidate.json").read_text())["key"],
        "samples": sorted(samples.itertuples(index=False)),
    }


@pytest.fixture(scope="module")
def emulator(target: Target) -> str:
    if target.name == "board":
        pytest.skip("killing a driver is about the emulators it starts")
    return target.name


@pytest.fixture(scope="module")
def reference(emulator: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The undisturbed search."""
    root = tmp_path_factory.mktemp("reference")
    log = root / "log.txt"
    finish(_start("search", emulator, root / "out", root / "results", log=log), log)
    return _outcome(root / "out", root / "results")


def _during_a_build(out: Path, results: Path) -> Moment:
    """An object file caught empty: the assembler is writing it (before the fix, make took
    the file the kill left empty as built)."""

    def moment() -> bool:
        folders = [
            *out.glob("candidates/*/fw/build/obj"),
            *out.glob("candidates/*/fw/build/obj/*/"),
        ]
        end = time.monotonic() + 0.1
        while folders and time.monotonic() < end:  # busy: an object is empty for ~1 ms
            for folder in folders:
                with contextlib.suppress(FileNotFoundError):  # renamed meanwhile
                    for entry in os.scandir(folder):
                        if entry.name.endswith(".o") and entry.stat().st_size == 0:
                            return True
        return False

    return moment


def _measured_not_checkpointed(out: Path, results: Path) -> Moment:
    """A second-generation measurement stored, the generation not yet checkpointed."""

    def moment() -> bool:
        state = _state(out)
        if state is None or state["generation"] != 1:
            return False
        measured = {k for k, e in state["evaluated"].items() if e["measured"] is not None}
        return bool(set(_samples(results)["model_id"]) - measured)

    return moment


def _mid_generation(out: Path, results: Path) -> Moment:
    """Some of the second generation's new candidates evaluated, not all."""

    def moment() -> bool:
        state = _state(out)
        if state is None or state["generation"] != 1:
            return False
        done = [k for k in state["population"] if k in state["evaluated"]]
        new = [k for k in done if state["evaluated"][k]["generation"] == 1]
        return bool(new) and len(done) < len(state["population"])

    return moment


@pytest.mark.parametrize(
    "moment",
    [_during_a_build, _measured_not_checkpointed, _mid_generation],
    ids=["during-a-build", "measured-not-checkpointed", "mid-generation"],
)
def test_a_killed_search_resumes_to_the_same_result(
    emulator: str,
    reference: dict[str, object],
    tmp_path: Path,
    moment: Callable[[Path, Path], Moment],
) -> None:
    out, results, log = tmp_path / "out", tmp_path / "results", tmp_path / "log.txt"
    proc = _start("search", emulator, out, results, log=log)
    kill_when(proc, moment(out, results), log)
    _nothing_left(out)
    # a killed compiler left no object that make could take as built
    assert all(o.stat().st_size > 0 for o in out.glob("candidates/*/fw/build/obj/*.o"))
    state = _state(out)
    assert state is None or state["generation"] < GENERATIONS
    finish(_start("search", emulator, out, results, "--resume", log=log), log)
    assert _outcome(out, results) == reference


def test_a_build_killed_while_linking_leaves_no_elf(tmp_path: Path, demo) -> None:
    """The ELF appears whole or not at all: a partial one would be taken as built."""
    generate(demo).write(tmp_path / "model")
    build_dir, log = tmp_path / "build", tmp_path / "log.txt"
    proc = _start("build", tmp_path / "model", build_dir, log=log)
    kill_when(proc, lambda: any(build_dir.glob("firmware.elf*")), log)
    _nothing_left(tmp_path)
    elf = build_dir / "firmware.elf"
    if elf.exists():  # the kill came after the rename: then the ELF must be whole
        assert ElfInfo(elf).sizes.flash_bytes > 0
        with elf.open("rb") as f:
            assert all(len(s.data()) == s.data_size for s in ELFFile(f).iter_sections())
    finish(_start("build", tmp_path / "model", build_dir, log=log), log)
    assert ElfInfo(build_dir / "firmware.elf").sizes.flash_bytes > 0


@pytest.mark.parametrize("thread", [False, True], ids=["main-thread", "worker-thread"])
def test_the_emulator_dies_with_a_killed_driver(
    emulator: str, demo_firmware: Firmware, tmp_path: Path, thread: bool
) -> None:
    """A driver killed outright (SIGKILL: no cleanup runs) takes its emulator with it, also
    when a worker thread started the emulator."""
    elf, log = demo_firmware.elf, tmp_path / "log.txt"
    args = ["session", emulator, elf, demo_firmware.board, *(["--thread"] if thread else [])]
    proc = _start(*args, log=log)
    deadline = time.monotonic() + 60
    while "ready" not in log.read_text():
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.02)
    emulators = [pid for pid in processes_running(elf) if pid != proc.pid]
    assert emulators, "no emulator running the firmware"
    proc.kill()  # the driver alone: the emulator has a session of its own
    proc.wait()
    _nothing_left(elf)
