"""Evaluate sharded over every free target of a kind: images split, results merged in order.

Each shard runs in one session of one target and is checked there against the numpy reference
(its bit-exact count comes back with the target that ran it); the merged figures are those of
one run over all images. There are twice as many shards as targets, so a target that dies
costs a shard, and a slow one does not hold the others back.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from tinyformer.cluster.pool import FirmwarePackage, TargetPool
from tinyformer.cluster.runtime import ray_session
from tinyformer.hil.accuracy import ImageRuns, Progress, TargetAccuracy, accuracy_of
from tinyformer.hil.targets.base import Target

SHARD_IMAGES = 256  # a shard is one target session: its boot is amortised over this many


@dataclass(frozen=True)
class Shard:
    first: int  # index of its first image
    images: int
    bit_exact: int  # images whose logits match the reference's in every byte
    target: str  # the worker that ran it


@dataclass(frozen=True)
class ShardedAccuracy:
    accuracy: TargetAccuracy
    shards: list[Shard]

    @property
    def targets(self) -> list[str]:
        return sorted({s.target for s in self.shards})


def split(n: int, parts: int) -> list[range]:
    """``n`` images in ``parts`` consecutive ranges of near-equal size (none empty)."""
    edges = np.linspace(0, n, min(parts, n) + 1).round().astype(int)
    return [range(a, b) for a, b in itertools.pairwise(edges)]


def evaluate_sharded(
    target: Target,
    package: FirmwarePackage,
    inputs: np.ndarray,
    labels: np.ndarray,
    workers: int | None = None,
    on_image: Progress | None = None,
) -> ShardedAccuracy:
    """Every image of ``inputs`` on the cluster's free targets of ``target``'s kind (at most
    ``workers`` of them); ``on_image`` is told the images done as each shard comes back."""
    inputs = np.asarray(inputs, np.int8)
    if len(inputs) == 0:
        raise ValueError("no images to evaluate")
    with ray_session(), TargetPool(target, workers) as pool:
        # at most SHARD_IMAGES a shard, so that progress moves on a one-target evaluation
        ranges = split(len(inputs), max(2 * len(pool), -(-len(inputs) // SHARD_IMAGES)))
        runs: list[ImageRuns] = []
        shards: list[Shard] = []

        def done(i: int, runs_i: ImageRuns, where: str) -> None:
            runs.append(runs_i)
            bit_exact = int(runs_i.bit_exact.sum())
            shards.append(Shard(ranges[i].start, len(ranges[i]), bit_exact, where))
            if on_image is not None:
                on_image(sum(s.images for s in shards))

        pool.map("run_images", [(package, inputs[r.start : r.stop]) for r in ranges], done)
    return ShardedAccuracy(accuracy_of(ImageRuns.concat(runs), labels), shards)
