"""The boards firmware is built for, in one registry: memory budgets, what their counter counts,
the target that runs their builds. The compiler, the harness, NAS and the CLI read it here.

Both boards carry the STM32F746's budget (firmware/boards/*/link.ld): a model that fits the
emulator's build fits the board.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Board:
    name: str
    flash_bytes: int
    ram_bytes: int
    count_unit: str  # what one inference's count is in: instructions (QEMU) or cycles (DWT)
    target: str  # the target that measures its builds by default (latency samples are keyed so)
    clock_hz: int  # the core clock its firmware sets (INFO reports the one it reached)


FLASH_BUDGET = 1024 * 1024
RAM_BUDGET = 320 * 1024
BOARDS = {
    b.name: b
    for b in (
        Board("mps2-an500", FLASH_BUDGET, RAM_BUDGET, "instructions", "qemu", 25_000_000),
        Board("stm32f746", FLASH_BUDGET, RAM_BUDGET, "cycles", "board", 216_000_000),
    )
}
DEFAULT_BOARD = "mps2-an500"  # QEMU's: what builds are for unless a command names a board
MS_BOARD = "stm32f746"  # latency in milliseconds is always this board's, at its clock
