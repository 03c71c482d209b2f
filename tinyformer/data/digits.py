"""The embedded default data set: scikit-learn's handwritten digits (1797 real 8x8 images).

The images ship inside scikit-learn, so this data set needs no download. Pixel values 0..16 are
rescaled to uint8 0..255; the split is stratified, seeded and the same on every call.
"""

from __future__ import annotations

import numpy as np

from tinyformer.data.datasets import DatasetSplits, make_split, stratified_split

DIGITS_SEED = 0
DIGITS_FRACTIONS = (0.7, 0.1, 0.2)
DIGITS_CLASSES = tuple(str(i) for i in range(10))


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """All 1797 digits as uint8 [N, 8, 8, 1] images and int64 labels, in scikit-learn order."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    # 0..16 -> 0..255 with rounding; 16 * 255 / 16 = 255 exactly, so nothing saturates.
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    return images, bunch.target.astype(np.int64)


def load_digits_splits(
    seed: int = DIGITS_SEED, fractions: tuple[float, float, float] = DIGITS_FRACTIONS
) -> DatasetSplits:
    """Digits as train / val / test (default 70 / 10 / 20 %, stratified, seed 0)."""
    images, labels = digits_arrays()
    idx = stratified_split(labels, fractions, seed)
    parts = [
        make_split(images, labels, DIGITS_CLASSES, name, i)
        for name, i in zip(("train", "val", "test"), idx, strict=True)
    ]
    return DatasetSplits("digits", *parts)
