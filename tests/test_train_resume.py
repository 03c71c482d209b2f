"""`tinyformer train --resume`: a real `tinyformer train` process SIGKILLed in the middle of
its pruning phase resumes from its checkpoint and ends with the model of an uninterrupted
run (same int8 export, same QAT weights, same history); a resume with other settings, a
second run over an interrupted one and a resume of nothing are each refused with one line."""

from __future__ import annotations

import contextlib
import csv
import json
import signal
import subprocess
import sys
from pathlib import Path

import torch
from processes import finish, kill_when
from test_prune import tiny_config  # tests/ is on sys.path (conftest.py)
from typer.testing import CliRunner

from tinyformer.cli import app
from tinyformer.engine import ir
from tinyformer.model import torch_file
from tinyformer.quant.train_state import TRAIN_STATE

# a few epochs in each phase, one thread (bit-exact between runs), the CPU whatever is here
SETTINGS = [
    "--config", tiny_config().to_json(indent=None), "--epochs", "3", "--prune-epochs", "4",
    "--finetune-epochs", "2", "--qat-epochs", "3", "--sparsity", "0.5", "--threads", "1",
    "--device", "cpu", "--no-progress",
]  # fmt: skip


def _train(out: Path, *extra: str) -> subprocess.Popen[bytes]:
    log = open(out.with_suffix(".log"), "ab")  # noqa: SIM115 (closed by the process's end)
    return subprocess.Popen(
        [sys.executable, "-m", "tinyformer.cli", "train", "-o", str(out), *SETTINGS, *extra],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own group: SIGKILL takes everything it started
    )


def _saved_phase(out: Path) -> str | None:
    with contextlib.suppress(FileNotFoundError, ValueError):  # not yet written
        return torch_file.load(out / TRAIN_STATE)["phase"]
    return None


def _history(out: Path) -> list[dict[str, str]]:
    with open(out / "history.csv") as fh:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(fh)]


def test_killed_train_resumes_to_the_uninterrupted_model(tmp_path: Path) -> None:
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    reference = _train(straight, "--json")  # beside the other: one thread each
    proc = _train(killed, "--json")
    # a pruning epoch done, the next under way
    kill_when(proc, lambda: _saved_phase(killed) == "prune", killed.with_suffix(".log"), 240)
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / "model.tfir").exists() and (killed / TRAIN_STATE).exists()
    left = sorted(p.name for p in killed.iterdir() if p.name.endswith(".tmp"))
    assert not left, left  # atomic writes: no half-written file beside the checkpoint

    runner = CliRunner()
    other = runner.invoke(app, ["train", "-o", str(killed), *SETTINGS, "--qat-epochs", "4",
                                "--resume"])  # fmt: skip
    assert other.exit_code == 1
    assert other.output.count("\n") == 1 and "qat_epochs: 3 -> 4" in other.output, other.output
    again = runner.invoke(app, ["train", "-o", str(killed), *SETTINGS])
    assert again.exit_code == 1 and "pass --resume" in again.output, again.output
    assert again.output.count("\n") == 1
    nothing = runner.invoke(app, ["train", "-o", str(tmp_path / "new"), *SETTINGS, "--resume"])
    assert nothing.exit_code == 1 and "no interrupted run" in nothing.output, nothing.output

    resumed = _train(killed, "--json", "--resume")
    finish(resumed, killed.with_suffix(".log"))
    finish(reference, straight.with_suffix(".log"))
    summary = json.loads(killed.with_suffix(".log").read_text().splitlines()[-1])
    assert summary["resumed_after"].startswith("prune epoch ")
    assert not (killed / TRAIN_STATE).exists()  # a finished run leaves only its products

    assert ir.digest(ir.load(killed / "model.tfir")) == ir.digest(ir.load(straight / "model.tfir"))
    a = torch_file.load(straight / "qat.pt")["state_dict"]
    b = torch_file.load(killed / "qat.pt")["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert _history(killed) == _history(straight)
    assert [r["phase"] for r in _history(killed)] == ["float"] * 3 + ["prune"] * 6 + ["qat"] * 3
