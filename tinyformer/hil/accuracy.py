"""Accuracy on the target: every test image through the firmware, checked against the host.

One emulator (or board) session serves all images; each output is compared with the numpy
reference's, so the result says both how accurate the deployed model is and whether the
firmware computes exactly what the host computed (it must: 100 % agreement).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from tinyformer.compiler.firmware import Firmware
from tinyformer.engine import reference
from tinyformer.engine.ir import Graph
from tinyformer.hil.targets.base import Target


@dataclass(frozen=True)
class TargetAccuracy:
    images: int
    accuracy: float  # firmware predictions vs labels
    reference_accuracy: float  # numpy reference predictions vs labels
    agreement: float  # firmware prediction == reference prediction
    bit_exact: float  # firmware logits == reference logits, all bytes
    count_per_inference: int  # instructions (QEMU) or cycles (board), first image
    stack_bytes: int

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class ImageRuns:
    """Some images run on one target session: the firmware's logits beside the reference's."""

    outputs: np.ndarray  # [n, classes] int8, from the firmware
    references: np.ndarray  # [n, classes] int8, from the numpy reference
    counts: list[int]
    stack_bytes: int

    @property
    def bit_exact(self) -> int:
        """Images whose logits match the reference's in every byte."""
        return int((self.outputs == self.references).all(axis=1).sum())


def run_images(target: Target, firmware: Firmware, graph: Graph, inputs: np.ndarray) -> ImageRuns:
    """``inputs``: int8 model inputs [N, ...], all run in one session of ``target``."""
    outs, refs, counts, stack = [], [], [], 0
    with target.session(firmware) as dev:
        for x in np.asarray(inputs, np.int8):
            result = dev.run(x.tobytes())
            outs.append(np.frombuffer(result.output, np.int8))
            refs.append(reference.outputs(graph, x).reshape(-1))
            counts.append(result.total)
            stack = max(stack, result.stack_used)
    return ImageRuns(np.stack(outs), np.stack(refs), counts, stack)


def score(runs: list[ImageRuns], labels: np.ndarray) -> TargetAccuracy:
    """The accuracy of ``runs`` (in the order of ``labels``), e.g. shards from several targets."""
    out = np.concatenate([r.outputs for r in runs])
    ref = np.concatenate([r.references for r in runs])
    labels = np.asarray(labels)
    if len(out) != len(labels):
        raise ValueError(f"{len(out)} images were run for {len(labels)} labels")
    pred, ref_pred = out.argmax(1), ref.argmax(1)
    return TargetAccuracy(
        images=len(labels),
        accuracy=float((pred == labels).mean()),
        reference_accuracy=float((ref_pred == labels).mean()),
        agreement=float((pred == ref_pred).mean()),
        bit_exact=sum(r.bit_exact for r in runs) / len(labels),
        count_per_inference=int(runs[0].counts[0]),
        stack_bytes=max(r.stack_bytes for r in runs),
    )


def evaluate_on_target(
    target: Target, firmware: Firmware, graph: Graph, inputs: np.ndarray, labels: np.ndarray
) -> TargetAccuracy:
    """``inputs``: int8 model inputs [N, ...]; ``labels``: [N] class indices."""
    return score([run_images(target, firmware, graph, inputs)], labels)
