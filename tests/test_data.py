"""Data sets: fixed seeded splits, CIFAR-10 files, image folders, augmentation, batching."""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from tinyformer.data import (
    Augment,
    DatasetError,
    ImageDataset,
    iterate_batches,
    load_cifar10_splits,
    load_dataset,
    load_digits_splits,
    load_folder_splits,
    random_crop,
    random_hflip,
    to_model_input,
)
from tinyformer.data.cifar10 import CIFAR10_CLASSES, TEST_FILE, TRAIN_FILES
from tinyformer.data.cifar_standin import (
    batch_files,
    pickle_py2,
    standin_images,
    to_rows,
    write_files,
    write_standin,
)
from tinyformer.data.datasets import stratified_split
from tinyformer.data.digits import digits_arrays

# ----------------------------------------------------------------------------- digits


def test_digits_split_is_fixed_disjoint_and_complete() -> None:
    a, b = load_digits_splits(), load_digits_splits()
    for sa, sb in zip(a.splits(), b.splits(), strict=True):
        np.testing.assert_array_equal(sa.indices, sb.indices)
    idx = [s.indices for s in a.splits()]
    assert [len(i) for i in idx] == [1259, 179, 359]
    everything = np.concatenate(idx)
    assert len(np.unique(everything)) == 1797 == len(everything)
    # Pinned: the split must never change silently (results in results/ depend on it).
    assert a.test.indices[:8].tolist() == [1119, 315, 1218, 1308, 1441, 1306, 1226, 1434]
    assert a.train.indices[:4].tolist() == [321, 1344, 1497, 100]


def test_digits_split_contents_match_source() -> None:
    images, labels = digits_arrays()
    splits = load_digits_splits()
    assert splits.image_shape == (8, 8, 1) and splits.num_classes == 10
    for s in splits.splits():
        assert s.images.dtype == np.uint8
        np.testing.assert_array_equal(s.images, images[s.indices])
        np.testing.assert_array_equal(s.labels, labels[s.indices])
        assert set(np.unique(s.labels)) == set(range(10))  # stratified: every class everywhere
    assert images.max() == 255 and images.min() == 0


def test_digits_seed_changes_split() -> None:
    other = load_digits_splits(seed=1)
    assert not np.array_equal(other.test.indices, load_digits_splits().test.indices)


def test_stratified_split_rejects_bad_fractions() -> None:
    with pytest.raises(ValueError, match="fractions"):
        stratified_split(np.zeros(10, np.int64), (0.5, 0.5, 0.5), 0)


def test_load_dataset_by_name() -> None:
    assert load_dataset().name == "digits"
    with pytest.raises(DatasetError, match="unknown data set 'mnist'"):
        load_dataset("mnist")
    with pytest.raises(DatasetError, match="needs a root"):
        load_dataset("cifar10")
    with pytest.raises(DatasetError, match="apply to image folders only"):
        load_dataset("digits", image_size=8)


# ----------------------------------------------------------------------------- CIFAR-10


def _dump_py2_style(obj: dict, path: Path) -> None:
    path.write_bytes(pickle_py2(obj))


def write_cifar_fixture(root: Path, per_batch: int = 6, test_count: int = 7) -> dict:
    """A small ``cifar-10-batches-py`` folder of random images in the CIFAR-10 python format."""
    rng = np.random.default_rng(3)
    written: dict[str, tuple[np.ndarray, list[int]]] = {}
    for name in [*TRAIN_FILES, TEST_FILE]:
        n = test_count if name == TEST_FILE else per_batch
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        written[name] = (data, [int(v) for v in rng.integers(0, 10, n)])
    train = [(written[f][0], np.array(written[f][1])) for f in TRAIN_FILES]
    test = written[TEST_FILE][0], np.array(written[TEST_FILE][1])
    write_files(root, batch_files(train, test))
    return written


def _rows_to_nhwc(data: np.ndarray) -> np.ndarray:
    # Each row: 1024 red, then 1024 green, then 1024 blue bytes, each plane row-major 32x32.
    out = np.zeros((len(data), 32, 32, 3), np.uint8)
    for n, row in enumerate(data):
        for c in range(3):
            for i in range(32):
                out[n, i, :, c] = row[c * 1024 + i * 32 : c * 1024 + (i + 1) * 32]
    return out


def test_cifar_fixture_round_trip(tmp_path: Path) -> None:
    written = write_cifar_fixture(tmp_path)
    for root in (tmp_path, tmp_path / "cifar-10-batches-py"):  # parent or the folder itself
        splits = load_cifar10_splits(root, val_fraction=0.2)
        assert splits.classes == CIFAR10_CLASSES
        assert splits.image_shape == (32, 32, 3)
        assert (len(splits.train), len(splits.val), len(splits.test)) == (24, 6, 7)
        train_data = np.concatenate([written[f"data_batch_{i}"][0] for i in range(1, 6)])
        train_labels = np.concatenate([written[f"data_batch_{i}"][1] for i in range(1, 6)])
        all_images = _rows_to_nhwc(train_data)
        for s in (splits.train, splits.val):
            np.testing.assert_array_equal(s.images, all_images[s.indices])
            np.testing.assert_array_equal(s.labels, train_labels[s.indices])
        assert set(splits.train.indices).isdisjoint(splits.val.indices)
        np.testing.assert_array_equal(splits.test.images, _rows_to_nhwc(written["test_batch"][0]))
        assert splits.test.labels.tolist() == written["test_batch"][1]
    again = load_dataset("cifar10", tmp_path, val_fraction=0.2)
    np.testing.assert_array_equal(again.val.indices, splits.val.indices)


def test_cifar_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="CIFAR-10 folder not found"):
        load_cifar10_splits(tmp_path / "nowhere")


def test_cifar_missing_batch_file(tmp_path: Path) -> None:
    write_cifar_fixture(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DatasetError, match="missing data_batch_3"):
        load_cifar10_splits(tmp_path)


@pytest.mark.parametrize(
    "content",
    [b"this is not a pickle", b"", b"\x80\x02}q\x00(U\x04data"],  # garbage, empty, truncated
)
def test_cifar_corrupt_pickle(tmp_path: Path, content: bytes) -> None:
    write_cifar_fixture(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_2").write_bytes(content)
    with pytest.raises(DatasetError, match=r"corrupt CIFAR-10 file .*data_batch_2"):
        load_cifar10_splits(tmp_path)


def test_cifar_wrong_shape_and_labels(tmp_path: Path) -> None:
    write_cifar_fixture(tmp_path)
    batch = tmp_path / "cifar-10-batches-py" / "test_batch"
    _dump_py2_style({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, batch)
    with pytest.raises(DatasetError, match=r"uint8 \[N, 3072\]"):
        load_cifar10_splits(tmp_path)
    _dump_py2_style({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 12]}, batch)
    with pytest.raises(DatasetError, match="labels outside"):
        load_cifar10_splits(tmp_path)


def test_cifar_refuses_code_in_pickle(tmp_path: Path) -> None:
    write_cifar_fixture(tmp_path)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (tmp_path / "cifar-10-batches-py" / "data_batch_1").write_bytes(pickle.dumps(Evil()))
    with pytest.raises(DatasetError, match=r"refusing to load global builtins\.print"):
        load_cifar10_splits(tmp_path)


def test_standin_is_deterministic_official_and_learnable(tmp_path: Path) -> None:
    a = write_standin(tmp_path / "a", per_batch=40, test_count=50, seed=1, archive=True)
    b = write_standin(tmp_path / "b", per_batch=40, test_count=50, seed=1, archive=True)
    c = write_standin(tmp_path / "c", per_batch=40, test_count=50, seed=2, archive=True)
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()
    with tarfile.open(a) as tar:  # the download's layout
        assert sorted(tar.getnames()) == sorted(
            ["cifar-10-batches-py", *(f"cifar-10-batches-py/{f}" for f in (
                *TRAIN_FILES, TEST_FILE, "batches.meta"))]
        )  # fmt: skip
    folder = write_standin(tmp_path / "d", per_batch=40, test_count=50, seed=1)
    from_folder, from_archive = load_cifar10_splits(folder), load_cifar10_splits(a)
    for x, y in zip(from_folder.splits(), from_archive.splits(), strict=True):
        np.testing.assert_array_equal(x.images, y.images)
        np.testing.assert_array_equal(x.labels, y.labels)
    assert np.bincount(from_folder.test.labels).tolist() == [5] * 10

    # learnable: nearest class mean of 4x4-pooled colours, far above chance (10 %)
    def features(images: np.ndarray) -> np.ndarray:
        return images.reshape(len(images), 8, 4, 8, 4, 3).mean((2, 4)).reshape(len(images), -1)

    train, test = from_folder.train, from_folder.test
    means = np.stack([features(train.images[train.labels == k]).mean(0) for k in range(10)])
    dist = ((features(test.images)[:, None] - means[None]) ** 2).sum(-1)
    assert (dist.argmin(1) == test.labels).mean() >= 0.5


def test_rows_layout_is_cifars() -> None:
    images, _ = standin_images(3, 0)
    np.testing.assert_array_equal(_rows_to_nhwc(to_rows(images)), images)


def test_cifar_archive_where_users_put_it(tmp_path: Path) -> None:
    archive = write_standin(tmp_path, per_batch=10, test_count=10, archive=True)
    direct = load_dataset("cifar10", archive)
    beside = load_dataset("cifar10", tmp_path)  # the folder the download landed in
    np.testing.assert_array_equal(direct.train.images, beside.train.images)
    (tmp_path / "other").mkdir()
    with pytest.raises(DatasetError, match="CIFAR-10 folder not found"):
        load_dataset("cifar10", tmp_path / "other" / "cifar-10-python.tar.gz")


def _tar_gz(path: Path, members: list[tuple[str, bytes | None]]) -> None:
    """An archive of (name, content) members; content None: a symlink."""
    with tarfile.open(path, "w:gz") as tar:
        for name, raw in members:
            info = tarfile.TarInfo(name)
            if raw is None:
                info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
                tar.addfile(info)
            else:
                info.size = len(raw)
                tar.addfile(info, io.BytesIO(raw))


def _damaged_archives(tmp_path: Path) -> dict[str, tuple[bytes, str]]:
    good = write_standin(tmp_path / "good", per_batch=4, test_count=4, archive=True).read_bytes()
    files = batch_files(
        [(to_rows(standin_images(4, i)[0]), np.arange(4)) for i in range(5)],
        (to_rows(standin_images(4, 9)[0]), np.arange(4)),
    )
    members = [(f"cifar-10-batches-py/{k}", v) for k, v in files.items()]
    cases: dict[str, tuple[bytes, str]] = {
        "truncated": (good[: len(good) // 2], "EOFError: Compressed file ended"),
        "bad crc": (good[:-8] + bytes([good[-8] ^ 1]) + good[-7:], "BadGzipFile: CRC check failed"),
        "not gzip": (b"PK\x03\x04 a zip file", "Not a gzipped file"),
        "empty": (b"", "ReadError: empty file"),
    }
    for name, edit, why in (
        ("missing", lambda m: [x for x in m if not x[0].endswith("_4")], "no .*data_batch_4"),
        ("symlink", lambda m: [(n, None if n.endswith("test_batch") else r) for n, r in m],
         "test_batch is not a regular file"),
        ("twice", lambda m: [*m, m[0]], "appears twice"),
        ("lying", lambda m: [(n, b"garbage" if n.endswith("_2") else r) for n, r in m],
         r"corrupt CIFAR-10 file .*tar\.gz:cifar-10-batches-py/data_batch_2"),
    ):  # fmt: skip
        _tar_gz(tmp_path / "x.tar.gz", edit(members))
        cases[name] = ((tmp_path / "x.tar.gz").read_bytes(), why)
    return cases


def test_cifar_damaged_archive_is_one_line(tmp_path: Path) -> None:
    for name, (raw, why) in _damaged_archives(tmp_path).items():
        path = tmp_path / name / "cifar-10-python.tar.gz"
        path.parent.mkdir()
        path.write_bytes(raw)
        with pytest.raises(DatasetError, match=why) as info:
            load_cifar10_splits(path.parent)
        assert "\n" not in str(info.value), name
        if name != "lying":
            assert str(info.value).startswith(f"damaged CIFAR-10 archive {path}: "), name


# ----------------------------------------------------------------------------- image folders


def _write_pgm(path: Path, image: np.ndarray) -> None:
    h, w = image.shape
    path.write_bytes(b"P5\n# a comment\n%d %d\n255\n" % (w, h) + image.tobytes())


def test_folder_npy_and_pgm(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    expected: dict[str, list[np.ndarray]] = {"cat": [], "dog": []}
    for cls in expected:
        (tmp_path / cls).mkdir()
        for i in range(10):
            img = rng.integers(0, 256, (6, 6), dtype=np.uint8)
            expected[cls].append(img)
            if i % 2:
                np.save(tmp_path / cls / f"{i:02d}.npy", img)
            else:
                _write_pgm(tmp_path / cls / f"{i:02d}.pgm", img)
    (tmp_path / "cat" / "notes.txt").write_text("ignored")
    splits = load_folder_splits(tmp_path)
    assert splits.classes == ("cat", "dog") and splits.image_shape == (6, 6, 1)
    assert sum(len(s) for s in splits.splits()) == 20
    source = np.stack(expected["cat"] + expected["dog"])[..., None]
    for s in splits.splits():
        np.testing.assert_array_equal(s.images, source[s.indices])
        np.testing.assert_array_equal(s.labels, s.indices // 10)
    resized = load_folder_splits(tmp_path, image_size=4, channels=3)
    assert resized.image_shape == (4, 4, 3)
    np.testing.assert_array_equal(resized.train.images[..., 0], resized.train.images[..., 2])


def test_folder_presplit_layout_and_png(tmp_path: Path) -> None:
    pil = pytest.importorskip("PIL.Image")
    for split, count in (("train", 6), ("test", 3)):
        for cls, colour in (("red", (255, 0, 0)), ("blue", (0, 0, 255))):
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(count):
                pil.new("RGB", (12, 12), colour).save(tmp_path / split / cls / f"{i}.png")
    splits = load_folder_splits(tmp_path, image_size=8)
    assert splits.classes == ("blue", "red") and splits.image_shape == (8, 8, 3)
    assert (len(splits.train) + len(splits.val), len(splits.test)) == (12, 6)
    assert len(splits.val) > 0
    red = splits.test.images[splits.test.labels == 1]
    assert (red[..., 0] == 255).all() and (red[..., 2] == 0).all()
    gray = load_folder_splits(tmp_path, image_size=8, channels=1)
    assert set(np.unique(gray.test.images)) == {29, 76}  # ITU-R 601 luma of blue and red


def test_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="image folder not found"):
        load_folder_splits(tmp_path / "missing")
    (tmp_path / "only").mkdir()
    np.save(tmp_path / "only" / "a.npy", np.zeros((4, 4), np.uint8))
    with pytest.raises(DatasetError, match="at least 2 class"):
        load_folder_splits(tmp_path)
    (tmp_path / "other").mkdir()
    np.save(tmp_path / "other" / "b.npy", np.zeros((5, 5), np.uint8))
    with pytest.raises(DatasetError, match="pass image_size"):
        load_folder_splits(tmp_path)
    np.save(tmp_path / "other" / "c.npy", np.zeros((5, 5), np.float32))
    with pytest.raises(DatasetError, match="must be uint8"):
        load_folder_splits(tmp_path, image_size=4)


# ----------------------------------------------------------------------------- augmentation


def _batch(seed: int = 0, n: int = 5, c: int = 3, size: int = 8) -> torch.Tensor:
    return torch.rand(n, c, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("padding", [1, 2, 4])
def test_random_crop_is_a_shifted_window(padding: int) -> None:
    x = _batch()
    y = random_crop(x, padding, torch.Generator().manual_seed(1))
    assert y.shape == x.shape
    padded = torch.nn.functional.pad(x, (padding,) * 4)
    for n in range(len(x)):
        windows = [
            padded[n, :, i : i + 8, j : j + 8]
            for i in range(2 * padding + 1)
            for j in range(2 * padding + 1)
        ]
        assert any(torch.equal(y[n], w) for w in windows)


def test_augment_is_deterministic_per_generator_state() -> None:
    x = _batch(n=16)
    aug = Augment(crop_padding=2, hflip=True)
    a = aug(x, torch.Generator().manual_seed(7))
    b = aug(x, torch.Generator().manual_seed(7))
    c = aug(x, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(random_crop(x, 0, torch.Generator()), x)


def test_random_hflip() -> None:
    x = _batch(n=64)
    gen = torch.Generator().manual_seed(0)
    assert torch.equal(random_hflip(x, gen, p=1.0), x.flip(-1))
    assert torch.equal(random_hflip(x, gen, p=0.0), x)
    y = random_hflip(x, gen)
    flipped = [torch.equal(y[i], x[i].flip(-1)) for i in range(64)]
    kept = [torch.equal(y[i], x[i]) for i in range(64)]
    assert all(f or k for f, k in zip(flipped, kept, strict=True))
    assert 10 < sum(flipped) < 54


# ----------------------------------------------------------------------------- batching


def test_batches_cover_every_sample_once() -> None:
    images = torch.arange(10, dtype=torch.uint8).reshape(10, 1, 1, 1)
    labels = torch.arange(10)
    gen = torch.Generator().manual_seed(0)
    seen = []
    for x, y in iterate_batches(images, labels, 4, shuffle=True, generator=gen):
        assert torch.equal((x[:, 0, 0, 0] * 255).round().long(), y)
        seen += y.tolist()
    assert sorted(seen) == list(range(10)) and seen != list(range(10))
    assert len(list(iterate_batches(images, labels, 4, drop_last=True))) == 2


def test_dataset_container_validates() -> None:
    with pytest.raises(DatasetError, match=r"uint8 \[N, H, W, C\]"):
        ImageDataset(np.zeros((2, 4, 4, 1), np.float32), np.zeros(2), ("a", "b"), "train")
    with pytest.raises(DatasetError, match="labels outside"):
        ImageDataset(np.zeros((2, 4, 4, 1), np.uint8), np.array([0, 2]), ("a", "b"), "train")
    ds = ImageDataset(np.zeros((5, 4, 4, 1), np.uint8), np.zeros(5), ("a", "b"), "train")
    assert ds.indices.tolist() == [0, 1, 2, 3, 4] and len(ds.subset(3)) == 3


def test_model_input_scaling() -> None:
    nhwc = np.array([[[[0], [128], [255]]]], np.uint8)
    x = to_model_input(nhwc)
    assert x.shape == (1, 1, 1, 3) and x.dtype == torch.float32
    assert torch.allclose(x.flatten(), torch.tensor([0.0, 128 / 255, 1.0]))
