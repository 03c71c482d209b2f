"""Reproduce the CMSIS-NN baseline of the kernel bench from a CMSIS-NN checkout of your own.

``perf/kernel_bench.py`` divides constants (``CMSIS_NN``) by our kernels' counts. This bench
measures the linear ones again: for each shape it compiles the demo linear layer as usual,
then swaps the generated call for CMSIS-NN's ``arm_fully_connected_s8`` (per-tensor
quantization, the same weights and bias, the batch as tokens), builds the CMSIS-NN sources
from ``root`` into the same firmware with the same compiler and flags, and counts the
inference on the same target. CMSIS-NN is not a dependency and nothing is downloaded: give
the folder of a checkout (https://github.com/ARM-software/CMSIS-NN). The other shapes of
``CMSIS_NN`` (convolutions, depthwise, Q.K^T) are not re-measured here.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from tinyformer.compiler.firmware import DEFAULT_STACK, Firmware, build
from tinyformer.engine.codegen import generate
from tinyformer.engine.demo import demo_graph
from tinyformer.engine.ir import Graph
from tinyformer.hil.measure import measure
from tinyformer.hil.targets.base import Target
from tinyformer.perf.kernel_bench import CMSIS_NN, LINEAR_SHAPES
from tinyformer.results import now_iso, write_atomic

CMSIS_NN_BENCH = "cmsis_nn.csv"
SOURCES = (
    "Source/FullyConnectedFunctions/arm_fully_connected_s8.c",
    "Source/NNSupportFunctions/arm_nn_vec_mat_mult_t_s8.c",
)
HEADER = "Include/arm_nnfunctions.h"
RUN = "void tf_model_run(void)"


def check_checkout(root: Path) -> None:
    missing = [p for p in (HEADER, *SOURCES) if not (Path(root) / p).is_file()]
    if missing:
        raise ValueError(
            f"{root} is not a CMSIS-NN checkout: no {', '.join(missing)} "
            "(git clone https://github.com/ARM-software/CMSIS-NN)"
        )


def harness(graph: Graph) -> str:
    """The generated model.c of the linear ``graph``, its layer run by CMSIS-NN instead."""
    (node,) = graph.nodes
    tokens, depth = graph.tensors[node.inputs[0]].shape
    rows = graph.tensors[node.outputs[0]].shape[-1]
    source = generate(graph).render()
    if source.count(RUN) != 1 or '#include "tf_fully_connected_s8.h"' not in source:
        raise ValueError("the generated model.c has changed shape: update perf/cmsis_nn.py")
    head = source.split(RUN)[0].replace(
        '#include "tf_fully_connected_s8.h"', '#include "arm_nnfunctions.h"'
    )
    c = f"c_{node.name}"
    a = node.attrs
    return (
        head
        + f"""{RUN}
{{
    /* CMSIS-NN: {tokens} x {depth} -> {rows}, per-tensor quantization (channel 0's) */
    const cmsis_nn_context ctx = {{0, 0}};
    const cmsis_nn_fc_params fc = {{{-a["input_zp"]}, 0, {a["output_zp"]}, {{-128, 127}}}};
    const cmsis_nn_per_tensor_quant_params q = {{{c}_m[0], {c}_s[0]}};
    const cmsis_nn_dims in = {{{tokens}, 1, 1, {depth}}}, filter = {{{depth}, 1, 1, {rows}}};
    const cmsis_nn_dims bias = {{1, 1, 1, {rows}}}, out = {{{tokens}, 1, 1, {rows}}};
    (void)arm_fully_connected_s8(&ctx, &fc, &q, &in, tf_model_input(), &filter, {c}_w,
                                 &bias, {c}_b, &out, (int8_t *)tf_model_output());
    tf_layer_done(0);
}}
"""
    )


def _revision(root: Path) -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "describe", "--always", "--tags", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() or "unknown"


def bench_cmsis_nn(target: Target, root: Path, results: Path) -> pd.DataFrame:
    """Count CMSIS-NN's linear kernel on ``target``; ``results/cmsis_nn.csv``."""
    root = Path(root).resolve()
    check_checkout(root)
    rows = []
    with tempfile.TemporaryDirectory(prefix="tinyformer-cmsis-") as tmp:
        for tokens, depth, width in LINEAR_SHAPES:
            shape = f"{tokens}x{depth}x{width}"
            if shape not in CMSIS_NN:
                continue
            graph = demo_graph(0, tokens, depth, width)
            model = Path(tmp) / shape / "model"
            model.mkdir(parents=True)
            (model / "model.c").write_text(harness(graph))
            for src in SOURCES:
                shutil.copy(root / src, model)
            elf = build(
                model,
                model.parent / "build",
                board=target.board,
                extra_cflags=f"-I{root / 'Include'}",
            ).elf
            x = np.random.default_rng(0).integers(-128, 128, (tokens, depth), dtype=np.int8)
            m = measure(target, Firmware(elf, target.board, DEFAULT_STACK), x.tobytes())
            constant = CMSIS_NN[shape]
            rows.append(
                {
                    "shape": shape,
                    "kernel": "arm_fully_connected_s8",
                    "count": m.total,
                    "unit": m.count_unit,
                    "constant": constant,
                    "vs_constant_pct": round((m.total - constant) / constant * 100, 2),
                    "target": target.name,
                    "cmsis_nn": _revision(root),
                    "time": now_iso(),
                }
            )
    table = pd.DataFrame(rows)
    write_atomic(table, Path(results) / CMSIS_NN_BENCH)
    return table
