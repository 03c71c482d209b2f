"""A user's input file turned into a model's int8 input (`tinyformer run --input FILE`).

- ``.npy`` int8: the input codes themselves, in the model's input shape (a leading batch of
  1 allowed);
- ``.npy`` float: real values in that shape, quantised with the input's scale and zero point;
- ``.npy`` uint8 or an image file (PNG, JPEG, BMP, PGM/PPM, ...): an image, converted as
  training and ``evaluate`` convert data: to the model's channels (luminance or RGB), resized
  to its square size (antialiased bilinear), pixel - 128.

Anything else, or a shape that cannot become the model's, is one clear error.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tinyformer.data.datasets import DatasetError
from tinyformer.data.folder import (
    SUPPORTED_SUFFIXES,
    convert_channels,
    read_image,
    resize,
)
from tinyformer.engine.ir import Graph


def model_input(images: np.ndarray) -> np.ndarray:
    """uint8 NHWC images -> the graph's int8 input codes (q = pixel - 128)."""
    return (np.asarray(images, np.int16) - 128).astype(np.int8)


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


def _image_input(image: np.ndarray, shape: tuple[int, ...], path: Path) -> np.ndarray:
    if len(shape) != 3 or shape[0] != shape[1] or shape[2] not in (1, 3):
        raise ValueError(
            f"{path}: an image, but the model's input is {_shape(shape)}, not an image "
            "(H x W x 1|3): give a .npy of that shape (int8 codes or float values)"
        )
    return model_input(resize(convert_channels(image, shape[2]), shape[0]))


def read_input(path: Path, graph: Graph) -> np.ndarray:
    """The int8 input of ``graph`` from the file at ``path``."""
    path = Path(path)
    tensor = graph.tensors[graph.inputs[0]]
    shape = tuple(tensor.shape)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such input file")
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise ValueError(
            f"{path}: unsupported input file {suffix or '(no suffix)'}; give a .npy tensor or "
            "an image (" + ", ".join(SUPPORTED_SUFFIXES) + ")"
        )
    if suffix != ".npy":
        try:
            return _image_input(read_image(path), shape, path)
        except DatasetError as exc:
            raise ValueError(str(exc)) from None
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise ValueError(f"{path}: not a readable .npy file ({exc})") from None
    if data.dtype == np.uint8:
        image = data[..., None] if data.ndim == 2 else data
        if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
            raise ValueError(
                f"{path}: uint8 {_shape(data.shape)} is not an image [H, W] or [H, W, 1|3|4]"
            )
        return _image_input(image[..., :3], shape, path)
    squeezed = data[0] if data.ndim == len(shape) + 1 and data.shape[0] == 1 else data
    if tuple(squeezed.shape) != shape:
        raise ValueError(
            f"{path}: {data.dtype} tensor of shape {_shape(data.shape)}, the model's input is "
            f"{_shape(shape)} ({tensor.dtype})"
        )
    if data.dtype == np.int8:
        return np.ascontiguousarray(squeezed)
    if np.issubdtype(data.dtype, np.floating):
        if not np.isfinite(squeezed).all():
            raise ValueError(f"{path}: the tensor holds NaN or infinite values")
        q = np.rint(squeezed / tensor.scale) + tensor.zero_point
        return np.clip(q, -128, 127).astype(np.int8)
    raise ValueError(f"{path}: dtype {data.dtype}; give int8 codes, float values or a uint8 image")
