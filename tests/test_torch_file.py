"""Torch files (subnets, supernet and QAT checkpoints): atomic writes, one-line read errors."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from tinyformer.model import torch_file
from tinyformer.model.config import SupernetSpace
from tinyformer.model.subnet import Subnet, load_subnet, save_subnet


class Opaque:  # a pickled class instance: weights_only refuses to run its code
    pass


def test_round_trip_leaves_no_temporary(tmp_path) -> None:
    path = torch_file.save({"w": torch.arange(4), "meta": {"a": 1}}, tmp_path / "f.pt")
    data = torch_file.load(path)
    assert data["meta"] == {"a": 1} and data["w"].tolist() == [0, 1, 2, 3]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.pt"]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"not a torch file at all", "is not a torch file"),
        (b"\x80\x02garbage", "not a file TinyFormer wrote"),  # a pickle, but not of data
        (None, "not a pickle of tensors and plain data only"),  # a pickled object
        ("truncated", "truncated or corrupt"),
    ],
    ids=["text", "pickle", "object", "truncated"],
)
def test_unreadable_files_are_one_clear_line(tmp_path, content, reason) -> None:
    path = tmp_path / "x.pt"
    if content is None:
        torch.save({"obj": Opaque()}, path)
    elif content == "truncated":
        torch_file.save({"w": torch.zeros(1000)}, path)
        path.write_bytes(path.read_bytes()[:3000])
    else:
        path.write_bytes(content)
    with pytest.raises(torch_file.TorchFileError, match=reason) as err:
        torch_file.load(path)
    # not torch's page advising weights_only=False for a file of unknown origin
    assert "weights_only" not in str(err.value) and "\n" not in str(err.value)


def test_missing_file_stays_file_not_found(tmp_path) -> None:
    with pytest.raises(FileNotFoundError):
        torch_file.load(tmp_path / "absent.pt")


def test_subnet_file_round_trip(tmp_path) -> None:
    subnet = Subnet.from_config(SupernetSpace.for_dataset("digits").smallest())
    save_subnet(subnet, tmp_path / "subnet.pt")
    again = load_subnet(tmp_path / "subnet.pt")
    assert again.config == subnet.config


def test_export_of_a_file_that_is_no_checkpoint_is_one_line(tmp_path) -> None:
    (tmp_path / "notes.pt").write_text("hello")
    proc = subprocess.run(
        [sys.executable, "-m", "tinyformer.cli", "export", "notes.pt", "-o", "out"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "notes.pt is not a torch file" in proc.stderr and "qat.pt" in proc.stderr
    assert "Traceback" not in proc.stderr and "weights_only" not in proc.stderr


def test_export_of_a_folder_is_one_line(tmp_path) -> None:
    (tmp_path / "qat.pt").mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "tinyformer.cli", "export", "qat.pt", "-o", "out"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "error: qat.pt: Is a directory" in proc.stderr and "Traceback" not in proc.stderr
