"""Build the Cortex-M7 firmware for a board and a generated model, with clear errors."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tinyformer.boards import BOARDS, DEFAULT_BOARD
from tinyformer.compiler.elfinfo import ElfInfo
from tinyformer.compiler.errors import DoesNotFitError, FirmwareBuildError
from tinyformer.compiler.stackusage import check_stack_guard
from tinyformer.engine.kernel_headers import FIRMWARE_DIR

DEFAULT_STACK = 8192
_OVERFLOW = re.compile(r"region `(\w+)' overflowed by (\d+) bytes")


@dataclass(frozen=True)
class Firmware:
    elf: Path
    board: str
    stack_size: int
    expected_count: int | None = None  # one inference's count, predicted: scales the run timeout

    @property
    def info(self) -> ElfInfo:
        return ElfInfo(self.elf)


def build_id() -> str:
    """The git revision of the checkout (with -dirty), or 'unknown' outside git."""
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=12"],
            cwd=FIRMWARE_DIR,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"


def build(
    model_dir: Path,
    build_dir: Path,
    board: str = DEFAULT_BOARD,
    stack_size: int = DEFAULT_STACK,
    jobs: int = 2,
    extra_cflags: str = "",
) -> Firmware:
    """Compile firmware/ + the model in ``model_dir`` into ``build_dir/firmware.elf``.

    A build with a stack frame the MPU stack guard cannot catch is refused
    (:func:`~tinyformer.compiler.stackusage.check_stack_guard`).
    """
    if board not in BOARDS:
        raise FirmwareBuildError(f"unknown board {board!r}; choose one of {', '.join(BOARDS)}")
    budgets = {"FLASH": BOARDS[board].flash_bytes, "RAM": BOARDS[board].ram_bytes}
    if not (Path(model_dir) / "model.c").is_file():
        raise FirmwareBuildError(f"{model_dir} has no model.c: compile a model first")
    if shutil.which("arm-none-eabi-gcc") is None:
        raise FirmwareBuildError(
            "arm-none-eabi-gcc is not installed: run `make setup` "
            "(apt packages gcc-arm-none-eabi libnewlib-arm-none-eabi)"
        )
    build_dir = Path(build_dir).resolve()
    cmd = [
        "make", "-s", f"-j{jobs}", "-C", str(FIRMWARE_DIR),
        f"BOARD={board}", f"MODEL_DIR={Path(model_dir).resolve()}",
        f"BUILD_DIR={build_dir}", f"STACK_SIZE={stack_size}", f"BUILD_ID={build_id()}",
    ]  # fmt: skip
    if extra_cflags:  # e.g. a third-party library's include folder (perf/cmsis_nn.py)
        cmd.append(f"EXTRA_CFLAGS={extra_cflags}")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        log = (proc.stdout + proc.stderr).strip()
        overflows = _OVERFLOW.findall(log)
        if overflows:
            parts = [
                f"{region} ({budgets.get(region, 0) // 1024} KB) overflowed by {int(n):,} bytes"
                for region, n in overflows
            ]
            need = {region: budgets.get(region, 0) + int(n) for region, n in overflows}
            raise DoesNotFitError(
                f"model does not fit on {board}: " + "; ".join(parts),
                flash_bytes=need.get("FLASH"),
                ram_bytes=need.get("RAM"),
            )
        tail = "\n".join(log.splitlines()[-25:])
        raise FirmwareBuildError(f"firmware build for {board} failed:\n{tail}")
    firmware = Firmware(build_dir / "firmware.elf", board, stack_size)
    check_stack_guard(build_dir, firmware.info.stack_layout)  # overflows must hit the guard
    return firmware
