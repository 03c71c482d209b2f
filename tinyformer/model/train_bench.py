"""Training throughput: images per second of the training steps TinyFormer runs, on this
machine's CPU (at 1 thread and at the default thread count) and on its GPU when it has one
(with and without mixed precision) -> ``results/training.csv``.

Two models per data set, each the largest subnet of the data set's default space: digits
(8x8x1) and CIFAR-10 scale (32x32x3, 10 classes). Two steps per model: ``subnet`` (one
forward and backward: the pipeline's float and pruning phases) and ``supernet`` (the sandwich
rule's four subnets on one batch: supernet training inside ``search`` and ``demo``). Each is
timed through :func:`tinyformer.model.fit.fit` itself (batching, augmentation, AdamW, clipping)
on synthetic images of the real shape, after warm-up steps. ``host_load`` is the 1-minute
load average when the case started: on a shared machine it says how contended the figure
is; ``omp_wait_policy`` says how its threads waited (``tinyformer/__init__.py``). Rows are
keyed (model, step, device, its name, threads, amp, batch): a rerun replaces its rows.
"""

from __future__ import annotations

import contextlib
import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from tinyformer.data.augment import default_augment
from tinyformer.data.datasets import ImageDataset
from tinyformer.model.config import SupernetSpace
from tinyformer.model.device import Precision, configure_threads, default_threads, resolve_device
from tinyformer.model.fit import StepFn, adamw_warmup_cosine, fit, supervised_step
from tinyformer.model.subnet import Subnet
from tinyformer.model.supernet import Supernet
from tinyformer.model.train import TrainConfig, sandwich_configs, sandwich_step
from tinyformer.results import append_rows, now_iso

TRAINING_BENCH = "training.csv"
MODELS = ("digits", "cifar10")
STEPS = ("subnet", "supernet")
COLUMNS = [
    "model", "step", "input", "parameters", "device", "device_name", "threads", "amp",
    "batch_size", "steps", "images_per_s", "ms_per_step", "minutes_per_50k_images",
    "host_load", "omp_wait_policy", "torch", "time",
]  # fmt: skip
KEY = ["model", "step", "device", "device_name", "threads", "amp", "batch_size"]


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _synthetic(space: SupernetSpace, count: int) -> ImageDataset:
    """Random images of the data set's shape (the speed of a step does not depend on them)."""
    rng = np.random.default_rng(0)
    shape = (count, space.image_size, space.image_size, space.in_channels)
    images = rng.integers(0, 256, shape, dtype=np.uint8)
    classes = tuple(str(c) for c in range(space.num_classes))
    return ImageDataset(images, rng.integers(0, space.num_classes, count), classes, "train")


def time_step(
    dataset: str,
    step: str,
    device: torch.device,
    precision: Precision,
    batch_size: int,
    steps: int,
    warmup: int,
) -> tuple[float, int]:
    """Seconds for ``steps`` training steps (after ``warmup`` untimed ones), and the model's
    parameter count."""
    space = SupernetSpace.for_dataset(dataset)
    torch.manual_seed(0)
    model: torch.nn.Module
    if step == "subnet":
        model = Subnet.from_config(space.largest()).to(device)
        step_fn: StepFn = supervised_step(model, 0.1, None, precision)
    else:
        supernet = model = Supernet(space).to(device)
        rng, cfg = np.random.default_rng(0), TrainConfig()

        def step_fn(x: torch.Tensor, y: torch.Tensor) -> float:
            configs = sandwich_configs(space, rng, cfg.num_random)
            return sandwich_step(supernet, x, y, configs, cfg, precision)

    data = _synthetic(space, batch_size * max(steps, warmup))
    optimizer, scheduler = adamw_warmup_cosine(model, 3e-3, 0.05, 10 * steps, 1, 0.01)
    augment = default_augment(dataset, space.image_size)

    def run(count: int) -> float:
        start = time.perf_counter()
        fit(model, data, 1, optimizer, scheduler, step_fn, torch.Generator().manual_seed(0),
            batch_size=batch_size, steps=count, augment=augment, grad_clip=5.0,
            precision=precision)  # fmt: skip
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    if warmup:
        run(warmup)
    return run(steps), sum(p.numel() for p in model.parameters())


def bench_training(
    out: Path,
    device: str = "auto",
    threads: Sequence[int] | None = None,
    models: Sequence[str] = MODELS,
    batch_size: int = 64,
    steps: int = 4,
    warmup: int = 1,
) -> pd.DataFrame:
    """Time every (model, step) on ``device``, appending each row to ``out`` as it is
    measured (an interrupted bench keeps what it measured); returns the new rows. CPU: at
    each of ``threads`` (default: 1 and the default count); CUDA: with mixed precision on
    and off."""
    dev = resolve_device(device)
    if dev.type == "cpu":
        settings = [(n, False) for n in sorted(set(threads or (1, default_threads())))]
    else:
        settings = [(torch.get_num_threads(), amp) for amp in (True, False)]
    rows = []
    for n, amp in settings:
        if dev.type == "cpu":
            configure_threads(n)
        for dataset in models:
            space = SupernetSpace.for_dataset(dataset)
            for step in STEPS:
                precision = Precision.for_device(dev, amp)
                load = os.getloadavg()[0]  # others' work on a shared machine slows it
                seconds, params = time_step(
                    dataset, step, dev, precision, batch_size, steps, warmup
                )
                ips = batch_size * steps / seconds
                rows.append({
                    "model": dataset, "step": step,
                    "input": f"{space.image_size}x{space.image_size}x{space.in_channels}",
                    "parameters": params, "device": dev.type, "device_name": _device_name(dev),
                    "threads": n, "amp": amp, "batch_size": batch_size, "steps": steps,
                    "images_per_s": round(ips, 1), "ms_per_step": round(1000 * seconds / steps, 1),
                    "minutes_per_50k_images": round(50_000 / ips / 60, 1),
                    "host_load": round(load, 2),
                    "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
                    "torch": torch.__version__, "time": now_iso(),
                })  # fmt: skip
                append_rows(rows[-1:], out, COLUMNS, KEY)  # each figure kept as it comes
    return pd.DataFrame(rows, columns=COLUMNS)
