"""`tinyformer run` as a user runs it on their own image: the image converted to the model's
input is what the target ran, milliseconds at 216 MHz beside the counts, the per-layer table
with its chart, and `--record` leaving the tables and no lock file behind."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tinyformer.engine import ir
from tinyformer.engine.builder import random_hybrid_graph
from tinyformer.engine.reference import outputs
from tinyformer.perf.milliseconds import CycleModel, timing
from tinyformer.quant.input_file import read_input


def _target_args(config: pytest.Config) -> tuple[list[str], str]:
    name = config.getoption("--target")
    args = ["--target", name]
    if name == "board":
        for opt in ("--port", "--probe", "--pyocd-target"):
            if config.getoption(opt) is not None:
                args += [opt, config.getoption(opt)]
    return args, "mps2-an500" if name == "qemu" else "stm32f746"


def test_run_an_image_with_layers_and_record(pytestconfig: pytest.Config, tmp_path: Path) -> None:
    target, board = _target_args(pytestconfig)
    graph = random_hybrid_graph(seed=6, size=12, channels=1, width=8, dim=16, blocks=1)
    ir.save(graph, tmp_path / "m.tfir")
    photo = np.random.default_rng(0).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    Image.fromarray(photo).save(tmp_path / "photo.png")
    cli = [sys.executable, "-m", "tinyformer.cli"]
    proc = subprocess.run(
        [*cli, "compile", "m.tfir", "-o", "fw", "--board", board],
        capture_output=True, text=True, timeout=180, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    proc = subprocess.run(
        [*cli, "run", "fw", *target, "--input", "photo.png", "--layers", "--json", "--record",
         "--results", "res"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    if "unavailable" in proc.stderr:
        pytest.skip(proc.stderr.strip())
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    # the target ran the photo, converted (gray, 12x12, pixel - 128): its output proves it
    x = read_input(tmp_path / "photo.png", graph)
    expected = outputs(graph, x)
    assert out["matches_reference"] is True and out["input"] == "photo.png"
    assert out["output_sha256"] == hashlib.sha256(expected.tobytes()).hexdigest()
    assert out["top_class"] == int(np.argmax(expected))
    # milliseconds at 216 MHz: of the cycles on a board, estimated from instructions on QEMU
    unit = "cycles" if "cycles" in out else "instructions"
    t = timing(graph, out["layer_counts"], unit, CycleModel({}), out[unit])
    assert out["latency_ms"] == pytest.approx(t.ms, abs=1e-3)
    assert out["latency_ms_basis"].startswith("measured" if unit == "cycles" else "estimate")
    assert [row["name"] for row in out["per_layer"]] == [n.name for n in graph.nodes]
    assert [row["ms"] for row in out["per_layer"]] == pytest.approx(t.layer_ms, abs=1e-4)
    assert out["latency_chart"] == f"fw/latency_{target[1]}.png"
    assert (tmp_path / out["latency_chart"]).stat().st_size > 0
    assert out["predicted_from"]  # where predictions come from, or why there are none
    # --record: the measurement and its layers' samples, no lock file beside them
    results = tmp_path / "res"
    assert sorted(p.name for p in results.iterdir()) == [
        "latency_samples.csv",
        "measurements.csv",
    ]
    samples = pd.read_csv(results / "latency_samples.csv")
    assert list(samples["count"]) == out["layer_counts"]
