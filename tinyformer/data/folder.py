"""Users' own images from a folder tree, one sub-folder per class.

Layouts:

- ``root/<class>/<image>``: split here, stratified and seeded (default 70 / 10 / 20 %);
- ``root/train/<class>/...`` and ``root/test/<class>/...`` (optional ``root/val/...``): the given
  split is kept; without ``val``, a seeded holdout of ``train`` becomes the val split.

File formats: ``.npy`` (uint8 [H, W] or [H, W, C]) and binary PGM/PPM (``P5``/``P6``, maxval <= 255)
are always read, with numpy only. PNG, JPEG, BMP, GIF, TIFF and WebP are read with Pillow, which
ships with matplotlib (a project dependency); if it is missing, such files give a clear error.
Other files and hidden files are ignored. Images are converted to ``channels`` (1 = luminance,
3 = RGB) and resized to a square ``image_size`` with antialiased bilinear interpolation (torch).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from tinyformer.data.datasets import (
    DatasetError,
    DatasetSplits,
    ImageDataset,
    make_split,
    stratified_split,
)

NUMPY_SUFFIXES = (".npy",)
NETPBM_SUFFIXES = (".pgm", ".ppm", ".pnm")
PIL_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
SUPPORTED_SUFFIXES = NUMPY_SUFFIXES + NETPBM_SUFFIXES + PIL_SUFFIXES
FOLDER_FRACTIONS = (0.7, 0.1, 0.2)
FOLDER_SEED = 0


def read_netpbm(path: Path) -> np.ndarray:
    """Binary PGM (P5) or PPM (P6) with maxval <= 255 as uint8 [H, W, C]."""
    data = path.read_bytes()
    tokens: list[bytes] = []
    pos = 0
    while len(tokens) < 4:
        while pos < len(data) and data[pos : pos + 1].isspace():
            pos += 1
        if data[pos : pos + 1] == b"#":  # comment runs to the end of the line
            pos = data.find(b"\n", pos) + 1 or len(data)
            continue
        start = pos
        while pos < len(data) and not data[pos : pos + 1].isspace() and data[pos] != ord("#"):
            pos += 1
        if start == pos:
            raise DatasetError(f"{path}: truncated PGM/PPM header")
        tokens.append(data[start:pos])
    magic = tokens[0]
    if magic not in (b"P5", b"P6"):
        raise DatasetError(f"{path}: only binary PGM (P5) / PPM (P6) are supported, got {magic!r}")
    try:
        width, height, maxval = (int(t) for t in tokens[1:])
    except ValueError as exc:
        raise DatasetError(f"{path}: bad PGM/PPM header {tokens}") from exc
    if not 0 < maxval <= 255:
        raise DatasetError(f"{path}: maxval {maxval} not supported (8-bit images only)")
    channels = 1 if magic == b"P5" else 3
    size = width * height * channels
    pixels = data[pos + 1 : pos + 1 + size]  # exactly one whitespace byte ends the header
    if len(pixels) != size:
        raise DatasetError(f"{path}: expected {size} pixel bytes, found {len(pixels)}")
    image = np.frombuffer(pixels, np.uint8).reshape(height, width, channels)
    if maxval != 255:
        image = np.rint(image.astype(np.float64) * (255.0 / maxval)).clip(0, 255).astype(np.uint8)
    return image


def read_npy(path: Path) -> np.ndarray:
    try:
        image = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise DatasetError(f"{path}: not a readable .npy file ({exc})") from exc
    if image.dtype != np.uint8:
        raise DatasetError(f"{path}: .npy images must be uint8, got {image.dtype}")
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise DatasetError(f"{path}: .npy shape {image.shape} is not [H, W] or [H, W, 1|3|4]")
    return image


def read_with_pil(path: Path) -> np.ndarray:
    try:
        from PIL import Image
    except ImportError as exc:
        raise DatasetError(
            f"{path}: reading {path.suffix} files needs Pillow (pip install pillow); "
            ".npy and binary .pgm/.ppm work without it"
        ) from exc
    try:
        with Image.open(path) as img:
            gray = img.mode in ("1", "L", "LA", "I", "I;16", "F")
            image = np.array(img.convert("L" if gray else "RGB"), dtype=np.uint8)
    except Exception as exc:
        raise DatasetError(f"{path}: cannot decode image ({exc})") from exc
    return image[..., None] if image.ndim == 2 else image


def read_image(path: Path) -> np.ndarray:
    """One image file as uint8 [H, W, C] with C in 1, 3 (alpha dropped)."""
    suffix = path.suffix.lower()
    if suffix in NUMPY_SUFFIXES:
        image = read_npy(path)
    elif suffix in NETPBM_SUFFIXES:
        image = read_netpbm(path)
    elif suffix in PIL_SUFFIXES:
        image = read_with_pil(path)
    else:
        raise DatasetError(f"{path}: unsupported file type {suffix}")
    return image[..., :3] if image.shape[2] == 4 else image


def convert_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """Gray -> RGB by repetition, RGB -> gray by ITU-R 601 luminance (as Pillow's 'L')."""
    if image.shape[2] == channels:
        return image
    if channels == 3:
        return np.repeat(image, 3, axis=2)
    luma = image.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    return np.rint(luma).clip(0, 255).astype(np.uint8)[..., None]


def resize(image: np.ndarray, size: int) -> np.ndarray:
    """uint8 [H, W, C] -> uint8 [size, size, C], antialiased bilinear."""
    if image.shape[:2] == (size, size):
        return image
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()
    y = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return y[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()


def list_class_files(folder: Path) -> dict[str, list[Path]]:
    """{class name: sorted image files} for the class sub-folders of ``folder``."""
    out: dict[str, list[Path]] = {}
    for class_dir in sorted(p for p in folder.iterdir() if p.is_dir() and p.name[0] != "."):
        files = sorted(
            p
            for p in class_dir.iterdir()
            if p.is_file() and p.name[0] != "." and p.suffix.lower() in SUPPORTED_SUFFIXES
        )
        if files:
            out[class_dir.name] = files
    return out


def load_files(
    files: list[Path], image_size: int | None, channels: int | None
) -> tuple[np.ndarray, int, int]:
    """Decode, convert and stack; returns (images [N, S, S, C], size, channels)."""
    if not files:
        raise DatasetError("no image files found")
    images = [read_image(f) for f in files]
    if channels is None:
        channels = 3 if any(im.shape[2] == 3 for im in images) else 1
    if channels not in (1, 3):
        raise DatasetError(f"channels must be 1 or 3, got {channels}")
    if image_size is None:
        shapes = {im.shape[:2] for im in images}
        if len(shapes) != 1 or next(iter(shapes))[0] != next(iter(shapes))[1]:
            first = sorted(shapes)[:3]
            raise DatasetError(
                f"images differ in size or are not square ({first} ...); pass image_size "
                "(tinyformer train --image-size) to resize them all to one square size"
            )
        image_size = next(iter(shapes))[0]
    stacked = np.stack([resize(convert_channels(im, channels), image_size) for im in images])
    return stacked, image_size, channels


def _gather(folder: Path, classes: tuple[str, ...]) -> tuple[list[Path], np.ndarray]:
    found = list_class_files(folder)
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise DatasetError(f"{folder}: classes {unknown} do not appear in the training folder")
    files = [f for c in classes for f in found.get(c, [])]
    if not files:
        raise DatasetError(f"{folder}: no image files ({', '.join(SUPPORTED_SUFFIXES)})")
    labels = np.array([i for i, c in enumerate(classes) for _ in found.get(c, [])], np.int64)
    return files, labels


def load_folder_splits(
    root: str | Path,
    image_size: int | None = None,
    channels: int | None = None,
    fractions: tuple[float, float, float] = FOLDER_FRACTIONS,
    seed: int = FOLDER_SEED,
) -> DatasetSplits:
    """Images under ``root`` as train / val / test (see the module docstring for layouts)."""
    if image_size is not None and image_size < 1:
        raise DatasetError(f"image size must be at least 1 pixel, got {image_size}")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"image folder not found: {root}")
    presplit = (root / "train").is_dir() and (root / "test").is_dir()
    base = root / "train" if presplit else root
    found = list_class_files(base)
    if len(found) < 2:
        raise DatasetError(
            f"{base}: need at least 2 class sub-folders with images "
            f"({', '.join(SUPPORTED_SUFFIXES)}), found {len(found)}"
        )
    classes = tuple(found)
    if not presplit:
        files, labels = _gather(root, classes)
        images, _, _ = load_files(files, image_size, channels)
        idx = stratified_split(labels, fractions, seed)
        parts = [
            make_split(images, labels, classes, name, i)
            for name, i in zip(("train", "val", "test"), idx, strict=True)
        ]
        return DatasetSplits(root.name, *parts)

    names = ("train", "val", "test") if (root / "val").is_dir() else ("train", "test")
    loaded: dict[str, ImageDataset] = {}
    for name in names:
        files, labels = _gather(root / name, classes)
        images, image_size, channels = load_files(files, image_size, channels)
        loaded[name] = ImageDataset(images, labels, classes, name)
    if "val" not in loaded:
        train = loaded["train"]
        val_fraction = fractions[1] / (fractions[0] + fractions[1])
        tr, va, _ = stratified_split(train.labels, (1 - val_fraction, val_fraction, 0.0), seed)
        loaded["train"] = make_split(train.images, train.labels, classes, "train", tr)
        loaded["val"] = make_split(train.images, train.labels, classes, "val", va)
    return DatasetSplits(root.name, loaded["train"], loaded["val"], loaded["test"])
