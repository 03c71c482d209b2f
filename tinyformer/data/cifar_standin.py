"""A CIFAR-10 stand-in: synthetic 32x32x3 images in the official python format.

The real CIFAR-10 cannot be fetched here (nothing is downloaded), so the CIFAR-scale path is
tested on this: each class has its own shape (disc, square, ring, ...) in its own colour, at a
random place and size, on a random dull background, with colour and pixel noise. Every shape
is mirror-symmetric (CIFAR-10's augmentation flips) and the classes are separable (a tiny
network learns them in a few steps), so a trained model beats chance. The same seed gives the
same bytes, archive included.

Files are written exactly as the official ones: the ``cifar-10-batches-py`` folder of pickles
(protocol 2, bytes keys, ``numpy.core`` global names, as Python 2 wrote them), and on request
``cifar-10-python.tar.gz``, the download itself.
"""

from __future__ import annotations

import gzip
import io
import pickle
import tarfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tinyformer.data.cifar10 import (
    ARCHIVE_NAME,
    CIFAR10_CLASSES,
    FOLDER_NAME,
    IMAGE_SIZE,
    META_FILE,
    TEST_FILE,
    TRAIN_FILES,
)

Mask = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]  # (dx, dy, r) -> bool
_SHAPES: tuple[Mask, ...] = (
    lambda x, y, r: x**2 + y**2 <= r**2,  # disc
    lambda x, y, r: np.maximum(abs(x), abs(y)) <= 0.8 * r,  # square
    lambda x, y, r: (x**2 + y**2 <= r**2) & (x**2 + y**2 >= (0.55 * r) ** 2),  # ring
    lambda x, y, r: (np.minimum(abs(x), abs(y)) <= r / 3) & (np.maximum(abs(x), abs(y)) <= r),
    lambda x, y, r: abs(x) + abs(y) <= r,  # diamond
    lambda x, y, r: (abs(abs(x) - abs(y)) <= r / 3) & (np.maximum(abs(x), abs(y)) <= r),  # X
    lambda x, y, r: (abs(y) <= r) & (abs(x) <= (y + r) / 2),  # triangle
    lambda x, y, r: (np.maximum(abs(x), abs(y)) <= r) & ((y + r) // (r / 2.5) % 2 == 0),
    lambda x, y, r: (np.maximum(abs(x), abs(y)) <= r) & (abs(x) // (r / 3) % 2 == 0),
    lambda x, y, r: (np.maximum(abs(x), abs(y)) <= r) & (np.maximum(abs(x), abs(y)) >= 0.6 * r),
)
_COLOURS = np.array(
    [[230, 40, 40], [40, 200, 40], [50, 80, 240], [240, 220, 30], [220, 40, 220],
     [30, 220, 220], [250, 140, 20], [140, 60, 240], [250, 250, 250], [120, 70, 20]],
    dtype=np.float64,
)  # fmt: skip


def standin_images(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` images (uint8 NHWC [count, 32, 32, 3]) and balanced, shuffled labels."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(count) % len(CIFAR10_CLASSES)).astype(np.int64)
    grid = np.arange(IMAGE_SIZE, dtype=np.float64)
    images = np.empty((count, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    for n, label in enumerate(labels):
        cx, cy = rng.uniform(11.0, 21.0, 2)
        radius = rng.uniform(7.0, 11.0)
        mask = _SHAPES[label](grid[None, :] - cx, grid[:, None] - cy, np.float64(radius))
        background = rng.uniform(60, 160) + rng.normal(0, 15, 3)
        colour = _COLOURS[label] + rng.normal(0, 20, 3)
        image = np.where(mask[..., None], colour, background)
        image += rng.normal(0, 14, image.shape)
        images[n] = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    return images, labels


def pickle_py2(obj: object) -> bytes:
    """``obj`` pickled as the official files are: protocol 2 with numpy 1's global names."""
    return pickle.dumps(obj, protocol=2).replace(b"numpy._core.", b"numpy.core.")


def batch_files(
    train: list[tuple[np.ndarray, np.ndarray]], test: tuple[np.ndarray, np.ndarray]
) -> dict[str, bytes]:
    """The official folder's files from five training batches and the test batch, each as
    (uint8 [N, 3072] rows of R, G, B planes, labels)."""
    if len(train) != len(TRAIN_FILES):
        raise ValueError(f"CIFAR-10 has {len(TRAIN_FILES)} training batches, got {len(train)}")
    files = {}
    for i, (name, (data, labels)) in enumerate(
        zip((*TRAIN_FILES, TEST_FILE), (*train, test), strict=True)
    ):
        label = "testing batch 1 of 1" if name == TEST_FILE else f"training batch {i + 1} of 5"
        files[name] = pickle_py2(
            {
                b"batch_label": label.encode(),
                b"labels": [int(v) for v in labels],
                b"data": np.ascontiguousarray(data, dtype=np.uint8),
                b"filenames": [f"standin_{i}_{j:05d}.png".encode() for j in range(len(data))],
            }
        )
    files[META_FILE] = pickle_py2(
        {
            b"num_cases_per_batch": len(train[0][0]),
            b"label_names": [c.encode() for c in CIFAR10_CLASSES],
            b"num_vis": 3 * IMAGE_SIZE * IMAGE_SIZE,
        }
    )
    return files


def to_rows(images: np.ndarray) -> np.ndarray:
    """uint8 NHWC images -> CIFAR rows: the R, G, B planes of each, row-major."""
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2)).reshape(len(images), -1)


def write_files(root: Path, files: dict[str, bytes], archive: bool = False) -> Path:
    """``root/cifar-10-batches-py/`` (or ``root/cifar-10-python.tar.gz``); returns it."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    if not archive:
        folder = root / FOLDER_NAME
        folder.mkdir(exist_ok=True)
        for name, raw in files.items():
            (folder / name).write_bytes(raw)
        return folder
    path = root / ARCHIVE_NAME
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        folder_info = tarfile.TarInfo(FOLDER_NAME)
        folder_info.type, folder_info.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(folder_info)
        for name, raw in sorted(files.items()):
            info = tarfile.TarInfo(f"{FOLDER_NAME}/{name}")
            info.size, info.mode = len(raw), 0o644
            tar.addfile(info, io.BytesIO(raw))
    with open(path, "wb") as f, gzip.GzipFile(fileobj=f, mode="wb", mtime=0) as gz:
        gz.write(buf.getvalue())  # mtime 0: the same seed writes the same bytes
    return path


def write_standin(
    root: Path, per_batch: int = 100, test_count: int = 100, seed: int = 0, archive: bool = False
) -> Path:
    """A stand-in CIFAR-10 under ``root``: 5 x ``per_batch`` training images and
    ``test_count`` test images; the folder (or the .tar.gz with ``archive``) it wrote."""
    train = []
    for i in range(len(TRAIN_FILES)):
        images, labels = standin_images(per_batch, seed * 1000 + i)
        train.append((to_rows(images), labels))
    images, labels = standin_images(test_count, seed * 1000 + 999)
    return write_files(root, batch_files(train, (to_rows(images), labels)), archive)
