"""The whole job: SuperNAS -> supernet training -> SparseNAS -> prune + QAT -> firmware -> target.

``search`` stops after SparseNAS (its output folder holds the Pareto front and the chosen
candidate); ``demo`` runs everything and evaluates the deployed model on every test image
on the target, writing the figures to ``results/``.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

from tinyformer.atomic_write import write_atomic_text
from tinyformer.cluster.evaluate import evaluate_sharded
from tinyformer.cluster.pool import FirmwarePackage
from tinyformer.compiler.driver import compile_model, firmware_in
from tinyformer.data import load_dataset
from tinyformer.hil.targets.base import Target
from tinyformer.model import Supernet, SupernetSpace, TrainConfig, train_supernet
from tinyformer.model.device import resolve_device
from tinyformer.nas.fitness import SupernetFitness
from tinyformer.nas.genome import Candidate
from tinyformer.nas.options import SearchOptions
from tinyformer.nas.search import (
    LATENCY_CHECK,
    SEARCH_STATE,
    SearchSettings,
    SearchStateError,
    SparseNAS,
)
from tinyformer.nas.supernas import choose_space
from tinyformer.perf.latency import SampleStore
from tinyformer.perf.milliseconds import CycleModel, inference_ms
from tinyformer.results import append_rows, now_iso, percent, write_atomic

# what search and demo write to their output folder
PRODUCTS = ("supernas.json", "supernet.pt", "search", "model", "firmware", "summary.json")


def initial_supernet(space: SupernetSpace, seed: int) -> Supernet:
    """The untrained supernet, its weights drawn from ``seed``: same seed, same search."""
    torch.manual_seed(seed)
    return Supernet(space)


def search(
    opts: SearchOptions,
    target: Target,
    out: Path,
    results: Path,
    resume: bool = False,
    log: Callable[[str], None] = tqdm.write,
    fresh: bool = False,
) -> tuple[Candidate, Path]:
    """SuperNAS, supernet training (checkpointed, resumable) and SparseNAS; the winner.

    ``fresh`` first removes what an earlier run wrote to ``out`` (only those files).
    """
    out = Path(out)
    if resume and fresh:
        raise ValueError("--resume continues the run in OUT, --fresh replaces it: pick one")
    resolve_device(opts.device)  # an unusable --device before anything runs
    if fresh:
        for name in PRODUCTS:
            path = out / name
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
    state = out / "search" / SEARCH_STATE
    if state.exists() and not resume:  # before hours of training, not after
        raise SearchStateError(f"{state} exists: pass --resume or another folder")
    data = load_dataset(opts.dataset, opts.root, opts.image_size, opts.channels)
    out.mkdir(parents=True, exist_ok=True)
    space_file = out / "supernas.json"
    if resume and space_file.exists():
        space = SupernetSpace.from_dict(json.loads(space_file.read_text())["space"])
    else:
        latency = SampleStore(results).model(target.name, "instructions")
        space, _ = choose_space(
            # an image folder's size, channels and classes (digits' and CIFAR's as defaults)
            SupernetSpace.for_dataset(
                data.name, data.image_size, data.in_channels, data.num_classes
            ),
            out,
            opts.space_samples,
            opts.seed,
            opts.max_latency,
            latency,
        )
    log(f"SuperNAS chose {space.name} ({space.num_subnets():,} subnets); see {space_file}")
    ckpt = out / "supernet.pt"
    start = time.perf_counter()
    cfg = TrainConfig(
        epochs=opts.supernet_epochs, seed=opts.seed, device=opts.device, amp=opts.amp,
        num_threads=opts.threads, progress=opts.progress,
    )  # fmt: skip
    log(f"training the supernet ({opts.supernet_epochs} epochs)")
    initial = initial_supernet(space, opts.seed)
    supernet = train_supernet(initial, data, cfg, checkpoint=ckpt, resume=True).supernet
    log(f"supernet trained ({opts.supernet_epochs} epochs) in {time.perf_counter() - start:.0f} s")
    settings = SearchSettings(
        space=space.to_dict(),
        population=opts.population,
        generations=opts.generations,
        top_k=opts.top_k,
        seed=opts.seed,
        max_latency=opts.max_latency,
        target=target.name,
        board=target.board,
    )
    nas = SparseNAS(
        settings,
        SupernetFitness(supernet, data),
        target,
        out / "search",
        results,
        log,
        opts.progress,
    )
    best = nas.best(nas.run(resume=resume))
    check = out / "search" / LATENCY_CHECK
    if check.exists():  # each search's held-out latency check accumulates in the results
        table = pd.read_csv(check).assign(search=str(out), time=now_iso())
        # a search run again (resumed) replaces its rows
        rows = table.to_dict("records")
        append_rows(rows, Path(results) / "latency_search.csv", list(table.columns), ["search"])
    log(
        f"SparseNAS chose {best.key}: val acc {percent(best.accuracy)} (pruned, inherited), "
        f"{best.measured:,.0f} {nas.unit} ({nas.latency_ms(best):.3f} ms at 216 MHz), "
        f"{best.peak_sram_bytes:,} B SRAM"
    )
    return Candidate.from_dict(best.candidate), ckpt


def demo(
    opts: SearchOptions,
    target: Target,
    out: Path,
    results: Path,
    resume: bool = False,
    log: Callable[[str], None] = tqdm.write,
    fresh: bool = False,
) -> dict:
    """Search, then fine-tune the winner with pruning + QAT, deploy it, evaluate on target."""
    from tinyformer.quant.evaluate import model_input
    from tinyformer.quant.pipeline import PipelineConfig, run_pipeline
    from tinyformer.quant.train_state import TRAIN_STATE

    t0 = time.perf_counter()
    cand, ckpt = search(opts, target, out, results, resume, log, fresh)
    plan = cand.sparsity_plan()
    trained = run_pipeline(
        out / "model",
        PipelineConfig(
            dataset=opts.dataset,
            root=opts.root,
            image_size=opts.image_size,
            channels=opts.channels,
            config=cand.config,
            supernet=str(ckpt),
            plan=plan,
            epochs=opts.epochs,
            prune_epochs=opts.prune_epochs,
            finetune_epochs=opts.finetune_epochs,
            qat_epochs=opts.qat_epochs,
            seed=opts.seed,
            device=opts.device,
            amp=opts.amp,
            num_threads=opts.threads,
            progress=opts.progress,
        ),
        resume=resume and (out / "model" / TRAIN_STATE).exists(),
    )
    log(f"pruned + QAT: int8 test accuracy {percent(trained.metrics['qat_test_acc'])}")
    report = compile_model(trained.paths["model"], out / "firmware", target.board)
    _, graph = firmware_in(out / "firmware", target.board)
    data = load_dataset(opts.dataset, opts.root, opts.image_size, opts.channels)
    package = FirmwarePackage.of(out / "firmware")
    images = model_input(data.test.images)
    acc = evaluate_sharded(target, package, images, data.test.labels).accuracy
    unit = "cycles" if target.count_source.endswith("cycles") else "instructions"  # renode too
    cycles = CycleModel.from_results(results)  # ms at 216 MHz: an estimate from instructions
    summary = {
        "model": graph.name,
        "target": target.name,
        "test_images": acc.images,
        "float_test_acc": round(trained.metrics["float_test_acc"], 4),
        "qat_test_acc": round(trained.metrics["qat_test_acc"], 4),
        "target_test_acc": round(acc.accuracy, 4),
        "target_reference_agreement": acc.agreement,
        "bit_exact_fraction": acc.bit_exact,
        "weight_sparsity": round(trained.metrics["sparsity"]["sparsity"], 4),
        "count_per_inference": acc.count_per_inference,
        "count_unit": unit,
        "latency_ms": round(inference_ms(graph, acc.count_per_inference, unit, cycles).ms, 3),
        "flash_bytes": report.flash_bytes,
        "peak_sram_bytes": report.static_ram_bytes + acc.stack_bytes,
        "predicted_peak_sram_bytes": report.predicted_peak_sram_bytes,
        "arena_bytes": report.arena_bytes,
        "minutes": round((time.perf_counter() - t0) / 60, 2),
        "config": cand.config.to_json(indent=None),
        "time": now_iso(),
    }
    write_atomic_text(json.dumps(summary, indent=2), out / "summary.json")
    table = pd.DataFrame([summary])
    path = Path(results) / f"{opts.dataset}_model.csv"
    if path.exists():
        table = pd.concat([pd.read_csv(path), table], ignore_index=True)
    write_atomic(table, path)
    return summary
