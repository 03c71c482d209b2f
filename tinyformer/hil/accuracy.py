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


def evaluate_on_target(
    target: Target, firmware: Firmware, graph: Graph, inputs: np.ndarray, labels: np.ndarray
) -> TargetAccuracy:
    """``inputs``: int8 model inputs [N, ...]; ``labels``: [N] class indices."""
    outs, refs, counts, stack = [], [], [], 0
    with target.session(firmware) as dev:
        for x in np.asarray(inputs, np.int8):
            result = dev.run(x.tobytes())
            outs.append(np.frombuffer(result.output, np.int8))
            refs.append(reference.outputs(graph, x).reshape(-1))
            counts.append(result.total)
            stack = max(stack, result.stack_used)
    out, ref, labels = np.stack(outs), np.stack(refs), np.asarray(labels)
    pred, ref_pred = out.argmax(1), ref.argmax(1)
    return TargetAccuracy(
        images=len(labels),
        accuracy=float((pred == labels).mean()),
        reference_accuracy=float((ref_pred == labels).mean()),
        agreement=float((pred == ref_pred).mean()),
        bit_exact=float((out == ref).all(axis=1).mean()),
        count_per_inference=int(counts[0]),
        stack_bytes=stack,
    )
