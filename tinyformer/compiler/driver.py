"""Compile an IR file into a firmware folder, and find what is in such a folder.

A compiled folder holds ``model.tfir`` (the IR it came from), ``model/model.c``,
``build/firmware.elf``, ``plan.png`` (the memory timeline) and ``compile.json``
(flash: the firmware's and the model's own share, arena, planner figures, predicted peak
SRAM, and ``per_layer``: each layer's name, op, MACs, flash, scratch and arena in use).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from tinyformer.atomic_write import write_atomic_text
from tinyformer.boards import BOARDS, DEFAULT_BOARD
from tinyformer.compiler.budget import check_fits, estimate
from tinyformer.compiler.errors import DoesNotFitError
from tinyformer.compiler.firmware import DEFAULT_STACK, Firmware, build
from tinyformer.compiler.model_flash import model_flash
from tinyformer.compiler.profile import layer_profile
from tinyformer.compiler.stackusage import predicted_stack_bytes
from tinyformer.engine import ir
from tinyformer.engine.codegen import generate, plan_graph
from tinyformer.engine.tflite_import import import_tflite
from tinyformer.engine.work import graph_macs


@dataclass(frozen=True)
class CompileReport:
    model: str
    model_hash: str
    board: str
    flash_bytes: int  # the whole test firmware (protocol, startup, UART included)
    model_code_bytes: int  # of which the model's: its kernels' and model.c's code
    model_data_bytes: int  # and its weights, bias and tables
    static_ram_bytes: int
    arena_bytes: int
    arena_lower_bound: int
    arena_ratio: float
    predicted_stack_bytes: int
    predicted_peak_sram_bytes: int
    layers: int


def compile_model(ir_path: Path, out_dir: Path, board: str = DEFAULT_BOARD) -> CompileReport:
    """Compile an IR file, or a ``.tflite`` model (imported first, into OUT/model.tfir)."""
    out_dir = Path(out_dir)
    tflite = Path(ir_path).suffix == ".tflite"
    graph = import_tflite(Path(ir_path)) if tflite else ir.load(ir_path)  # refused: no OUT
    out_dir.mkdir(parents=True, exist_ok=True)
    if tflite:
        ir.save(graph, out_dir / "model.tfir")
    elif Path(ir_path).resolve() != (out_dir / "model.tfir").resolve():
        shutil.copyfile(ir_path, out_dir / "model.tfir")
    plan = plan_graph(graph)
    cmodel = generate(graph, plan)
    need = estimate(graph, plan, cmodel, DEFAULT_STACK)
    check_fits(need, board)  # a model that cannot link is one line, not a build
    cmodel.write(out_dir / "model")
    plan.plot(out_dir / "plan.png", title=graph.name)
    try:
        fw = build(out_dir / "model", out_dir / "build", board=board, stack_size=DEFAULT_STACK)
    except DoesNotFitError as exc:  # past the prediction's lower bound: the linker's figures
        raise DoesNotFitError(
            str(exc),
            flash_bytes=max(exc.flash_bytes or 0, need.flash_min_bytes),
            ram_bytes=max(exc.ram_bytes or 0, need.ram_region_bytes),
        ) from None
    sizes = fw.info.sizes
    stack = predicted_stack_bytes(out_dir / "build")
    own = model_flash(out_dir / "build" / "firmware.map")
    if stack > DEFAULT_STACK:
        raise ValueError(
            f"the kernels need up to {stack:,} bytes of stack, more than the "
            f"{DEFAULT_STACK:,} the firmware reserves"
        )
    report = CompileReport(
        model=graph.name,
        model_hash=cmodel.digest().hex(),
        board=board,
        flash_bytes=sizes.flash_bytes,
        model_code_bytes=own.code_bytes,
        model_data_bytes=own.data_bytes,
        static_ram_bytes=sizes.static_ram_bytes,
        arena_bytes=plan.arena_bytes,
        arena_lower_bound=plan.lower_bound,
        arena_ratio=round(plan.ratio, 4),
        predicted_stack_bytes=stack,
        predicted_peak_sram_bytes=sizes.static_ram_bytes + stack,
        layers=len(graph.nodes),
    )
    ram_budget = BOARDS[board].ram_bytes
    if report.predicted_peak_sram_bytes > ram_budget:
        raise ValueError(
            f"model needs {report.predicted_peak_sram_bytes:,} bytes of SRAM with its stack, "
            f"over the {ram_budget // 1024} KB budget"
        )
    per_layer = [asdict(row) for row in layer_profile(graph)]
    meta = {**asdict(report), "per_layer": per_layer}
    write_atomic_text(json.dumps(meta, indent=2), out_dir / "compile.json")
    return report


def compile_report(folder: Path) -> dict:
    """``compile.json`` of a compiled folder, with clear errors when it is missing or damaged."""
    meta = Path(folder) / "compile.json"
    if not meta.is_file() or not (Path(folder) / "model.tfir").is_file():
        raise FileNotFoundError(f"{folder} is not a compiled model: run `tinyformer compile`")
    try:
        report = json.loads(meta.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{meta} is damaged ({exc}): run `tinyformer compile` again") from None
    if not isinstance(report, dict) or not {"board", "model_hash"} <= set(report):
        raise ValueError(f"{meta} is not a compile report: run `tinyformer compile` again")
    return report


def firmware_in(folder: Path, board: str) -> tuple[Firmware, ir.Graph]:
    """The firmware and IR of a compiled folder (clear errors when it is not one)."""
    folder = Path(folder)
    elf = folder / "build" / "firmware.elf"
    if not elf.is_file():
        raise FileNotFoundError(f"{folder} is not a compiled model: run `tinyformer compile`")
    built_for = compile_report(folder)["board"]
    if built_for != board:
        raise ValueError(f"{folder} was compiled for {built_for}, the target runs {board}")
    graph = ir.load(folder / "model.tfir")
    return Firmware(elf, board, DEFAULT_STACK, expected_count(graph)), graph


def expected_count(graph: ir.Graph) -> int:
    """A pessimistic count of one inference, for the run timeout: 4 per MAC (the kernels do
    about 1) plus 100,000 per layer for what has no MACs (softmax, LayerNorm, copies)."""
    return 4 * graph_macs(graph) + 100_000 * len(graph.nodes)
