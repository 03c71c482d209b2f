"""CIFAR-10 from the standard local ``cifar-10-batches-py`` folder (the python version), or
straight from the ``cifar-10-python.tar.gz`` it is extracted from.

The folder holds ``data_batch_1`` .. ``data_batch_5``, ``test_batch`` and ``batches.meta``:
pickled dicts (written by Python 2, so keys are bytes) with ``data`` a uint8 [N, 3072] array of
row-major 32x32 planes R, G, B and ``labels`` a list of ints. Nothing is downloaded.

The pickles are read with an unpickler that only resolves the few numpy globals an array needs,
so a tampered file cannot run code; anything else is reported as a corrupt file.
"""

from __future__ import annotations

import gzip
import io
import pickle
import tarfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from tinyformer.data.datasets import (
    DatasetError,
    DatasetSplits,
    ImageDataset,
    holdout_split,
    make_split,
)

FOLDER_NAME = "cifar-10-batches-py"
ARCHIVE_NAME = "cifar-10-python.tar.gz"
MAX_MEMBER_BYTES = 64 << 20  # a real batch is 31 MB: a bigger member is not one
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
META_FILE = "batches.meta"
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
CIFAR10_SEED = 0
IMAGE_SIZE = 32
ROW_BYTES = 3 * IMAGE_SIZE * IMAGE_SIZE

_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),  # how Python 3 protocol-2 pickles store bytes
}


class _ArrayUnpickler(pickle.Unpickler):
    """Resolves only the globals needed to rebuild numpy arrays."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
        if module.startswith("numpy.core") and hasattr(np, "_core"):
            module = "numpy._core" + module[len("numpy.core") :]  # numpy 2 renamed numpy.core
        return super().find_class(module, name)


def resolve_root(root: str | Path) -> Path:
    """Where the batches are: the ``cifar-10-batches-py`` folder (``root`` itself or
    ``root/cifar-10-batches-py``), or the ``cifar-10-python.tar.gz`` archive (``root`` itself or
    ``root/cifar-10-python.tar.gz``) as downloaded."""
    root = Path(root).expanduser()
    if (root / FOLDER_NAME).is_dir():
        root = root / FOLDER_NAME
    elif root.is_dir() and (root / ARCHIVE_NAME).is_file() and not (root / TEST_FILE).exists():
        root = root / ARCHIVE_NAME
    if root.is_file():
        return root
    if not root.is_dir():
        raise DatasetError(
            f"CIFAR-10 folder not found: {root} (give the extracted '{FOLDER_NAME}' folder, "
            f"its parent, or the downloaded {ARCHIVE_NAME})"
        )
    missing = [f for f in (*TRAIN_FILES, TEST_FILE) if not (root / f).is_file()]
    if missing:
        raise DatasetError(
            f"{root} is not a CIFAR-10 '{FOLDER_NAME}' folder: missing {', '.join(missing)}"
        )
    return root


def read_files(source: Path) -> dict[str, tuple[str, bytes]]:
    """name -> (where, bytes) of the batch and meta files of a folder or an archive; ``where``
    names the file in messages. A damaged or lying archive is a DatasetError naming it."""
    if source.is_dir():
        names = [f for f in (*TRAIN_FILES, TEST_FILE, META_FILE) if (source / f).exists()]
        files = {}
        for name in names:
            try:
                files[name] = (str(source / name), (source / name).read_bytes())
            except OSError as exc:
                raise DatasetError(f"cannot read {source / name}: {exc}") from exc
        return files
    return _read_archive(source)


def _read_archive(path: Path) -> dict[str, tuple[str, bytes]]:
    """The members ``cifar-10-batches-py/<file>`` of the .tar.gz, read in one streaming pass
    (nothing is extracted to disk), to the end of the gzip stream, whose CRC proves the bytes."""
    wanted = {f"{FOLDER_NAME}/{f}": f for f in (*TRAIN_FILES, TEST_FILE, META_FILE)}
    files: dict[str, tuple[str, bytes]] = {}

    def damaged(why: str) -> DatasetError:
        return DatasetError(f"damaged CIFAR-10 archive {path}: {why}")

    try:
        with gzip.open(path, "rb") as gz, tarfile.open(fileobj=gz, mode="r|") as tar:
            for member in tar:
                name = wanted.get(member.name.removeprefix("./"))
                if name is None:
                    continue
                if not member.isfile():
                    raise damaged(f"{member.name} is not a regular file")
                if name in files:
                    raise damaged(f"{member.name} appears twice")
                if member.size > MAX_MEMBER_BYTES:
                    raise damaged(
                        f"{member.name} holds {member.size:,} bytes, more than any CIFAR-10 "
                        "batch could"
                    )
                data = tar.extractfile(member).read()  # type: ignore[union-attr]
                files[name] = (f"{path}:{member.name}", data)
            while gz.read(1 << 20):  # to the end: the gzip CRC is checked there, not before
                pass
    except DatasetError:
        raise
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:  # gzip errors are OSErrors
        raise damaged(f"{type(exc).__name__}: {exc}") from exc
    missing = [f for f in (*TRAIN_FILES, TEST_FILE) if f not in files]
    if missing:
        raise damaged(f"no {', '.join(f'{FOLDER_NAME}/{f}' for f in missing)} in it")
    return files


def read_pickle(where: str, raw: bytes) -> dict:
    """One CIFAR pickle as a dict with str keys; any failure is a DatasetError naming the file."""
    try:
        obj = _ArrayUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as exc:  # pickle raises many types on garbage input
        raise DatasetError(f"corrupt CIFAR-10 file {where}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(obj, dict):
        raise DatasetError(f"corrupt CIFAR-10 file {where}: expected a dict, got {type(obj)}")
    return {k.decode("latin1") if isinstance(k, bytes) else str(k): v for k, v in obj.items()}


def read_batch(where: str, raw: bytes) -> tuple[np.ndarray, np.ndarray]:
    """One batch file as uint8 NHWC [N, 32, 32, 3] images and int64 labels."""
    batch = read_pickle(where, raw)
    if "data" not in batch or "labels" not in batch:
        raise DatasetError(f"corrupt CIFAR-10 file {where}: no 'data' or 'labels' entry")
    data = np.asarray(batch["data"])
    labels = np.asarray(batch["labels"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != ROW_BYTES:
        raise DatasetError(
            f"corrupt CIFAR-10 file {where}: data must be uint8 [N, {ROW_BYTES}], "
            f"got {data.dtype} {data.shape}"
        )
    if labels.shape != (len(data),) or not np.issubdtype(labels.dtype, np.integer):
        raise DatasetError(
            f"corrupt CIFAR-10 file {where}: {len(data)} images but labels {labels.shape}"
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= len(CIFAR10_CLASSES)):
        raise DatasetError(f"corrupt CIFAR-10 file {where}: labels outside 0..9")
    images = data.reshape(-1, 3, IMAGE_SIZE, IMAGE_SIZE).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels.astype(np.int64)


def read_classes(files: dict[str, tuple[str, bytes]]) -> tuple[str, ...]:
    """Class names from ``batches.meta``; the standard names when the file is absent."""
    if META_FILE not in files:
        return CIFAR10_CLASSES
    path = files[META_FILE][0]
    names = read_pickle(*files[META_FILE]).get("label_names")
    if not isinstance(names, list) or len(names) != len(CIFAR10_CLASSES):
        raise DatasetError(f"corrupt CIFAR-10 file {path}: label_names must be a list of 10")
    return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)


def load_cifar10_splits(
    root: str | Path, val_fraction: float = 0.1, seed: int = CIFAR10_SEED
) -> DatasetSplits:
    """CIFAR-10 train / val / test; val is a seeded holdout of the training batches."""
    files = read_files(resolve_root(root))
    classes = read_classes(files)
    parts = [read_batch(*files[f]) for f in TRAIN_FILES]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    train_idx, val_idx = holdout_split(len(images), round(len(images) * val_fraction), seed)
    test_images, test_labels = read_batch(*files[TEST_FILE])
    return DatasetSplits(
        "cifar10",
        make_split(images, labels, classes, "train", train_idx),
        make_split(images, labels, classes, "val", val_idx),
        ImageDataset(test_images, test_labels, classes, "test"),
    )
