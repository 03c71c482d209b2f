"""What `compile` writes and prints, as a user runs it from a folder of their own (not the
repository root): per-layer data in compile.json, the model's own flash beside the
firmware's, predictions for either board with the files named; and the small CLI promises
(`--out` everywhere, one line for what cannot be done)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinyformer.compiler.model_flash import model_flash
from tinyformer.engine import ir
from tinyformer.engine.codegen import generate
from tinyformer.engine.demo import demo_graph

CLI = [sys.executable, "-m", "tinyformer.cli"]


def tinyformer(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=180, cwd=cwd)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The demo layer compiled for the STM32F746 with --layers, in a folder without results."""
    where = tmp_path_factory.mktemp("user")
    ir.save(demo_graph(1), where / "m.tfir")
    proc = tinyformer(
        "compile", "m.tfir", "--out", "fw", "--board", "stm32f746", "--layers", "--json", cwd=where
    )
    assert proc.returncode == 0, proc.stderr
    return where, json.loads(proc.stdout)


def test_compile_json_holds_every_layer_and_the_models_own_flash(
    compiled: tuple[Path, dict],
) -> None:
    where, _ = compiled
    meta = json.loads((where / "fw" / "compile.json").read_text())
    graph = ir.load(where / "m.tfir")
    assert [row["name"] for row in meta["per_layer"]] == [n.name for n in graph.nodes]
    weights = sum(generate(graph).layer_constant_bytes)
    assert sum(row["flash_bytes"] for row in meta["per_layer"]) == weights
    # the model's data: its weights and tables plus its small info record
    assert weights <= meta["model_data_bytes"] <= weights + 256
    assert meta["model_code_bytes"] > 1000
    assert meta["model_code_bytes"] + meta["model_data_bytes"] < meta["flash_bytes"]


def test_the_board_is_predicted_outside_the_repository(compiled: tuple[Path, dict]) -> None:
    where, out = compiled
    assert not (where / "results").exists()
    assert all(row["predicted"] for row in out["per_layer"]), out["predicted_from"]
    assert "estimated from QEMU instructions" in out["predicted_from"]
    assert "shipped fit" in out["predicted_from"]
    assert out["layers_ms"] == pytest.approx(out["per_layer"][0]["predicted"] / 216e3, abs=1e-3)
    assert out["memory_plan"] == "fw/plan.png" and (where / out["memory_plan"]).is_file()
    assert out["latency_chart"] == "fw/latency.png" and (where / "fw" / "latency.png").is_file()


def test_the_text_output_names_its_files_and_has_a_total_row(compiled: tuple[Path, dict]) -> None:
    where, _ = compiled
    proc = tinyformer("compile", "m.tfir", "-o", "fw2", "--layers", cwd=where)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert "model_code_bytes" in text and "model_data_bytes" in text
    assert "fw2/plan.png" in text and "latency chart: fw2/latency.png" in text
    assert "ms: estimate at 216 MHz from instructions" in text
    assert "predictions: shipped fit" in text
    total = next(line for line in text.splitlines() if line.strip().startswith("total"))
    assert "1,179,648" in total  # the demo layer's MACs, in all
    assert "…" not in text  # nothing squeezed off a terminal (the model hash in full)


def test_a_mismatched_input_file_is_one_line(compiled: tuple[Path, dict]) -> None:
    where, _ = compiled
    np.save(where / "small.npy", np.zeros((2, 2), np.int8))
    proc = tinyformer("run", "fw2", "--input", "small.npy", cwd=where)
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        "error: small.npy: int8 tensor of shape 2x2, the model's input is 64x96 (int8)"
    )


@pytest.mark.parametrize("command", ["search", "demo"])
def test_search_and_demo_take_out_as_well_as_o(tmp_path: Path, command: str) -> None:
    proc = tinyformer(command, "--out", "there", "--target", "nope", cwd=tmp_path)
    assert proc.returncode == 1
    assert "unknown target 'nope'" in proc.stderr and "No such option" not in proc.stderr


def test_bench_cpi_without_board_runs_says_what_to_record(tmp_path: Path) -> None:
    proc = tinyformer("bench", "cpi", cwd=tmp_path)
    assert proc.returncode == 1
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "--target board" in proc.stderr and "--record" in proc.stderr


def test_the_map_parser_takes_long_names_and_only_the_models_flash(tmp_path: Path) -> None:
    (tmp_path / "firmware.map").write_text(
        "Discarded input sections\n"
        " .text.unused   0x00000000      0x999 obj/kernels_tf_add_s8.o\n"
        "Linker script and memory map\n"
        " .text.tf_fully_connected_s8_generic\n"
        "                0x00000e80      0x300 /b/obj/kernels_tf_fully_connected_s8.o\n"
        " .text          0x00000100       0x40 /b/obj/model_model.o\n"
        " .rodata.w      0x00002000      0x500 /b/obj/model_model.o\n"
        " .rodata.lut    0x00003000       0x80 /b/obj/kernels_tf_lut_s8.o\n"
        " .text.uart     0x00004000      0x200 /b/obj/common_tf_protocol.o\n"
        " .bss.arena     0x20000000     0x4000 /b/obj/model_model.o\n"
    )
    own = model_flash(tmp_path / "firmware.map")
    assert own.code_bytes == 0x300 + 0x40 + 0x80
    assert own.data_bytes == 0x500
