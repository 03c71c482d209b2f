"""`tinyformer bench link`: inferences over a link that damages bytes, at set error rates.

The real firmware runs under QEMU behind a LossyProxy; the model is a conv + transformer
hybrid whose memory plan overwrites its input, as real models' plans do. Every accepted output
is compared with the numpy reference: `wrong_accepted` must be 0 at every rate. An inference
the harness gives up on is a `clean_error` (one clear line), never a wrong number.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from tinyformer.compiler.driver import compile_model, firmware_in
from tinyformer.compiler.firmware import Firmware
from tinyformer.engine import ir, reference
from tinyformer.engine.builder import random_hybrid_graph
from tinyformer.hil.errors import HilError
from tinyformer.hil.lossy_link import LinkFaults
from tinyformer.hil.targets.base import Target
from tinyformer.hil.targets.qemu import QemuTarget
from tinyformer.results import now_iso, write_atomic

RATES = (0.0, 1e-4, 1e-3, 1e-2)
DIRECTIONS = {"to-device": (1, 0), "to-host": (0, 1), "both": (1, 1)}
LINK_BENCH = "link.csv"


def _faults(rate: float, direction: str, seed: int) -> LinkFaults:
    down, up = DIRECTIONS[direction]
    return LinkFaults(to_device=rate * down, to_host=rate * up, seed=seed)


def bench_link(
    target: Target, out: Path, inferences: int = 30, rates: tuple[float, ...] = RATES
) -> pd.DataFrame:
    if not isinstance(target, QemuTarget):
        raise HilError("bench link runs on QEMU: its damaging proxy sits on QEMU's UART socket")
    graph = random_hybrid_graph(seed=0)
    shape = graph.tensors[graph.inputs[0]].shape
    rng = np.random.default_rng(0)
    inputs = [rng.integers(-128, 128, shape, dtype=np.int8) for _ in range(inferences)]
    expected = [reference.outputs(graph, x).astype(np.int8).tobytes() for x in inputs]
    rows = []
    with tempfile.TemporaryDirectory(prefix="tinyformer-link-") as tmp:
        ir.save(graph, Path(tmp) / "model.tfir")
        compile_model(Path(tmp) / "model.tfir", Path(tmp) / "out", board=target.board)
        firmware, _ = firmware_in(Path(tmp) / "out", target.board)
        for seed, (rate, direction) in enumerate(
            (r, d) for r in rates for d in (DIRECTIONS if r else ["both"])
        ):
            lossy = QemuTarget(
                target.qemu, reply_timeout=0.5, link_faults=_faults(rate, direction, seed)
            )
            rows.append(_bench_one(lossy, firmware, inputs, expected) | {
                "byte_error_rate": rate, "direction": direction,
            })  # fmt: skip
    table = pd.DataFrame(rows)
    first = ["byte_error_rate", "direction", "tried", "correct", "clean_errors", "wrong_accepted"]
    table = table[first + [c for c in table.columns if c not in first]]
    table["time"] = now_iso()
    write_atomic(table, out)
    return table


def _bench_one(
    target: QemuTarget, firmware: Firmware, inputs: list[np.ndarray], expected: list[bytes]
) -> dict[str, object]:
    correct = wrong = clean = 0
    stats = {"resends": 0, "damaged_frames": 0, "restarts": 0}
    start = time.monotonic()
    try:
        with target.session(firmware) as dev:
            for x, want in zip(inputs, expected, strict=True):
                try:
                    got = dev.run(x.tobytes()).output
                except HilError:
                    clean += 1
                    continue
                correct += got == want
                wrong += got != want
            stats = {"resends": dev.resends, "damaged_frames": dev.damaged,
                     "restarts": dev.restarts}  # fmt: skip
    except HilError:  # the session itself failed (handshake): every untried one is clean
        clean = len(inputs) - correct - wrong
    seconds = time.monotonic() - start
    proxy = target.proxy
    assert proxy is not None
    return {
        "tried": len(inputs),
        "correct": correct,
        "clean_errors": clean,
        "wrong_accepted": wrong,
        "inferences_per_s": round(len(inputs) / seconds, 2),
        "bytes_to_device": proxy.to_device.passed,
        "damaged_to_device": proxy.to_device.damaged,
        "bytes_to_host": proxy.to_host.passed,
        "damaged_to_host": proxy.to_host.damaged,
        **stats,
    }
