"""SparseNAS genomes, candidate graphs and SuperNAS space scoring (host only)."""

from __future__ import annotations

import json

import numpy as np

from tinyformer.engine.work import graph_macs
from tinyformer.model import SupernetSpace
from tinyformer.nas.candidate import config_graph, prunable_layers
from tinyformer.nas.genome import Candidate, crossover, mutate, random_candidate
from tinyformer.nas.supernas import candidate_spaces, choose_space

SPACE = SupernetSpace.for_dataset("digits")


def test_genomes_stay_in_the_space_and_cover_their_layers() -> None:
    rng = np.random.default_rng(0)
    a, b = random_candidate(SPACE, rng), random_candidate(SPACE, rng)
    for c in (a, b, mutate(a, SPACE, rng, 0.5), crossover(a, b, rng)):
        assert SPACE.contains(c.config)
        planned = {layer for layer, _, _ in c.plan}
        assert planned == set(prunable_layers(c.config)) - {"stem.conv", "classifier"}
        assert Candidate.from_dict(json.loads(json.dumps(c.to_dict()))).key == c.key


def test_candidate_graph_follows_the_plan() -> None:
    config = SPACE.largest()
    layers = prunable_layers(config)
    plan = {name: (4, 0.9) for name in layers if "mlp" in name}
    graph = config_graph(config, plan)
    nodes = {n.name: n for n in graph.nodes}
    for name, (rows, cols) in layers.items():
        w = graph.tensors[nodes[name].inputs[1]]
        assert (w.shape[0], int(np.prod(w.shape[1:]))) == (rows, cols)
    sparse = {
        n.name
        for n in graph.nodes
        if n.op in ("linear", "conv2d") and graph.tensors[n.inputs[1]].encoding == "block-rle"
    }
    assert sparse == set(plan)
    assert graph_macs(graph) > 0


def test_budget_estimate_bounds_the_linked_firmware(tmp_path) -> None:
    """SuperNAS's flash estimate (emitted constants + a firmware allowance) is an upper
    bound of the linked firmware, and not a loose one; its SRAM covers the arena."""
    from tinyformer.compiler.driver import compile_model
    from tinyformer.engine import ir
    from tinyformer.nas.supernas import estimate_budget

    config = SPACE.largest()
    plan = {name: (4, 0.75) for name in prunable_layers(config)}
    graph = config_graph(config, plan)
    flash, sram = estimate_budget(graph)
    report = compile_model(ir.save(graph, tmp_path / "m.tfir"), tmp_path / "out")
    assert report.flash_bytes <= flash <= 1.25 * report.flash_bytes
    assert report.arena_bytes < sram


def test_supernas_writes_its_choice_and_reason(tmp_path) -> None:
    assert len(candidate_spaces(SPACE)) == 8
    chosen, scores = choose_space(SPACE, tmp_path, samples=2, seed=0)
    report = json.loads((tmp_path / "supernas.json").read_text())
    assert report["chosen"] == chosen.name and "MCUNet" in report["reason"]
    assert max(s.score for s in scores) == next(s for s in scores if s.space == chosen.name).score


def test_fitness_recalibrates_the_pruned_subnet_and_leaves_the_supernet_alone() -> None:
    import torch

    from tinyformer.data import load_dataset
    from tinyformer.model import Supernet
    from tinyformer.model.layers import batchnorm_recalibration
    from tinyformer.nas.fitness import SupernetFitness
    from tinyformer.nas.genome import random_candidate

    torch.manual_seed(0)
    space = SupernetSpace.for_dataset("digits")
    net = Supernet(space)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    cand = random_candidate(space, np.random.default_rng(1))
    fitness = SupernetFitness(net, load_dataset("digits"), calib_batches=2)
    score = fitness(cand)
    assert 0.0 <= score <= 1.0 and fitness(cand) == score  # deterministic
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    # the recalibration: exact statistics of the pruned subnet's activations
    sub = net.extract(cand.config)
    x = torch.randn(16, 1, 8, 8)
    with torch.no_grad(), batchnorm_recalibration(sub):
        sub(x[:8])
        sub(x[8:])
    assert not sub.training
    with torch.no_grad():
        feat = sub.stem.conv(x)
    torch.testing.assert_close(sub.stem.bn.running_mean, feat.mean(dim=(0, 2, 3)))


def test_the_search_starts_from_the_same_supernet_for_the_same_seed() -> None:
    import torch

    from tinyformer.nas.pipeline import initial_supernet

    a, b, c = (initial_supernet(SPACE, s).state_dict() for s in (0, 0, 1))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_search_cli_errors_are_one_line(tmp_path) -> None:
    """Problems found before any work starts: a clear line and exit code 1, no traceback."""
    from typer.testing import CliRunner

    from tinyformer.cli import app

    runner = CliRunner()
    out = str(tmp_path / "s")
    (tmp_path / "x.tar.gz").write_bytes(b"not a download")
    cases = [
        (["search", "-o", out, "--dataset", "cifar10"], "needs a root folder"),
        (["search", "-o", out, "--dataset", "cifar10", "--root", str(tmp_path / "none")],
         "CIFAR-10 folder not found"),
        (["search", "-o", out, "--resume", "--fresh"], "pick one"),
        (["demo", "-o", out, "--resume", "--fresh"], "pick one"),
        (["demo", "-o", out, "--dataset", "cifar10"], "needs a root folder"),
        (["demo", "-o", out, "--dataset", "folder", "--root", out], "on digits or cifar10"),
        (["demo", "-o", out, "--dataset", "cifar10", "--root", str(tmp_path / "x.tar.gz")],
         "damaged CIFAR-10 archive"),
        (["evaluate", out, "--dataset", "folder"], "not a compiled model"),
        (["search", "-o", out, "--population", "0"], "--population must be at least 2"),
        (["search", "-o", out, "--generations", "-1"], "--generations must be at least 1"),
        (["search", "-o", out, "--max-latency", "-5"], "--max-latency must be positive"),
        (["search", "-o", out, "--dataset", "digits", "--image-size", "16"],
         "apply to image folders only"),
        # board options reach the board target (a lab's second board), and are refused
        # elsewhere: without --target board they would have measured the emulator
        (["bench", "kernels", "--target", "board", "--port", "/dev/tf-no-such-port"],
         "/dev/tf-no-such-port"),
        (["bench", "latency", "--port", "/dev/ttyACM1"], "--port: only with --target board"),
        (["evaluate", out, "--probe", "0669FF"], "--probe: only with --target board"),
        (["search", "-o", out, "--pyocd-target", "stm32f746zg"], "only with --target board"),
        (["demo", "-o", out, "--port", "/dev/ttyACM1"], "only with --target board"),
        (["run", "--pack", "Keil.STM32F7xx_DFP.pack"], "--pack: only with --target board"),
        (["run", "--target", "board", "--pack", str(tmp_path / "no.pack")],
         f"CMSIS pack {tmp_path / 'no.pack'} does not exist"),
        # train: refused before the first epoch, not after it
        (["train", "-o", out, "--sparsity", "1.5"], "sparsity must be in [0, 1]"),
        (["train", "-o", out, "--block", "3"], "block size must be one of"),
        (["train", "-o", out, "--qat-epochs", "-1"], "--qat-epochs must be at least 0"),
        (["train", "-o", out, "--dataset", "folder", "--root", str(tmp_path), "--image-size", "0"],
         "image size must be at least 1 pixel"),
    ]  # fmt: skip
    for args, message in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 1, (args, result.output)
        assert message in " ".join(result.output.split()) and "Traceback" not in result.output
    (tmp_path / "s" / "search").mkdir(parents=True)
    (tmp_path / "s" / "search" / "search_state.json").write_text("{}")
    result = runner.invoke(app, ["search", "-o", out])
    assert result.exit_code == 1 and "--resume" in result.output


def test_evolution_repeats_across_processes() -> None:
    """Same seed, same children, whatever each process's string hashing (PYTHONHASHSEED)."""
    import os
    import subprocess
    import sys

    code = (
        "import numpy as np\n"
        "from tinyformer.model import SupernetSpace\n"
        "from tinyformer.nas.genome import crossover, mutate, random_candidate\n"
        "space = SupernetSpace.for_dataset('digits')\n"
        "rng = np.random.default_rng(0)\n"
        "a, b = random_candidate(space, rng), random_candidate(space, rng)\n"
        "print([mutate(crossover(a, b, rng), space, rng).key for _ in range(20)])\n"
    )
    keys = {
        subprocess.run(
            [sys.executable, "-c", code],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert len(keys) == 1
