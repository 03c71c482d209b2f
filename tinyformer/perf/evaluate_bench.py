"""`tinyformer bench evaluate`: images per minute of an on-target evaluation, before and after.

Per model (random weights, random int8 images), on one target:
- ``serial``: the former ``evaluate`` loop, one image after another: INPUT over the serial
  link, RUN, READ of the output and the layer counts, then the numpy reference on the stored
  (block-sparse) weights;
- ``bulk``: ``hil.accuracy.run_images``: inputs preloaded where the target can (LOAD), no
  layer counts read, the reference on weights decoded once, beside the target.
Both check every output bit-exact against the reference; a mismatch is an error, not a row.
Rows are keyed by (model, target, mode): a repeat replaces them. Wall-clock speed depends on
the machine's load, so each row also records the cores, the load average, and the CPU seconds
per image of this process and its emulators (QEMU's guest polls the UART, so an emulator burns
a core for as long as its session lasts, idle or not).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from tinyformer.compiler.driver import compile_model, firmware_in
from tinyformer.compiler.firmware import Firmware
from tinyformer.engine import ir, reference
from tinyformer.hil.accuracy import run_images
from tinyformer.hil.errors import HilError
from tinyformer.hil.targets.base import Target
from tinyformer.results import append_rows, now_iso

EVALUATE_BENCH = "evaluate_speed.csv"
KEY = ["model", "target", "mode"]
COLUMNS = [
    *KEY, "images", "input_bytes", "count_per_inference", "seconds", "images_per_minute",
    "speedup", "cpu_s_per_image", "bit_exact", "cores", "load_average", "time",
]  # fmt: skip


def _serial(target: Target, firmware: Firmware, graph: ir.Graph, x: np.ndarray) -> np.ndarray:
    outs = []
    with target.session(firmware) as dev:
        for image in x:
            out = np.frombuffer(dev.run(image.tobytes()).output, np.int8)
            if not np.array_equal(out, reference.outputs(graph, image).reshape(-1)):
                raise HilError(f"{graph.name}: the firmware's output differs from the reference")
            outs.append(out)
    return np.stack(outs)


def _cpu_seconds() -> float:
    """CPU time of this process and of its children that ended (the emulators)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def bench_evaluate(
    target: Target, models: dict[str, tuple[ir.Graph, int]], out: Path
) -> pd.DataFrame:
    """Time each model's number of random images both ways; rows into ``out``."""
    rows = []
    for name, (graph, images) in models.items():
        shape = graph.tensors[graph.inputs[0]].shape
        x = np.random.default_rng(0).integers(-128, 128, (images, *shape), dtype=np.int8)
        with tempfile.TemporaryDirectory(prefix="tinyformer-evaluate-") as tmp:
            ir.save(graph, Path(tmp) / "model.tfir")
            compile_model(Path(tmp) / "model.tfir", Path(tmp) / "out", board=target.board)
            firmware, _ = firmware_in(Path(tmp) / "out", target.board)
            start, cpu = time.perf_counter(), _cpu_seconds()
            serial = _serial(target, firmware, graph, x)
            serial_s, serial_cpu = time.perf_counter() - start, _cpu_seconds() - cpu
            start, cpu = time.perf_counter(), _cpu_seconds()
            runs = run_images(target, firmware, graph, x)
            bulk_s, bulk_cpu = time.perf_counter() - start, _cpu_seconds() - cpu
        if not runs.bit_exact.all() or not np.array_equal(runs.outputs, serial):
            raise HilError(f"{name}: the firmware's output differs from the reference")
        for mode, seconds, cpu in (("serial", serial_s, serial_cpu), ("bulk", bulk_s, bulk_cpu)):
            rows.append({
                "model": name, "target": target.name, "mode": mode, "images": images,
                "input_bytes": x[0].nbytes, "count_per_inference": int(runs.counts[0]),
                "seconds": round(seconds, 2),
                "images_per_minute": round(60 * images / seconds, 1),
                "speedup": round(serial_s / seconds, 2),
                "cpu_s_per_image": round(cpu / images, 4), "bit_exact": True,
                "cores": os.cpu_count(), "load_average": round(os.getloadavg()[0], 2),
                "time": now_iso(),
            })  # fmt: skip
    append_rows(rows, out, COLUMNS, KEY)
    return pd.DataFrame(rows, columns=COLUMNS)
