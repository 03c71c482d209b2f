"""`tinyformer run --target <t> --json` end to end, as a user runs it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def test_run_json_prints_the_measurement(target_args, tmp_path) -> None:
    cmd = [sys.executable, "-m", "tinyformer.cli", "run", *target_args, "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    for key in ("target", "peak_sram_bytes", "flash_bytes", "stack_bytes", "output_sha256"):
        assert key in out
    count = out.get("instructions", out.get("cycles"))
    assert count > 0
    assert out["matches_reference"] is True
    assert out["peak_sram_bytes"] == out["static_ram_bytes"] + out["stack_bytes"]
    assert not (tmp_path / "results").exists()  # `run` records only when asked


def test_unknown_target_is_one_clear_line(tmp_path) -> None:
    cmd = [sys.executable, "-m", "tinyformer.cli", "run", "--target", "nope"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 1
    assert "unknown target 'nope'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_compile_then_run_a_folder(target, target_args, tmp_path) -> None:
    from tinyformer.engine import ir
    from tinyformer.engine.demo import demo_graph

    board = target.board
    ir.save(demo_graph(5, 12, 64, 32), tmp_path / "m.tfir")
    base = [sys.executable, "-m", "tinyformer.cli"]
    proc = subprocess.run(
        [*base, "compile", "m.tfir", "-o", "out", "--board", board, "--json", "--library"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["arena_bytes"] > 12 * 64 and report["flash_bytes"] > 64 * 32
    assert (tmp_path / "out" / "plan.png").is_file()
    # tests/test_library.py builds and runs such a library
    assert report["library"] == "out/library"
    assert (tmp_path / "out" / "library" / "model.c").is_file()
    proc = subprocess.run(
        [*base, "run", "out", *target_args, "--json"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    run = json.loads(proc.stdout)
    assert run["matches_reference"] is True
    predicted, measured = report["predicted_peak_sram_bytes"], run["peak_sram_bytes"]
    if "TINYFORMER_FAKE_PROBE" not in os.environ:  # the fake board's stack is an x86 stack
        assert abs(predicted - measured) <= 0.02 * measured


def test_compile_rejects_a_corrupt_model(tmp_path) -> None:
    (tmp_path / "bad.tfir").write_bytes(b"TFIR\x01\x00\x00\x00garbage")
    proc = subprocess.run(
        [sys.executable, "-m", "tinyformer.cli", "compile", "bad.tfir", "-o", "out"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "truncated" in proc.stderr and "Traceback" not in proc.stderr


def test_run_layers_profiles_every_layer(target, target_args, tmp_path) -> None:
    """`run --layers`: one row per layer, in graph order, that adds up to the run."""
    import dataclasses

    from tinyformer.engine import ir
    from tinyformer.engine.builder import random_hybrid_graph
    from tinyformer.engine.sparse_format import prune_blocks
    from tinyformer.engine.storage import encode_weights
    from tinyformer.engine.work import graph_macs
    from tinyformer.perf.latency import SampleStore, samples_of

    board = target.board
    graph = random_hybrid_graph(seed=0)
    for node in graph.nodes:  # the linears 90 % block-sparse, the convs dense
        if node.op == "linear":
            w = graph.tensors[node.inputs[1]]
            graph.tensors[w.name] = dataclasses.replace(w, data=prune_blocks(w.data, 4, 0.9))
    ir.save(encode_weights(graph), tmp_path / "m.tfir")
    base = [sys.executable, "-m", "tinyformer.cli"]
    proc = subprocess.run(
        [*base, "compile", "m.tfir", "-o", "out", "--board", board],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    proc = subprocess.run(
        [*base, "run", "out", *target_args, "--json", "--layers"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    run = json.loads(proc.stdout)
    layers = run["per_layer"]
    compiled = ir.load(tmp_path / "out" / "model.tfir")
    assert [row["op"] for row in layers] == [node.op for node in compiled.nodes]
    assert [row["count"] for row in layers] == run["layer_counts"]
    assert sum(row["macs"] for row in layers) == graph_macs(compiled) == run["macs"]
    assert abs(sum(row["share"] for row in layers) - 1) < 0.01
    weights = {row["weights"] for row in layers if row["op"] in ("linear", "conv2d")}
    assert "dense" in weights and "B4 90%" in weights
    proc = subprocess.run(
        [*base, "run", "out", *target_args, "--layers"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "per layer" in proc.stdout and "layernorm" in proc.stdout
    # No samples in this results folder: QEMU's predictions come from the fit shipped with
    # the package, a board's cycles from it through the cycle model, Renode's from nowhere
    # yet, and each says so. Once this run's counts are samples, the latency model answers
    # each layer from them (the median of layers that do the same work: same op kind and
    # features).
    source = {"qemu": "shipped fit", "board": "cycles estimated from QEMU instructions"}
    if target.name in source:
        assert None not in {row["predicted"] for row in layers}
        assert run["predicted_from"].startswith(source[target.name])
    else:
        assert {row["predicted"] for row in layers} == {None}
        assert run["predicted_from"].startswith("no prediction")
    unit = "instructions" if "instructions" in run else "cycles"  # the summary's count key
    SampleStore(tmp_path / "results").add(
        samples_of(compiled, run["layer_counts"], target.name, unit)
    )
    proc = subprocess.run(
        [*base, "run", "out", *target_args, "--json", "--layers"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    again = json.loads(proc.stdout)["per_layer"]
    predicted = [row["predicted"] for row in again]
    assert None not in predicted
    assert abs(sum(predicted) - run[unit]) <= 0.02 * run[unit]
    # and in ms at 216 MHz, beside the measured ms
    assert all(row["predicted_ms"] > 0 and row["ms"] > 0 for row in again)


def _compile_and_evaluate(base: list[str], model: str, target, target_args, cwd: Path) -> dict:
    """`compile` ``model`` for the target's board, then `evaluate` it on the folder imgs/:
    the JSON it prints."""
    proc = subprocess.run([*base, "compile", model, "-o", "fw", "--board", target.board],
                          capture_output=True, text=True, timeout=120, cwd=cwd)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    proc = subprocess.run(
        [*base, "evaluate", "fw", *target_args, "--dataset", "folder", "--root", "imgs", "--json"],
        capture_output=True, text=True, timeout=300, cwd=cwd,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_own_images_train_compile_evaluate_search(target, target_args, tmp_path) -> None:
    """A user's image folder (10x12 grey images, not square) end to end: `train` needs
    --image-size, then `evaluate` converts the test images to the model's input by itself;
    `export` calibrates on them and `search` fits its space to them."""
    import numpy as np

    rng = np.random.default_rng(0)
    for c, name in enumerate(("dark", "light")):
        (tmp_path / "imgs" / name).mkdir(parents=True)
        for i in range(20):
            np.save(tmp_path / "imgs" / name / f"{i}.npy",
                    rng.integers(0, 80, (10, 12), dtype=np.uint8) + 170 * c)  # fmt: skip
    base = [sys.executable, "-m", "tinyformer.cli"]
    epochs = ["--epochs", "1", "--prune-epochs", "1", "--finetune-epochs", "1", "--qat-epochs", "1"]
    train = [*base, "train", "--dataset", "folder", "--root", "imgs", "-o", "m", "--no-progress",
             *epochs]  # fmt: skip
    proc = subprocess.run(train, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 1 and "--image-size" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = subprocess.run([*train, "--image-size", "8"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    acc = _compile_and_evaluate(base, "m/model.tfir", target, target_args, tmp_path)
    assert acc["images"] == 8  # the folder's seeded 20 % test split of 40 images
    assert acc["agreement"] == 1.0 and acc["bit_exact"] == 1.0
    # post-training calibration of the float subnet reads the folder at the subnet's size
    proc = subprocess.run(
        [*base, "export", "m/subnet.pt", "-o", "ptq.tfir", "--dataset", "folder", "--root", "imgs"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    # the search on them: SuperNAS fits the space to the folder's 8x8x1 images and 2 classes
    search = [*base, "search", "--dataset", "folder", "--root", "imgs", "--image-size", "8",
              "--supernet-epochs", "1", "--population", "4", "--generations", "1", "--top-k", "1",
              "-o", "s", *target_args]  # fmt: skip
    proc = subprocess.run(search, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    space = json.loads((tmp_path / "s" / "supernas.json").read_text())["space"]
    assert (space["image_size"], space["in_channels"], space["num_classes"]) == (8, 1, 2)
    assert (tmp_path / "s" / "search" / "chosen" / "model.tfir").is_file()


def test_evaluate_on_the_target(target, target_args, tmp_path) -> None:
    """`evaluate` runs every test image of a folder on the target given (a board too) and
    agrees with the host reference image for image."""
    if target.name == "qemu":
        pytest.skip("evaluate on QEMU: test_own_images_train_compile_evaluate_search")
    import dataclasses

    import numpy as np

    from tinyformer.engine import ir
    from tinyformer.model import SupernetSpace
    from tinyformer.nas.candidate import config_graph

    config = dataclasses.replace(SupernetSpace.for_dataset("digits").smallest(), num_classes=2)
    ir.save(config_graph(config), tmp_path / "m.tfir")
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (tmp_path / "imgs" / name).mkdir(parents=True)
        for i in range(10):
            np.save(tmp_path / "imgs" / name / f"{i}.npy", rng.integers(0, 255, (8, 8), np.uint8))
    base = [sys.executable, "-m", "tinyformer.cli"]
    acc = _compile_and_evaluate(base, "m.tfir", target, target_args, tmp_path)
    assert acc["images"] == 4  # the folder's seeded 20 % test split of 20 images
    assert acc["agreement"] == 1.0 and acc["bit_exact"] == 1.0
