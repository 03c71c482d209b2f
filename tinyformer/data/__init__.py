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


def load_dataset(
    name: str = "digits",
    root: str | Path | None = None,
    image_size: int | None = None,
    channels: int | None = None,
    **kwargs,
) -> DatasetSplits:
    """Load a data set by name: ``digits`` (default, embedded), ``cifar10`` or ``folder``.

    ``root`` is the ``cifar-10-batches-py`` folder, its parent or ``cifar-10-python.tar.gz``
    for cifar10, and the image
    tree for folder. ``image_size`` and ``channels`` convert a folder's images (the others
    have fixed shapes); extra keyword arguments go to the loader.
    """
    if name not in DATASET_NAMES:
        raise DatasetError(f"unknown data set '{name}'; choose one of {', '.join(DATASET_NAMES)}")
    if name != "folder" and (image_size is not None or channels is not None):
        raise DatasetError(
            f"image size and channels apply to image folders only; {name} images have a fixed shape"
        )
    if name == "digits":
        return load_digits_splits(**kwargs)
    if root is None:
        raise DatasetError(f"data set '{name}' needs a root folder")
    if name == "cifar10":
        return load_cifar10_splits(root, **kwargs)
    return load_folder_splits(root, image_size, channels, **kwargs)


def load_dataset_for_input(
    name: str, root: str | Path | None, image_size: int, channels: int
) -> DatasetSplits:
    """The data set for a model that takes image_size x image_size x channels inputs: a
    folder's images are converted to that; digits' and CIFAR-10's have their own shape."""
    folder = name == "folder"
    return load_dataset(name, root, image_size if folder else None, channels if folder else None)


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
    "load_dataset_for_input",
    "load_digits_splits",
    "load_folder_splits",
    "random_crop",
    "random_hflip",
    "to_model_input",
]
