"""`run --input FILE`: a .npy tensor or an image, converted to the model's int8 input; a file
that cannot become it is one clear error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tinyformer.data.folder import convert_channels, resize
from tinyformer.engine.builder import random_hybrid_graph
from tinyformer.engine.demo import demo_graph
from tinyformer.quant.input_file import model_input, read_input

IMAGE_MODEL = random_hybrid_graph(seed=0, size=12, channels=1)  # input 12x12x1
TOKENS = demo_graph(0)  # input 64x96 int8, not an image


def test_int8_codes_are_taken_as_they_are(tmp_path: Path) -> None:
    x = np.random.default_rng(0).integers(-128, 128, (64, 96), dtype=np.int8)
    np.save(tmp_path / "x.npy", x)
    assert np.array_equal(read_input(tmp_path / "x.npy", TOKENS), x)
    np.save(tmp_path / "batch.npy", x[None])  # a batch of one
    assert np.array_equal(read_input(tmp_path / "batch.npy", TOKENS), x)


def test_float_values_are_quantised_with_the_inputs_scale(tmp_path: Path) -> None:
    t = TOKENS.tensors[TOKENS.inputs[0]]
    codes = np.random.default_rng(1).integers(-128, 128, (64, 96))
    real = (codes - t.zero_point) * t.scale
    real[0, 0] = 1e9  # saturates
    np.save(tmp_path / "x.npy", real.astype(np.float32))
    got = read_input(tmp_path / "x.npy", TOKENS)
    assert got.dtype == np.int8 and got[0, 0] == 127
    assert np.array_equal(got.ravel()[1:], codes.ravel()[1:])


def test_images_become_the_models_size_channels_and_codes(tmp_path: Path) -> None:
    rgb = np.random.default_rng(2).integers(0, 256, (30, 20, 3), dtype=np.uint8)
    expected = model_input(resize(convert_channels(rgb, 1), 12))
    Image.fromarray(rgb).save(tmp_path / "photo.png")
    np.save(tmp_path / "photo.npy", rgb)
    for name in ("photo.png", "photo.npy"):
        got = read_input(tmp_path / name, IMAGE_MODEL)
        assert got.shape == (12, 12, 1) and got.dtype == np.int8
        assert np.array_equal(got, expected)


@pytest.mark.parametrize(
    ("name", "data", "graph", "message"),
    [
        ("short.npy", np.zeros((3, 3), np.int8), TOKENS, "shape 3x3, the model's input is 64x96"),
        ("photo.npy", np.zeros((8, 8), np.uint8), TOKENS, "not an image"),
        ("ints.npy", np.zeros((64, 96), np.int32), TOKENS, "dtype int32"),
        ("nan.npy", np.full((64, 96), np.nan, np.float32), TOKENS, "NaN"),
        ("input.txt", None, TOKENS, "unsupported input file .txt"),
        ("broken.npy", None, TOKENS, "not a readable .npy"),
        ("broken.png", None, IMAGE_MODEL, "cannot decode image"),
    ],
)
def test_a_file_that_cannot_be_the_input_is_one_clear_error(
    tmp_path: Path, name: str, data: np.ndarray | None, graph: object, message: str
) -> None:
    path = tmp_path / name
    if data is None:
        path.write_bytes(b"not this")
    else:
        np.save(path, data)
    with pytest.raises(ValueError, match=message) as err:
        read_input(path, graph)  # type: ignore[arg-type]
    assert "\n" not in str(err.value)


def test_a_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such input file"):
        read_input(tmp_path / "gone.npy", TOKENS)
