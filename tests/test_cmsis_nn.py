"""The CMSIS-NN baseline made reproducible: the harness that runs CMSIS-NN's linear kernel in
place of ours, and one clear line when no checkout is given. The measurement itself needs a
CMSIS-NN checkout (not a dependency): hil/test_cmsis_nn_on_qemu.py runs it where one is named."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tinyformer.engine.codegen import generate
from tinyformer.engine.demo import demo_graph
from tinyformer.perf.cmsis_nn import check_checkout, harness


def test_the_harness_runs_cmsis_nn_on_the_same_layer() -> None:
    graph = demo_graph(0, 64, 96, 192)
    node = graph.nodes[0]
    ours = generate(graph).render()
    theirs = harness(graph)
    # everything but the layer's call is the generated model: weights, bias, arena, info
    assert theirs.split("void tf_model_run(void)")[0] == ours.split("void tf_model_run(void)")[
        0
    ].replace('#include "tf_fully_connected_s8.h"', '#include "arm_nnfunctions.h"')
    assert "tf_fully_connected_s8(" not in theirs
    assert "arm_fully_connected_s8(&ctx, &fc, &q, &in, tf_model_input(), &filter, c_fc_w" in theirs
    offsets = f"{{{-node.attrs['input_zp']}, 0, {node.attrs['output_zp']}, {{-128, 127}}}}"
    assert f"cmsis_nn_fc_params fc = {offsets};" in theirs
    assert "in = {64, 1, 1, 96}, filter = {96, 1, 1, 192}" in theirs
    assert theirs.count("tf_layer_done(0);") == 1


def test_a_folder_that_is_not_a_checkout_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="is not a CMSIS-NN checkout: no Include/arm_nnfunc"):
        check_checkout(tmp_path)
    cli = [sys.executable, "-m", "tinyformer.cli", "bench", "cmsis-nn"]
    for extra, message in (([], "needs --cmsis-nn PATH"), (["--cmsis-nn", "x"], "checkout")):
        proc = subprocess.run([*cli, *extra], capture_output=True, text=True, cwd=tmp_path)
        assert proc.returncode == 1 and message in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
