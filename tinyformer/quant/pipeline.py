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

Files written to ``out_dir``: ``subnet.pt`` (the pruned float subnet, ``model.save_subnet``
format), ``plan.json``, ``config.json``, ``qat.pt`` (:func:`save_qat`), ``model.tfir``,
``metrics.json`` (accuracies, agreement, sparsity, sizes, timings) and ``history.csv``.

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
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from tinyformer.atomic_write import write_atomic_text
from tinyformer.data import (
    DatasetSplits,
    default_augment,
    iterate_batches,
    load_dataset,
    load_dataset_for_input,
)
from tinyformer.data.datasets import ImageDataset, num_batches
from tinyformer.engine import ir
from tinyformer.engine.ir import Graph
from tinyformer.engine.reference import outputs as reference_outputs
from tinyformer.model import torch_file
from tinyformer.model.checkpoint import load_supernet
from tinyformer.model.config import SubnetConfig, SupernetSpace
from tinyformer.model.fit import param_groups, soft_cross_entropy, warmup_cosine
from tinyformer.model.subnet import Subnet, load_subnet, save_subnet
from tinyformer.model.train import (
    calibrated_subnet,
    calibration_inputs,
    configure_threads,
    evaluate,
    resolve_device,
)
from tinyformer.prune import (
    GradualPruner,
    GradualSchedule,
    LayerSparsity,
    SparsityPlan,
    apply_masks,
    attach,
    masks_from_zeros,
    masks_of,
    overall_sparsity,
    sparsity_report,
)
from tinyformer.quant.export import export
from tinyformer.quant.qmodules import QuantSubnet

QAT_FORMAT = "tinyformer-qat"
QAT_VERSION = 1


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
    num_threads: int | None = None
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


@dataclass
class PipelineResult:
    paths: dict[str, Path]
    metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)


# ----------------------------------------------------------------------------- training


def train_epochs(
    model: nn.Module,
    data: DatasetSplits,
    epochs: int,
    lr: float,
    cfg: PipelineConfig,
    generator: torch.Generator,
    phase: str,
    pruner: GradualPruner | None = None,
    epoch_end: Callable[[int], None] | None = None,
    teacher: nn.Module | None = None,
) -> list[dict[str, Any]]:
    """``epochs`` of AdamW + warmup-cosine on ``data.train``; masks enforced after every step.

    ``pruner.step(global_step)`` runs before each step; ``epoch_end(epoch)`` after each epoch.
    With a ``teacher`` (the dense float model, eval mode) the loss is the mean of the label
    cross-entropy and the cross-entropy to the teacher's soft predictions (distillation).
    Returns one history row per epoch (phase, epoch, loss, val accuracy, seconds).
    """
    if epochs <= 0:
        return []
    device = next(model.parameters()).device
    images, labels = data.train.tensors(device)
    steps = num_batches(len(data.train), cfg.batch_size, drop_last=True)
    optimizer = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=lr)
    warmup = min(steps, epochs * steps // 10)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_cosine(epochs * steps, warmup, 0.01)
    )
    handle = attach(model, optimizer)
    augment = default_augment(data.name, data.image_size) if cfg.augment else None
    history = []
    step = 0
    try:
        for epoch in range(epochs):
            t0 = time.perf_counter()
            model.train()
            total = 0.0
            batches = iterate_batches(
                images, labels, cfg.batch_size, shuffle=True, generator=generator,
                transform=augment, drop_last=True,
            )  # fmt: skip
            bar = tqdm(batches, total=steps, desc=f"{phase} {epoch + 1}/{epochs}",
                       disable=not cfg.progress, leave=False)  # fmt: skip
            for x, y in bar:
                if pruner is not None:
                    pruner.step(step)
                optimizer.zero_grad(set_to_none=True)
                logits = model(x)
                loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
                if teacher is not None:
                    with torch.no_grad():
                        target = teacher(x).softmax(dim=-1)
                    loss = 0.5 * loss + 0.5 * soft_cross_entropy(logits, target)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"{phase}: training loss is {loss.item()}")
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), 5.0)
                optimizer.step()
                scheduler.step()
                total += loss.item()
                step += 1
            if epoch_end is not None:
                epoch_end(epoch)
            row = {
                "phase": phase,
                "epoch": epoch + 1,
                "loss": total / steps,
                "val_acc": evaluate(model, data.val),
                "sparsity": overall_sparsity(model)["sparsity"],
                "seconds": time.perf_counter() - t0,
            }
            history.append(row)
            if cfg.progress:
                tqdm.write(
                    f"{phase} epoch {row['epoch']}: loss {row['loss']:.4f}, val acc "
                    f"{row['val_acc']:.4f}, sparsity {row['sparsity']:.3f} ({row['seconds']:.1f} s)"
                )
    finally:
        handle.remove()
    return history


def prune_gradually(
    subnet: Subnet,
    data: DatasetSplits,
    plan: SparsityPlan,
    cfg: PipelineConfig,
    gen: torch.Generator,
    teacher: nn.Module | None = None,
) -> list[dict[str, Any]]:
    """Cubic schedule over ``prune_epochs``, then ``finetune_epochs`` at the final sparsity."""
    steps = num_batches(len(data.train), cfg.batch_size, drop_last=True)
    total = (cfg.prune_epochs + cfg.finetune_epochs) * steps
    end = cfg.prune_epochs * steps
    every = max(1, steps // max(1, cfg.prune_updates_per_epoch))
    pruner = GradualPruner(subnet, plan, GradualSchedule(0, end, every))
    if total == 0:
        pruner.finish()
        return []
    epochs = cfg.prune_epochs + cfg.finetune_epochs
    history = train_epochs(
        subnet, data, epochs, cfg.prune_lr, cfg, gen, "prune", pruner, teacher=teacher
    )
    if pruner.fraction < 1.0:
        pruner.finish()
    return history


@torch.no_grad()
def calibrate(model: QuantSubnet, split: ImageDataset, batches: int, batch_size: int) -> None:
    """Observe every activation range on ``batches`` un-augmented batches of ``split``."""
    device = next(model.parameters()).device
    model.set_observing(True)
    model.train()
    for x in calibration_inputs(split, batch_size, batches, device):
        model(x)
    model.eval()


def quantization_aware_training(
    subnet: Subnet,
    data: DatasetSplits,
    plan: SparsityPlan,
    cfg: PipelineConfig,
    gen: torch.Generator,
    teacher: nn.Module | None = None,
) -> tuple[QuantSubnet, list[dict[str, Any]]]:
    model = QuantSubnet.from_subnet(subnet.eval(), plan)
    calibrate(model, data.train, cfg.calib_batches, cfg.batch_size)
    observe = cfg.qat_epochs // 2 if cfg.observe_epochs is None else cfg.observe_epochs
    if observe <= 0:
        model.freeze()

    def epoch_end(epoch: int) -> None:
        if epoch + 1 >= observe:
            model.freeze()

    history = train_epochs(
        model, data, cfg.qat_epochs, cfg.qat_lr, cfg, gen, "qat", epoch_end=epoch_end,
        teacher=teacher,
    )  # fmt: skip
    model.freeze()
    return model.eval(), history


# ----------------------------------------------------------------------------- checkpoints


def save_qat(model: QuantSubnet, path: str | Path, meta: dict[str, Any] | None = None) -> Path:
    """Config, sparsity plan, weights, observed ranges and masks in one torch file.

    ``meta`` (JSON-able) comes back as ``load_qat(path).meta``; the pipeline stores the graph's
    name and metadata there (``graph_name``, ``graph_meta``) so a re-export is identical."""
    return torch_file.save(
        {
            "format": QAT_FORMAT,
            "version": QAT_VERSION,
            "config": model.config.to_json(),
            "plan": model.plan.to_json(),
            "state_dict": model.state_dict(),
            "masks": masks_of(model),
            "meta": meta or {},
        },
        path,
    )


def is_qat_checkpoint(path: str | Path) -> bool:
    try:
        data = torch_file.load(path)
    except torch_file.TorchFileError:
        return False
    return isinstance(data, dict) and data.get("format") == QAT_FORMAT


def load_qat(path: str | Path, map_location: str | torch.device = "cpu") -> QuantSubnet:
    """A frozen, eval-mode ``QuantSubnet`` from :func:`save_qat`'s file."""
    data = torch_file.load(path, map_location)
    if not isinstance(data, dict) or data.get("format") != QAT_FORMAT:
        raise ValueError(f"{path} is not a TinyFormer QAT checkpoint")
    if data.get("version") != QAT_VERSION:
        raise ValueError(
            f"{path}: QAT checkpoint version {data.get('version')} is not supported "
            f"(expected {QAT_VERSION})"
        )
    config = SubnetConfig.from_json(data["config"])
    plan = SparsityPlan.from_json(data["plan"])
    model = QuantSubnet.from_subnet(Subnet.from_config(config).eval(), plan)
    model.load_state_dict(data["state_dict"])
    apply_masks(model, data["masks"])
    model.freeze()
    model.meta = dict(data.get("meta", {}))
    return model.to(map_location).eval()


# ----------------------------------------------------------------------------- evaluation


def model_input(images: np.ndarray) -> np.ndarray:
    """uint8 NHWC images -> the graph's int8 input codes (q = pixel - 128)."""
    return (np.asarray(images, np.int16) - 128).astype(np.int8)


def reference_logits(graph: Graph, images: np.ndarray) -> np.ndarray:
    """int8 logits [N, classes] of the numpy reference interpreter on uint8 NHWC images."""
    x = model_input(images)
    return np.stack([reference_outputs(graph, sample) for sample in x]).reshape(len(x), -1)


def agreement(model: QuantSubnet, graph: Graph, split: ImageDataset) -> dict[str, float]:
    """Reference accuracy and how the QAT model's predictions agree with the reference."""
    ref = reference_logits(graph, split.images).astype(np.int64)
    images, labels = split.tensors(next(model.parameters()).device)
    x = images.float() / 255.0
    model.eval()
    codes, _ = model.int_logits(x)
    with torch.no_grad(), model.simulated():
        sim = model(x).argmax(dim=1).cpu().numpy()
    codes = codes.cpu().numpy()
    ref_pred = ref.argmax(axis=1)
    y = labels.cpu().numpy()
    return {
        "reference_acc": float((ref_pred == y).mean()),
        "agreement": float((codes.argmax(axis=1) == ref_pred).mean()),
        "exact_logits": float((codes == ref).all(axis=1).mean()),
        "agreement_fake_quant": float((sim == ref_pred).mean()),
    }


def _weight_bytes(graph: Graph) -> dict[str, int]:
    dense = stored = 0
    for node in graph.nodes:
        if node.op in ("conv2d", "depthwise_conv2d", "linear"):
            t = graph.tensors[node.inputs[1]]
            dense += t.nbytes
            stored += int(np.asarray(t.data).nbytes)
    return {"weight_bytes_dense": dense, "weight_bytes_stored": stored}


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


def parse_config(spec: str) -> SubnetConfig | str:
    """A command-line config: "largest", "smallest", inline JSON or a JSON file's path."""
    if spec in ("largest", "smallest"):
        return spec
    if spec.lstrip().startswith("{"):
        return SubnetConfig.from_json(spec)
    path = Path(spec)
    if not path.exists():
        raise FileNotFoundError(
            f"config {spec!r} is neither 'largest', 'smallest', inline JSON nor a file"
        )
    return SubnetConfig.load(path)


def pipeline_config(
    config: str | None = None, plan: str | Path | None = None, **options: Any
) -> PipelineConfig:
    """A ``PipelineConfig`` from command-line style options (None means the default);
    ``config`` as :func:`parse_config`, ``plan`` a sparsity plan JSON file."""
    fields = {k: v for k, v in options.items() if v is not None}
    if config is not None:
        fields["config"] = parse_config(config)
    if plan is not None:
        fields["plan"] = SparsityPlan.load(plan)
    for key in ("root", "supernet"):
        if key in fields:
            fields[key] = str(fields[key])
    return PipelineConfig(**fields)


def _write_history(rows: list[dict[str, Any]], path: Path) -> None:
    keys = ["phase", "epoch", "loss", "val_acc", "sparsity", "seconds"]
    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k) for k in keys})
    write_atomic_text(buf.getvalue(), path)


def run_pipeline(out_dir: str | Path, cfg: PipelineConfig | None = None) -> PipelineResult:
    """Train, prune, QAT and export one model (module docstring); returns paths and metrics."""
    cfg = cfg or PipelineConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    device = resolve_device(cfg.device)
    if device.type == "cpu":
        configure_threads(cfg.num_threads)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    data = load_dataset(cfg.dataset, cfg.root, cfg.image_size, cfg.channels)
    timings: dict[str, float] = {}
    metrics: dict[str, Any] = {"dataset": data.name, "settings": cfg.to_dict()}

    # 1. float model
    t0 = time.perf_counter()
    if cfg.supernet is not None:
        supernet = load_supernet(cfg.supernet, device)
        config = resolve_config(cfg.config, data, supernet.space)
        supernet.space.validate(config)
        subnet = calibrated_subnet(supernet, config, data)
        metrics["inherited_test_acc"] = evaluate(subnet, data.test)
    else:
        config = resolve_config(cfg.config, data)
        subnet = Subnet.from_config(config).to(device)
    history = train_epochs(subnet, data, cfg.epochs, cfg.lr, cfg, gen, "float")
    metrics["float_val_acc"] = evaluate(subnet, data.val)
    metrics["float_test_acc"] = evaluate(subnet, data.test)
    timings["float"] = time.perf_counter() - t0

    # 2. gradual block pruning with fine-tuning
    t0 = time.perf_counter()
    plan = cfg.plan or SparsityPlan.uniform(subnet, cfg.sparsity, cfg.block)
    plan.check(subnet)
    teacher = copy.deepcopy(subnet).eval() if cfg.distill else None
    history += prune_gradually(subnet, data, plan, cfg, gen, teacher)
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
    qmodel, qat_history = quantization_aware_training(subnet, data, plan, cfg, gen, teacher)
    history += qat_history
    qmodel = qmodel.cpu()
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
    metrics.update(_weight_bytes(graph))
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
    _write_history(history, paths["history"])
    return PipelineResult(paths, metrics, history)


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
