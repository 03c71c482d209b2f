"""Image data set containers, seeded splits and batch iteration.

Conventions shared by every loader (and relied on by export / quantization):

- images are stored as uint8 NHWC arrays ``[N, H, W, C]`` (the layout the engine uses);
- labels are int64 ``[N]`` in ``0 .. num_classes - 1``;
- the model input is float NCHW ``images / 255`` in [0, 1] (no mean/std normalisation), so the
  int8 model input is exactly ``q = pixel - 128`` with scale 1/255 and zero point -128.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

SPLIT_NAMES = ("train", "val", "test")


class DatasetError(Exception):
    """A data set is missing, corrupt or malformed; the message says which file and why."""


@dataclass
class ImageDataset:
    """One split: uint8 NHWC images, int64 labels, and where the samples came from.

    ``indices`` are positions in the source collection the split was drawn from (for digits, the
    scikit-learn array; for CIFAR-10, the concatenated training batches or the test batch), so a
    split can be traced back and checked for overlap.
    """

    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    split: str
    indices: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def __post_init__(self) -> None:
        self.images = np.ascontiguousarray(self.images)
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if self.images.dtype != np.uint8 or self.images.ndim != 4:
            raise DatasetError(
                f"{self.split}: images must be uint8 [N, H, W, C], got "
                f"{self.images.dtype} {self.images.shape}"
            )
        if self.labels.shape != (len(self.images),):
            raise DatasetError(
                f"{self.split}: {len(self.images)} images but labels of shape {self.labels.shape}"
            )
        if len(self.labels) and (self.labels.min() < 0 or self.labels.max() >= len(self.classes)):
            raise DatasetError(f"{self.split}: labels outside 0..{len(self.classes) - 1}")
        if len(self.indices) == 0:
            self.indices = np.arange(len(self.images), dtype=np.int64)
        self.indices = np.asarray(self.indices, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(H, W, C)."""
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def subset(self, count: int) -> ImageDataset:
        """The first ``count`` samples (splits are already shuffled, so this is a fair sample)."""
        count = min(count, len(self))
        return ImageDataset(
            self.images[:count], self.labels[:count], self.classes, self.split, self.indices[:count]
        )

    def tensors(self, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 NCHW images and int64 labels as tensors on ``device`` (convert per batch)."""
        x = torch.from_numpy(self.images).permute(0, 3, 1, 2).contiguous()
        return x.to(device), torch.from_numpy(self.labels).to(device)


@dataclass
class DatasetSplits:
    """A data set's train / val / test splits and its metadata."""

    name: str
    train: ImageDataset
    val: ImageDataset
    test: ImageDataset

    def __post_init__(self) -> None:
        shapes = {s.image_shape for s in self.splits() if len(s)}
        classes = {s.classes for s in self.splits()}
        if len(shapes) > 1 or len(classes) > 1:
            raise DatasetError(f"{self.name}: splits disagree on image shape or classes")

    def splits(self) -> tuple[ImageDataset, ImageDataset, ImageDataset]:
        return self.train, self.val, self.test

    @property
    def classes(self) -> tuple[str, ...]:
        return self.train.classes

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(H, W, C)."""
        return self.train.image_shape

    @property
    def image_size(self) -> int:
        return self.image_shape[0]

    @property
    def in_channels(self) -> int:
        return self.image_shape[2]


def to_model_input(images: torch.Tensor | np.ndarray) -> torch.Tensor:
    """uint8 images (NCHW tensor, or NHWC numpy array) -> float NCHW in [0, 1]."""
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
    return images.to(torch.float32) / 255.0


def stratified_split(
    labels: np.ndarray, fractions: tuple[float, float, float], seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded per-class split into (train, val, test) index arrays, each shuffled.

    Each class is permuted with one PCG64 stream and cut by ``fractions`` (val and test rounded,
    train gets the rest), so the split is the same on every call and every machine.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-9:
        raise ValueError(f"fractions must be three non-negative numbers summing to 1: {fractions}")
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[], [], []]
    for cls in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        n_val = round(len(idx) * fractions[1])
        n_test = round(len(idx) * fractions[2])
        n_train = len(idx) - n_val - n_test
        parts[0].append(idx[:n_train])
        parts[1].append(idx[n_train : n_train + n_val])
        parts[2].append(idx[n_train + n_val :])
    out = tuple(rng.permutation(np.concatenate(p)).astype(np.int64) for p in parts)
    return out  # type: ignore[return-value]


def holdout_split(count: int, holdout: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (rest, holdout) index arrays over ``range(count)``; used to carve a val split."""
    if not 0 <= holdout <= count:
        raise ValueError(f"holdout {holdout} must be in 0..{count}")
    perm = np.random.default_rng(seed).permutation(count).astype(np.int64)
    return perm[holdout:], perm[:holdout]


def make_split(
    images: np.ndarray, labels: np.ndarray, classes: tuple[str, ...], split: str, idx: np.ndarray
) -> ImageDataset:
    return ImageDataset(images[idx], labels[idx], classes, split, idx)


Transform = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def iterate_batches(
    images: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int,
    *,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
    transform: Transform | None = None,
    drop_last: bool = False,
    max_batches: int | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (float NCHW input in [0, 1], labels) batches from uint8 NCHW tensors.

    Shuffling and ``transform`` draw from ``generator`` only (a CPU torch.Generator), so a run is
    reproducible from the generator's state. ``drop_last`` keeps at least one batch.
    """
    n = len(images)
    if shuffle:
        if generator is None:
            raise ValueError("shuffle=True needs a seeded generator")
        order = torch.randperm(n, generator=generator).to(images.device)
    else:
        order = torch.arange(n, device=images.device)
    count = num_batches(n, batch_size, drop_last)
    if max_batches is not None:
        count = min(count, max_batches)
    for b in range(count):
        idx = order[b * batch_size : (b + 1) * batch_size]
        x = to_model_input(images[idx])
        if transform is not None:
            if generator is None:
                raise ValueError("a transform needs a seeded generator")
            x = transform(x, generator)
        yield x, labels[idx]


def num_batches(n: int, batch_size: int, drop_last: bool = False) -> int:
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if drop_last and n >= batch_size:
        return n // batch_size
    return -(-n // batch_size)
