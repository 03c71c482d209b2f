"""Train -> prune gradually -> QAT -> export: one block-sparse int8 model from a data set.

``run_pipeline(out_dir, PipelineConfig(...))`` does, on CPU (or CUDA when available):

1. **float training** of the subnet (the data set's largest by default) from scratch, or from
   a supernet checkpoint's inherited weights (``supernet=``), AdamW + warmup-cosine, label
   smoothing and the data set's augmentation;
2. **gradual block pruning** to the sparsity plan (uniform ``sparsity`` / ``block`` over the
   pointwise convs, patch embeddings and linears unless a plan is given): Zhu & Gupta's cubic
   schedule over ``prune_epochs`` with fine-tuning, then ``finetune_epochs`` at the final
   sparsity; masks keep pruned blocks at exactly zero;
3. **QAT**: BatchNorm folded, every quantization point of the integer graph simulated
   (:mod:`tinyformer.quant.qmodules`), ranges calibrated on training batches, observed by EMA
   during the first ``observe_epochs`` QAT epochs and frozen for the rest;
4. **export** to the IR file and evaluation of the file with the numpy reference interpreter.

Every training phase runs the one loop, :func:`tinyformer.model.fit.fit`, with its hooks;
this module only orchestrates. Files written to ``out_dir``: ``subnet.pt`` (the pruned float
subnet, ``model.save_subnet`` format), ``plan.json``, ``config.json``, ``qat.pt``
(:mod:`tinyformer.quant.checkpoint`), ``model.tfir``, ``metrics.json`` (accuracies,
agreement (:mod:`tinyformer.quant.evaluate`), sparsity, sizes, timings) and ``history.csv``.
While it runs, ``train_state.pt`` holds the state after the last completed epoch, so an
interrupted run resumes (:mod:`tinyformer.quant.train_state`); a finished run removes it. On
CUDA the float and pruning phases run in mixed precision (:mod:`tinyformer.model.device`).

:func:`train_digits_model` is the embedded default (digits, block 4, 75 % sparsity):
under a minute on two CPU cores (measured: 99.2 % float, 98.9 % int8 test accuracy at
74 % overall weight sparsity; 99.4 % / 99.4 % with one thread).
"""

from __future__ import annotations

import copy
import csv
import io
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from tinyformer.atomic_write import write_atomic_text
from tinyformer.data import (
    DatasetSplits,
    default_augment,
    load_dataset,
    load_dataset_for_input,
)
from tinyformer.data.datasets import ImageDataset, num_batches
from tinyformer.engine import ir
from tinyformer.engine.ir import Graph
from tinyformer.model.checkpoint import load_supernet
from tinyformer.model.config import SubnetConfig, SupernetSpace
from tinyformer.model.device import Precision, configure_threads, resolve_device
from tinyformer.model.fit import Hook, Progress, adamw_warmup_cosine, fit, supervised_step
from tinyformer.model.subnet import Subnet, load_subnet, save_subnet
from tinyformer.model.train import calibrated_subnet, calibration_inputs, evaluate
from tinyformer.prune import (
    GradualPruner,
    GradualSchedule,
    LayerSparsity,
    SparsityPlan,
    apply_masks,
    enforce_masks,
    masks_from_zeros,
    masks_of,
    overall_sparsity,
    sparsity_report,
)
from tinyformer.quant.checkpoint import is_qat_checkpoint, load_qat, save_qat
from tinyformer.quant.evaluate import agreement, weight_bytes
from tinyformer.quant.export import export
from tinyformer.quant.qmodules import QuantSubnet
from tinyformer.quant.train_state import TrainState, rng_state, set_rng_state
from tinyformer.results import percent


@dataclass
class PipelineConfig:
    """Settings of :func:`run_pipeline` (defaults: the embedded digits model)."""

    dataset: str = "digits"
    root: str | None = None  # data folder for cifar10 / folder
    image_size: int | None = None  # folder data: resize to this square size (default: as is)
    channels: int | None = None  # folder data: 1 or 3 (default: 3 if any image has colour)
    config: SubnetConfig | str | None = None  # a config, "largest" (None) or "smallest"
    supernet: str | None = None  # inherit weights from this supernet checkpoint
    plan: SparsityPlan | None = None  # None: uniform(sparsity, block)
    sparsity: float = 0.75
    block: int = 4
    epochs: int = 40  # float training (fine-tuning when inheriting from a supernet)
    prune_epochs: int = 30  # cubic schedule from 0 to the target sparsity
    finetune_epochs: int = 15  # at the final sparsity
    qat_epochs: int = 10
    observe_epochs: int | None = None  # QAT epochs with EMA observers on (default half)
    lr: float = 3e-3
    prune_lr: float = 2e-3
    qat_lr: float = 2e-4
    batch_size: int = 64
    weight_decay: float = 0.05
    label_smoothing: float = 0.1
    distill: bool = True  # the dense float model teaches the pruning and QAT phases
    augment: bool = True
    calib_batches: int = 8
    prune_updates_per_epoch: int = 4
    seed: int = 0
    device: str = "auto"
    amp: bool = True  # mixed precision on CUDA (float and pruning phases; QAT is float32)
    num_threads: int | None = None  # CPU threads (default: tinyformer.model.device)
    progress: bool = False
    encode: bool = True  # store weights dense or block-sparse per the engine's cost model
    name: str | None = None  # graph name (default tinyformer_<dataset>)

    def __post_init__(self) -> None:
        """Refuse settings that cannot run before the first epoch, not after it."""
        for name in ("epochs", "prune_epochs", "finetune_epochs", "qat_epochs"):
            if getattr(self, name) < 0:
                flag = name.replace("_", "-")
                raise ValueError(f"--{flag} must be at least 0, got {getattr(self, name)}")
        if self.plan is None:
            LayerSparsity(self.block, self.sparsity)  # the plan's own checks (PlanError)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        c = self.config
        d["config"] = c.to_dict() if isinstance(c, SubnetConfig) else c
        d["plan"] = None if self.plan is None else self.plan.to_dict()
        return d

    def resume_dict(self) -> dict[str, Any]:
        """The settings a resumed run must share with the interrupted one (not where or how
        visibly it runs: on one device those do not change the math)."""
        runtime = ("device", "amp", "num_threads", "progress")
        return {k: v for k, v in self.to_dict().items() if k not in runtime}


@dataclass
class PipelineResult:
    paths: dict[str, Path]
    metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)


# ----------------------------------------------------------------------------- phases
# Each phase is the one loop (tinyformer.model.fit) with this pipeline's optimizer settings
# and the phase's hooks. A ``_Run`` carries what the phases share and checkpoints it.


class _Run:
    """One run's shared state: the models, the batch generator, history, metrics and the
    checkpoint (``OUT/train_state.pt``) written after every epoch of every phase."""

    def __init__(
        self,
        cfg: PipelineConfig,
        state: TrainState,
        gen: torch.Generator,
        precision: Precision,
        config: SubnetConfig,
        subnet: Subnet,
        metrics: dict[str, Any],
    ) -> None:
        self.cfg, self.state, self.gen, self.precision = cfg, state, gen, precision
        self.config, self.subnet = config, subnet
        self.teacher: nn.Module | None = None
        self.qmodel: QuantSubnet | None = None
        self.pruner: GradualPruner | None = None
        saved = state.saved or {}
        self.history: list[dict[str, Any]] = list(saved.get("history", []))
        self.metrics: dict[str, Any] = dict(saved.get("metrics", metrics))
        self.timings: dict[str, float] = dict(saved.get("timings", {}))

    def save(
        self,
        phase: str,
        epoch: int,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
    ) -> None:
        self.state.save(phase, epoch, {
            "config": self.config.to_dict(),
            "subnet": self.subnet.state_dict(),
            "subnet_masks": masks_of(self.subnet),
            "teacher": None if self.teacher is None else self.teacher.state_dict(),
            "qat": None if self.qmodel is None else self.qmodel.state_dict(),
            "qat_masks": {} if self.qmodel is None else masks_of(self.qmodel),
            "pruner_fraction": None if self.pruner is None else self.pruner.fraction,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": self.precision.state_dict(),
            "rng": rng_state(self.gen),
            "history": self.history,
            "metrics": self.metrics,
            "timings": self.timings,
        })  # fmt: skip


class _EnforceMasks(Hook):
    """Pruned blocks stay exactly zero: AdamW's decay and momentum would move them."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def after_step(self, step: int) -> None:
        enforce_masks(self.model)


class _PruneOnSchedule(Hook):
    def __init__(self, pruner: GradualPruner) -> None:
        self.pruner = pruner

    def before_step(self, step: int) -> None:
        self.pruner.step(step)


class _FreezeObservers(Hook):
    """QAT: EMA observers follow the ranges for ``observe`` epochs, then they are frozen."""

    def __init__(self, model: QuantSubnet, observe: int) -> None:
        self.model, self.observe = model, observe

    def end_epoch(self, epoch: int, row: dict[str, Any]) -> None:
        if epoch + 1 >= self.observe:
            self.model.freeze()


class _Validate(Hook):
    def __init__(self, model: nn.Module, val: ImageDataset) -> None:
        self.model, self.val = model, val

    def end_epoch(self, epoch: int, row: dict[str, Any]) -> None:
        row["val_acc"] = evaluate(self.model, self.val)
        row["sparsity"] = overall_sparsity(self.model)["sparsity"]


class _Checkpoint(Hook):
    """The epoch's row joins the run's history, then the whole run is saved."""

    def __init__(
        self,
        run: _Run,
        phase: str,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
    ) -> None:
        self.run, self.phase, self.optimizer, self.scheduler = run, phase, optimizer, scheduler

    def after_epoch(self, epoch: int, row: dict[str, Any]) -> None:
        self.run.history.append({"phase": self.phase, **row})
        self.run.save(self.phase, epoch + 1, self.optimizer, self.scheduler)


def train_phase(
    run: _Run,
    model: nn.Module,
    data: DatasetSplits,
    epochs: int,
    lr: float,
    phase: str,
    hooks: Sequence[Hook] = (),
    mixed: bool = True,
) -> None:
    """``epochs`` of AdamW + warmup-cosine on ``data.train``; masks enforced after every step;
    from the checkpoint's epoch when the run stopped inside this phase.

    ``hooks`` run before the pipeline's own (masks, validation, progress, checkpoint). With
    the run's teacher (the dense float model, eval mode) the loss is the mean of the label
    cross-entropy and the cross-entropy to the teacher's soft predictions (distillation).
    ``mixed``: the run's mixed precision (CUDA) applies. Each epoch adds a history row to the
    run (phase, epoch, loss, val accuracy, sparsity, seconds).
    """
    if epochs <= 0:
        return
    cfg = run.cfg
    steps = num_batches(len(data.train), cfg.batch_size, drop_last=True)
    optimizer, scheduler = adamw_warmup_cosine(
        model, lr, cfg.weight_decay, epochs * steps, min(steps, epochs * steps // 10), 0.01
    )
    precision = run.precision if mixed else Precision("cpu", enabled=False)
    start = 0
    saved = run.state.resumes(phase)
    if saved is not None:
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        precision.load_state_dict(saved["scaler"])
        set_rng_state(saved["rng"], run.gen)
        start = saved["epoch"]
    own: list[Hook] = [_EnforceMasks(model), _Validate(model, data.val)]
    if cfg.progress:
        own.append(Progress(lambda row: (
            f"{phase} epoch {row['epoch']}: loss {row['loss']:.4f}, val acc "
            f"{percent(row['val_acc'])}, sparsity {row['sparsity']:.3f} ({row['seconds']:.1f} s)"
        )))  # fmt: skip
    own.append(_Checkpoint(run, phase, optimizer, scheduler))
    fit(
        model, data.train, epochs, optimizer, scheduler,
        supervised_step(model, cfg.label_smoothing, run.teacher, precision), run.gen,
        batch_size=cfg.batch_size,
        augment=default_augment(data.name, data.image_size) if cfg.augment else None,
        grad_clip=5.0, hooks=[*hooks, *own], start_epoch=start, desc=phase,
        progress=cfg.progress, precision=precision,
    )  # fmt: skip


def prune_gradually(run: _Run, data: DatasetSplits, plan: SparsityPlan) -> None:
    """Cubic schedule over ``prune_epochs``, then ``finetune_epochs`` at the final sparsity."""
    cfg = run.cfg
    steps = num_batches(len(data.train), cfg.batch_size, drop_last=True)
    total = (cfg.prune_epochs + cfg.finetune_epochs) * steps
    end = cfg.prune_epochs * steps
    every = max(1, steps // max(1, cfg.prune_updates_per_epoch))
    pruner = run.pruner = GradualPruner(run.subnet, plan, GradualSchedule(0, end, every))
    saved = run.state.resumes("prune")
    if saved is not None:  # the masks are the subnet's, restored with it
        pruner.fraction = saved["pruner_fraction"]
    if total == 0:
        pruner.finish()
        return
    epochs = cfg.prune_epochs + cfg.finetune_epochs
    train_phase(run, run.subnet, data, epochs, cfg.prune_lr, "prune", [_PruneOnSchedule(pruner)])
    if pruner.fraction < 1.0:
        pruner.finish()


@torch.no_grad()
def calibrate(model: QuantSubnet, split: ImageDataset, batches: int, batch_size: int) -> None:
    """Observe every activation range on ``batches`` un-augmented batches of ``split``."""
    device = next(model.parameters()).device
    model.set_observing(True)
    model.train()
    for x in calibration_inputs(split, batch_size, batches, device):
        model(x)
    model.eval()


def quantization_aware_training(run: _Run, data: DatasetSplits, plan: SparsityPlan) -> QuantSubnet:
    """QAT in float32: fake quantization's rounding is the integer graph's only in float32."""
    cfg = run.cfg
    model = run.qmodel = QuantSubnet.from_subnet(run.subnet.eval(), plan)
    observe = cfg.qat_epochs // 2 if cfg.observe_epochs is None else cfg.observe_epochs
    saved = run.state.resumes("qat")
    if saved is None:
        calibrate(model, data.train, cfg.calib_batches, cfg.batch_size)
        if observe <= 0:
            model.freeze()
    else:  # observed ranges and masks as the interrupted run left them
        model.load_state_dict(saved["qat"])
        apply_masks(model, saved["qat_masks"])
        model.set_observing(saved["epoch"] < observe)
    train_phase(
        run, model, data, cfg.qat_epochs, cfg.qat_lr, "qat", [_FreezeObservers(model, observe)],
        mixed=False,
    )  # fmt: skip
    model.freeze()
    return model.eval()


# ----------------------------------------------------------------------------- the pipeline


def resolve_config(
    spec: SubnetConfig | str | None, data: DatasetSplits, space: SupernetSpace | None = None
) -> SubnetConfig:
    """A config, or "largest" / "smallest" (None: largest) of ``space`` (default: the data
    set's default space, sized to the data)."""
    if isinstance(spec, SubnetConfig):
        return spec
    if space is None:
        space = SupernetSpace.for_dataset(
            data.name, data.image_size, data.in_channels, data.num_classes
        )
    if spec in (None, "largest"):
        return space.largest()
    if spec == "smallest":
        return space.smallest()
    raise ValueError(f"unknown config {spec!r}: give a SubnetConfig, 'largest' or 'smallest'")


def _write_history(rows: list[dict[str, Any]], path: Path) -> None:
    keys = ["phase", "epoch", "loss", "val_acc", "sparsity", "seconds"]
    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k) for k in keys})
    write_atomic_text(buf.getvalue(), path)


def _start(
    cfg: PipelineConfig, data: DatasetSplits, state: TrainState, device: torch.device
) -> tuple[SubnetConfig, Subnet, dict[str, Any]]:
    """The float model to train: the saved one (resumed), a supernet's subnet, or a new one."""
    metrics: dict[str, Any] = {"dataset": data.name, "settings": cfg.to_dict()}
    saved = state.saved
    if saved is not None:
        config = SubnetConfig.from_dict(saved["config"])
        subnet = Subnet.from_config(config).to(device)
        subnet.load_state_dict(saved["subnet"])
        apply_masks(subnet, saved["subnet_masks"])
    elif cfg.supernet is not None:
        supernet = load_supernet(cfg.supernet, device)
        config = resolve_config(cfg.config, data, supernet.space)
        supernet.space.validate(config)
        subnet = calibrated_subnet(supernet, config, data)
        metrics["inherited_test_acc"] = evaluate(subnet, data.test)
    else:
        config = resolve_config(cfg.config, data)
        subnet = Subnet.from_config(config).to(device)
    return config, subnet, metrics


def run_pipeline(
    out_dir: str | Path, cfg: PipelineConfig | None = None, resume: bool = False
) -> PipelineResult:
    """Train, prune, QAT and export one model (module docstring); returns paths and metrics.

    After every epoch the run is saved to ``OUT/train_state.pt``; ``resume`` continues an
    interrupted run from there (same settings required; :mod:`tinyformer.quant.train_state`).
    """
    cfg = cfg or PipelineConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    device = resolve_device(cfg.device)
    if device.type == "cpu":
        configure_threads(cfg.num_threads)
    state = TrainState(out, cfg.resume_dict(), resume)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    data = load_dataset(cfg.dataset, cfg.root, cfg.image_size, cfg.channels)
    config, subnet, metrics = _start(cfg, data, state, device)
    run = _Run(cfg, state, gen, Precision.for_device(device, cfg.amp), config, subnet, metrics)
    metrics, timings = run.metrics, run.timings
    if state.saved is not None:
        metrics["resumed_after"] = state.where
        if cfg.progress:
            tqdm.write(f"resuming {out} after {state.where}")

    # 1. float model
    if not state.reached("prune"):
        t0 = time.perf_counter()
        train_phase(run, subnet, data, cfg.epochs, cfg.lr, "float")
        metrics["float_val_acc"] = evaluate(subnet, data.val)
        metrics["float_test_acc"] = evaluate(subnet, data.test)
        timings["float"] = time.perf_counter() - t0
    if cfg.distill:  # the dense float model teaches pruning and QAT
        if state.saved is not None and state.reached("prune"):
            run.teacher = Subnet.from_config(config).to(device)
            run.teacher.load_state_dict(state.saved["teacher"])
        else:
            run.teacher = copy.deepcopy(subnet)
        run.teacher.eval()

    # 2. gradual block pruning with fine-tuning
    plan = cfg.plan or SparsityPlan.uniform(subnet, cfg.sparsity, cfg.block)
    plan.check(subnet)
    if not state.reached("qat"):
        t0 = time.perf_counter()
        prune_gradually(run, data, plan)
        metrics["pruned_val_acc"] = evaluate(subnet, data.val)
        metrics["pruned_test_acc"] = evaluate(subnet, data.test)
        metrics["sparsity"] = overall_sparsity(subnet)
        metrics["layers"] = sparsity_report(subnet, plan)
        timings["prune"] = time.perf_counter() - t0
    paths = {
        "subnet": out / "subnet.pt",
        "plan": plan.save(out / "plan.json"),
        "config": out / "config.json",
    }
    save_subnet(subnet, paths["subnet"])
    config.save(paths["config"])

    # 3. QAT
    t0 = time.perf_counter()
    qmodel = quantization_aware_training(run, data, plan).cpu()
    metrics["qat_val_acc"] = evaluate(qmodel, data.val)
    metrics["qat_test_acc"] = evaluate(qmodel, data.test)
    with qmodel.simulated():
        metrics["qat_fake_quant_test_acc"] = evaluate(qmodel, data.test)
    timings["qat"] = time.perf_counter() - t0

    # 4. export and reference evaluation
    t0 = time.perf_counter()
    accuracy = {k: metrics[k] for k in ("float_test_acc", "pruned_test_acc", "qat_test_acc")}
    name = cfg.name or f"tinyformer_{data.name}"
    graph_meta = {"dataset": data.name, "classes": list(data.classes), "accuracy": accuracy}
    paths["qat"] = save_qat(qmodel, out / "qat.pt", {"graph_name": name, "graph_meta": graph_meta})
    paths["model"] = out / "model.tfir"
    export(qmodel, paths["model"], name, graph_meta, encode=cfg.encode)
    graph = ir.load(paths["model"])
    metrics.update(agreement(qmodel, graph, data.test))
    metrics.update(weight_bytes(graph))
    metrics["sparse_layers"] = sorted(
        n.name for n in graph.nodes if n.op in ("conv2d", "linear")
        and graph.tensors[n.inputs[1]].encoding is not None
    )  # fmt: skip
    metrics["parameters"] = sum(p.numel() for p in subnet.parameters())
    metrics["test_images"] = len(data.test)
    timings["export"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_start
    metrics["seconds"] = timings

    paths["metrics"] = out / "metrics.json"
    paths["history"] = out / "history.csv"
    write_atomic_text(json.dumps(metrics, indent=2) + "\n", paths["metrics"])
    _write_history(run.history, paths["history"])
    state.finish()
    return PipelineResult(paths, metrics, run.history)


def train_digits_model(out_dir: str | Path, seed: int = 0, **overrides: Any) -> PipelineResult:
    """The embedded default: the largest digits subnet, B = 4 at 75 % block sparsity, int8.

    ``overrides`` are ``PipelineConfig`` fields (e.g. ``epochs=``, ``sparsity=``).
    """
    return run_pipeline(out_dir, replace(PipelineConfig(dataset="digits", seed=seed), **overrides))


# ----------------------------------------------------------------------------- export


def export_checkpoint(
    checkpoint: str | Path,
    out: str | Path,
    dataset: str = "digits",
    root: str | None = None,
    plan: SparsityPlan | None = None,
    encode: bool = True,
    calib_batches: int = 8,
) -> Graph:
    """Write the IR file of a checkpoint: a QAT checkpoint (``qat.pt``) as it is, or a float
    subnet file (``subnet.pt``) after post-training calibration on ``dataset``'s training
    images (``plan`` then gives the pruning block sizes; pruned zeros are kept as they are).
    """
    checkpoint = Path(checkpoint)
    if not checkpoint.exists():
        raise FileNotFoundError(f"checkpoint {checkpoint} does not exist")
    if is_qat_checkpoint(checkpoint):
        model = load_qat(checkpoint)
        saved = dict(getattr(model, "meta", {}))
        meta = dict(saved.get("graph_meta", {}))
        name = saved.get("graph_name", f"tinyformer_{meta.get('dataset', dataset)}")
    else:
        try:
            subnet = load_subnet(checkpoint)
        except ValueError as exc:
            raise ValueError(
                f"{exc}; export takes a QAT checkpoint (qat.pt) or a subnet file (subnet.pt)"
            ) from None
        if plan is None:
            sibling = checkpoint.with_name("plan.json")
            plan = SparsityPlan.load(sibling) if sibling.exists() else SparsityPlan()
        masks_from_zeros(subnet, plan)
        data = load_dataset_for_input(
            dataset, root, subnet.config.image_size, subnet.config.in_channels
        )
        model = QuantSubnet.from_subnet(subnet, plan)
        calibrate(model, data.train, calib_batches, 64)
        model.freeze()
        meta = {"dataset": data.name, "classes": list(data.classes), "calibration": "post-training"}
        name = f"tinyformer_{data.name}"
    return export(model, out, name, meta, encode=encode)
