"""What a model takes of the board's flash and RAM, known before the firmware is built.

RAM is predicted to 16 bytes: the linker's RAM region holds the reserved stack, the planned
arena (aligned to 16), one 32-bit counter per layer and the firmware's own buffers
(``FIRMWARE_STATIC_RAM``: protocol frames, receive ring, fault stack). Flash is bounded from
below: the constants the code generator emits, exactly, plus the code every firmware has
(``FIRMWARE_BASE_FLASH``: startup, runtime, protocol, board, libc) and the model's call of
each layer; the kernels the model uses (3-29 KB) come on top. So a model refused here would
fail to link too, and one that passes may still overflow at link time by at most the
kernels' code, where the linker's verdict names the overflow (``firmware.build``).
Both constants are measured (``tinyformer compile`` on mps2-an500) and kept honest by
``tests/test_budget.py``, which builds models at the edge of both budgets.
"""

from __future__ import annotations

from dataclasses import dataclass

from tinyformer.boards import BOARDS
from tinyformer.compiler.errors import DoesNotFitError
from tinyformer.engine.cmodel import CModel
from tinyformer.engine.ir import Graph
from tinyformer.engine.planner import MemoryPlan

FIRMWARE_BASE_FLASH = 3_536
FLASH_PER_LAYER_MIN = 16  # tf_model_run's call of one layer: at least a load and a branch
# Every kernel linked in (28,673 B of code in firmware/kernels measured) and a generous call
# per layer (60 B measured): the most the code can add, for estimates that must not
# overpromise (SuperNAS)
KERNELS_FLASH_MAX = 30_000
FLASH_PER_LAYER_MAX = 96
FIRMWARE_STATIC_RAM = 6_332
RAM_PER_LAYER = 4  # the layer's instruction/cycle counter


@dataclass(frozen=True)
class BudgetEstimate:
    constants_bytes: int  # weights as stored, folded biases, requantization tables
    flash_min_bytes: int  # the flash the firmware takes at least
    flash_max_bytes: int  # ... and at most
    static_ram_bytes: int  # .bss: arena + counters + firmware buffers (to 16 bytes)
    ram_region_bytes: int  # what the linker places in RAM: static + the reserved stack


def estimate(graph: Graph, plan: MemoryPlan, cmodel: CModel, stack_size: int) -> BudgetEstimate:
    layers = len(graph.nodes)
    constants = sum(int(c.values.nbytes) for c in cmodel.constants)
    static = plan.arena_bytes + RAM_PER_LAYER * layers + FIRMWARE_STATIC_RAM
    return BudgetEstimate(
        constants_bytes=constants,
        flash_min_bytes=constants + FIRMWARE_BASE_FLASH + FLASH_PER_LAYER_MIN * layers,
        flash_max_bytes=constants
        + FIRMWARE_BASE_FLASH
        + KERNELS_FLASH_MAX
        + FLASH_PER_LAYER_MAX * layers,
        static_ram_bytes=static,
        ram_region_bytes=static + stack_size,
    )


def check_fits(est: BudgetEstimate, board: str) -> None:
    """Refuse, naming each region and by how much it overflows, a model that cannot link."""
    spec = BOARDS[board]
    over = {
        region: need - budget
        for region, need, budget in (
            ("FLASH", est.flash_min_bytes, spec.flash_bytes),
            ("RAM", est.ram_region_bytes, spec.ram_bytes),
        )
        if need > budget
    }
    if not over:
        return
    parts = []
    if "FLASH" in over:
        parts.append(
            f"FLASH ({spec.flash_bytes // 1024} KB) overflowed by at least {over['FLASH']:,} "
            f"bytes ({est.constants_bytes:,} B of weights and tables + firmware code)"
        )
    if "RAM" in over:
        parts.append(
            f"RAM ({spec.ram_bytes // 1024} KB) overflowed by {over['RAM']:,} bytes "
            f"(arena + firmware {est.static_ram_bytes:,} B + stack "
            f"{est.ram_region_bytes - est.static_ram_bytes:,} B)"
        )
    raise DoesNotFitError(
        f"model does not fit on {board}: " + "; ".join(parts) + " (refused before the build)",
        flash_bytes=est.flash_min_bytes,
        ram_bytes=est.ram_region_bytes,
    )
