"""Data sets: the embedded digits, CIFAR-10 from local files, and users' image folders."""

from __future__ import annotations

from pathlib import Path

from tinyformer.data.augment import Augment, default_augment, random_crop, random_hflip
from tinyformer.data.cifar10 import load_cifar10_splits
from tinyformer.data.datasets import (
    DatasetError,
    DatasetSplits,
    ImageDataset,
    iterate_batches,
    to_model_input,
)
from tinyformer.data.digits import load_digits_splits
from tinyformer.data.folder import load_folder_splits

DATASET_NAMES = ("digits", "cifar10", "folder")


def load_dataset(name: str = "digits", root: str | Path | None = None, **kwargs) -> DatasetSplits:
    """Load a data set by name: ``digits`` (default, embedded), ``cifar10`` or ``folder``.

    ``root`` is the ``cifar-10-batches-py`` folder (or its parent) for cifar10, and the image
    tree for folder; extra keyword arguments go to the loader.
    """
    if name == "digits":
        return load_digits_splits(**kwargs)
    if name in ("cifar10", "folder"):
        if root is None:
            raise DatasetError(f"data set '{name}' needs a root folder")
        loader = load_cifar10_splits if name == "cifar10" else load_folder_splits
        return loader(root, **kwargs)
    raise DatasetError(f"unknown data set '{name}'; choose one of {', '.join(DATASET_NAMES)}")


__all__ = [
    "DATASET_NAMES",
    "Augment",
    "DatasetError",
    "DatasetSplits",
    "ImageDataset",
    "default_augment",
    "iterate_batches",
    "load_cifar10_splits",
    "load_dataset",
    "load_digits_splits",
    "load_folder_splits",
    "random_crop",
    "random_hflip",
    "to_model_input",
]
