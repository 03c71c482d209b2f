"""Accuracy on the target: every test image through the firmware, checked against the host.

Each output is compared with the numpy reference's, so the result says both how accurate the
deployed model is and whether the firmware computes exactly what the host computed (it must:
100 % agreement).

Where the time goes (a CIFAR-scale model, 3 KB inputs, on QEMU): the emulated UART takes
one byte per event-loop turn, ~14 KB/s, so INPUT cost 0.22 s per image where the inference
takes 0.03-0.08 s; the reference took 0.06-0.13 s, half of it decoding the block-sparse
weights again for every image and most of the rest a [Ho][Wo][kh][kw][C] int64 temporary in
depthwise; each image made 9 round trips. Now an emulator that can preload memory gets all
the inputs before boot (``Target.preloaded_session``) and LOAD copies each in place; the
next image's LOAD, RUN and READ queue behind the current one's (``DeviceClient.
run_preloaded``); the per-layer counts, unused here, are not read back; the reference decodes
the weights once (``reference.outputs_many``) and runs in a thread beside the emulator. RUN
still names each input by CRC and the output read is still proven by RUN's CRC: nothing
about exactly-once changes. Targets that cannot preload (a board, Renode) send each input
over the link.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import numpy as np
from tqdm.auto import tqdm

from tinyformer.compiler.firmware import Firmware
from tinyformer.engine import reference
from tinyformer.engine.ir import Graph
from tinyformer.hil.client import RunResult
from tinyformer.hil.errors import DataMismatch
from tinyformer.hil.targets.base import Target
from tinyformer.results import percent

Progress = Callable[[int], None]  # called with the number of images done so far


@dataclass(frozen=True)
class ImageRuns:
    """Per image, in input order: the firmware's outputs, the reference's, the count."""

    outputs: np.ndarray  # int8 [N, output bytes], proven to be the firmware's (RUN_R CRCs)
    references: np.ndarray  # int8 [N, output bytes], the numpy reference's
    counts: np.ndarray  # int64 [N]: instructions (QEMU) or cycles (board) per inference
    stack_used: int  # the deepest stack of any of the runs

    @property
    def bit_exact(self) -> np.ndarray:
        """bool [N]: the firmware's output equals the reference's, every byte."""
        return np.asarray((self.outputs == self.references).all(axis=1))

    @classmethod
    def concat(cls, parts: Sequence[ImageRuns]) -> ImageRuns:
        """Shards of one evaluation (consecutive slices of the inputs), in order."""
        return cls(
            np.concatenate([r.outputs for r in parts]),
            np.concatenate([r.references for r in parts]),
            np.concatenate([r.counts for r in parts]),
            max(r.stack_used for r in parts),
        )


@dataclass(frozen=True)
class TargetAccuracy:
    images: int
    accuracy: float  # firmware predictions vs labels
    reference_accuracy: float  # numpy reference predictions vs labels
    agreement: float  # firmware prediction == reference prediction
    bit_exact: float  # firmware logits == reference logits, all bytes
    count_per_inference: int  # instructions (QEMU) or cycles (board), first image
    mean_count_per_inference: float  # over every image (a board's first run is cold)
    stack_bytes: int
    confusion: list[list[int]]  # [true class][firmware's prediction] image counts

    def to_dict(self) -> dict[str, float | list[list[int]]]:
        """Fractions (0..1) and the confusion matrix, for --json."""
        return asdict(self)

    def display(self) -> dict[str, str | int]:
        """The figures for people: fractions as percentages with two decimals."""
        shown: dict[str, str | int] = {}
        for key, value in asdict(self).items():
            if key == "mean_count_per_inference":
                shown[key] = f"{value:,.0f}"
            elif isinstance(value, float):
                shown[key] = percent(value)
            elif key != "confusion":
                shown[key] = value
        return shown


@contextlib.contextmanager
def progress_bar(total: int, what: str, enabled: bool = True) -> Iterator[Progress]:
    """A progress bar on stderr over ``total`` images, as the callback run_images takes."""
    with tqdm(total=total, desc=what, unit="image", disable=not enabled) as bar:

        def update(done: int) -> None:
            bar.update(done - bar.n)

        yield update


def check_data(graph: Graph, image_shape: tuple[int, ...], num_classes: int, what: str) -> None:
    """Refuse test data the model cannot have been made for: another input shape (H, W, C) or
    another number of classes than the model's outputs (``what`` names the data)."""
    shape = tuple(graph.tensors[graph.inputs[0]].shape)
    if tuple(image_shape) != shape:
        raise DataMismatch(
            f"{what} has {'x'.join(map(str, image_shape))} images, the model takes "
            f"{'x'.join(map(str, shape))}: evaluate it on the data it was trained for"
        )
    classes = math.prod(graph.tensors[graph.outputs[0]].shape)
    if num_classes != classes:
        raise DataMismatch(
            f"{what} has {num_classes} classes, the model has {classes} outputs: evaluate it "
            "on the data it was trained for"
        )


def run_images(
    target: Target,
    firmware: Firmware,
    graph: Graph,
    inputs: np.ndarray,
    on_image: Progress | None = None,
    preload: bool = True,
) -> ImageRuns:
    """Every input through the firmware on ``target`` and through the numpy reference.

    ``inputs``: int8 model inputs [N, ...]. The unit a caller shards over several targets:
    give each a consecutive slice and ``ImageRuns.concat`` the results. ``preload=False``
    sends every input over the serial link even where the target could preload them.
    """
    x = np.ascontiguousarray(inputs, np.int8)
    if not len(x):
        raise DataMismatch("no images to evaluate: the test split is empty")
    # The reference runs while the target computes (numpy releases the GIL in its array work,
    # the client waits on a socket).
    with ThreadPoolExecutor(1, thread_name_prefix="tinyformer-reference") as pool:
        refs = pool.submit(reference.outputs_many, graph, x)
        outs: list[np.ndarray] = []
        counts: list[int] = []
        stack = 0

        def record(result: RunResult) -> None:
            nonlocal stack
            outs.append(np.frombuffer(result.output, np.int8))
            counts.append(result.total)
            stack = max(stack, result.stack_used)
            if on_image is not None:
                on_image(len(outs))

        per_session = target.preload_bytes(firmware) // x[0].nbytes
        if preload and per_session > 0:
            for start in range(0, len(x), per_session):
                batch = x[start : start + per_session]
                with target.preloaded_session(firmware, batch.tobytes()) as dev:
                    for result in dev.run_preloaded([image.tobytes() for image in batch]):
                        record(result)
        else:
            with target.session(firmware) as dev:
                for image in x:
                    record(dev.run(image.tobytes(), layers=False))
        ref = refs.result()
    return ImageRuns(np.stack(outs), ref, np.asarray(counts, np.int64), stack)


def accuracy_of(runs: ImageRuns, labels: np.ndarray) -> TargetAccuracy:
    """The accuracy figures of an evaluation's runs against the images' labels."""
    labels = np.asarray(labels, np.int64)
    pred, ref_pred = runs.outputs.argmax(1), runs.references.argmax(1)
    classes = runs.outputs.shape[1]
    if len(labels) != len(pred) or labels.min() < 0 or labels.max() >= classes:
        raise DataMismatch(f"labels must be {len(pred)} class indices 0..{classes - 1}")
    confusion = np.zeros((classes, classes), np.int64)
    np.add.at(confusion, (labels, pred), 1)
    return TargetAccuracy(
        images=len(labels),
        accuracy=float((pred == labels).mean()),
        reference_accuracy=float((ref_pred == labels).mean()),
        agreement=float((pred == ref_pred).mean()),
        bit_exact=float(runs.bit_exact.mean()),
        count_per_inference=int(runs.counts[0]),
        mean_count_per_inference=float(runs.counts.mean()),
        stack_bytes=runs.stack_used,
        confusion=confusion.tolist(),
    )


def evaluate_on_target(
    target: Target,
    firmware: Firmware,
    graph: Graph,
    inputs: np.ndarray,
    labels: np.ndarray,
    on_image: Progress | None = None,
) -> TargetAccuracy:
    """``inputs``: int8 model inputs [N, ...]; ``labels``: [N] class indices."""
    return accuracy_of(run_images(target, firmware, graph, inputs, on_image), labels)
