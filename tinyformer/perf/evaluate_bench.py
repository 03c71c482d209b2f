"""`tinyformer bench evaluate`: images per minute of an on-target evaluation, before and after.

Per model (random weights, random int8 images), on one target:
- ``serial``: the former ``evaluate`` loop, one image after another: INPUT over the serial
  link, RUN, READ of the output and the layer counts, then the numpy reference on the stored
  (block-sparse) weights;
- ``bulk``: ``hil.accuracy.run_images``: inputs preloaded where the target can (LOAD), no
  layer counts read, the reference on weights decoded once, beside the target.
Both check every output bit-exact against the reference; a mismatch is an error, not a row.
Rows are keyed by (model, target, mode): a repeat replaces them. The emulator's speed depends
on the machine's load, so the row records the cores and the load average it ran with.
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
    "speedup", "bit_exact", "cores", "load_average", "time",
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


def bench_evaluate(
    target: Target, graphs: dict[str, ir.Graph], out: Path, images: int = 40
) -> pd.DataFrame:
    """Time ``images`` random images of each model both ways; rows into ``out``."""
    rows = []
    for name, graph in graphs.items():
        shape = graph.tensors[graph.inputs[0]].shape
        x = np.random.default_rng(0).integers(-128, 128, (images, *shape), dtype=np.int8)
        with tempfile.TemporaryDirectory(prefix="tinyformer-evaluate-") as tmp:
            ir.save(graph, Path(tmp) / "model.tfir")
            compile_model(Path(tmp) / "model.tfir", Path(tmp) / "out", board=target.board)
            firmware, _ = firmware_in(Path(tmp) / "out", target.board)
            start = time.perf_counter()
            serial = _serial(target, firmware, graph, x)
            serial_s = time.perf_counter() - start
            start = time.perf_counter()
            runs = run_images(target, firmware, graph, x)
            bulk_s = time.perf_counter() - start
        if not runs.bit_exact.all() or not np.array_equal(runs.outputs, serial):
            raise HilError(f"{name}: the firmware's output differs from the reference")
        for mode, seconds in (("serial", serial_s), ("bulk", bulk_s)):
            rows.append({
                "model": name, "target": target.name, "mode": mode, "images": images,
                "input_bytes": x[0].nbytes, "count_per_inference": int(runs.counts[0]),
                "seconds": round(seconds, 2),
                "images_per_minute": round(60 * images / seconds, 1),
                "speedup": round(serial_s / seconds, 2), "bit_exact": True,
                "cores": os.cpu_count(), "load_average": round(os.getloadavg()[0], 2),
                "time": now_iso(),
            })  # fmt: skip
    append_rows(rows, out, COLUMNS, KEY)
    return pd.DataFrame(rows, columns=COLUMNS)
