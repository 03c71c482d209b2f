"""`tinyformer compile --library`: the model's C and kernels as a library for an application.

The library is built with its own Makefile, for the host (portable C) and for the Cortex-M7
(DSP assembly), both with -Werror. The host build is linked into a small application that
runs the model: its outputs must match the numpy reference bit for bit, through the weak
default tf_layer_done and through an application's own one.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tinyformer.engine import ir, reference
from tinyformer.engine.builder import random_hybrid_graph
from tinyformer.hil.deploy import compile_model
from tinyformer.hil.library import export_library, kernel_closure

# Reads the input from stdin, runs the model, writes the output to stdout; with COUNT it
# also defines tf_layer_done and writes the number of calls after the output.
APP_C = """\
#include <stdio.h>
#include <stdint.h>
#include "tf_model.h"

#ifdef COUNT
static uint32_t calls;
void tf_layer_done(uint16_t layer) { (void)layer; calls++; }
#endif

int main(void)
{
    if (fread(tf_model_input(), 1, tf_model_info.input_bytes, stdin) != tf_model_info.input_bytes)
        return 2;
    tf_model_run();
    fwrite(tf_model_output(), 1, tf_model_info.output_bytes, stdout);
#ifdef COUNT
    fwrite(&calls, sizeof calls, 1, stdout);
#endif
    return 0;
}
"""


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> tuple[ir.Graph, Path]:
    tmp = tmp_path_factory.mktemp("library")
    graph = random_hybrid_graph(seed=4)
    ir.save(graph, tmp / "model.tfir")
    compile_model(tmp / "model.tfir", tmp / "out")
    return graph, tmp / "out"


def _make(lib: Path, *args: str) -> Path:
    subprocess.run(["make", "-s", "-C", str(lib), "clean"], check=True, capture_output=True)
    subprocess.run(
        ["make", "-s", "-C", str(lib), "EXTRA_CFLAGS=-Werror", *args],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return lib / "libtinyformer_model.a"


def test_library_holds_the_model_and_only_the_kernels_it_calls(compiled) -> None:
    graph, out = compiled
    report = export_library(out)
    names = sorted(p.name for p in report.folder.iterdir())
    assert names == report.files
    assert (report.folder / "model.c").read_bytes() == (out / "model" / "model.c").read_bytes()
    assert {"tf_model.h", "tf_model_hooks.c", "Makefile", "README.md", "tf_dsp.h"} <= set(names)
    # a kernel the model does not call stays out; one a called kernel calls comes along
    assert "transpose" not in {n.op for n in graph.nodes}
    assert "tf_transpose_s8.c" not in names
    assert "tf_fully_connected_s8.c" in names  # conv2d runs its patches through it
    readme = (report.folder / "README.md").read_text()
    assert f"{report.arena_bytes:,}" in readme and graph.name in readme
    assert report.constant_bytes > 0


def test_kernel_closure_follows_includes() -> None:
    names = [p.name for p in kernel_closure('#include "tf_conv2d_s8.h"\n#include <stdint.h>\n')]
    assert names == sorted(names)
    assert {"tf_conv2d_s8.c", "tf_conv2d_s8.h", "tf_fully_connected_s8.c", "tf_dsp.h"} <= set(names)
    assert kernel_closure('#include "tf_model.h"\n') == []


@pytest.mark.parametrize("count", [False, True], ids=["weak-hook", "own-hook"])
def test_host_build_of_the_library_matches_reference(compiled, tmp_path, count) -> None:
    graph, out = compiled
    lib = export_library(out).folder
    archive = _make(lib, "CC=gcc", "AR=ar", "ARCH=")
    (tmp_path / "app.c").write_text(APP_C)
    app = tmp_path / "app"
    cmd = ["gcc", "-O2", "-Wall", "-Wextra", "-Werror", f"-I{lib}", str(tmp_path / "app.c")]
    subprocess.run([*cmd, *(["-DCOUNT"] if count else []), str(archive), "-lm", "-o", str(app)],
                   check=True, capture_output=True, text=True)  # fmt: skip
    rng = np.random.default_rng(11)
    shape = graph.tensors[graph.inputs[0]].shape
    for _ in range(3):
        x = rng.integers(-128, 128, shape, dtype=np.int8)
        got = subprocess.run([str(app)], input=x.tobytes(), capture_output=True, check=True)
        want = reference.outputs(graph, x)
        np.testing.assert_array_equal(np.frombuffer(got.stdout[: want.size], np.int8), want.ravel())
        if count:
            assert int.from_bytes(got.stdout[want.size :], "little") == len(graph.nodes)
        else:
            assert len(got.stdout) == want.size


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="needs arm-none-eabi-gcc")
def test_cortex_m7_build_of_the_library_links(compiled, tmp_path) -> None:
    _, out = compiled
    lib = export_library(out).folder
    archive = _make(lib)
    # An application with newlib's stubs links against it with nothing left undefined.
    (tmp_path / "main.c").write_text(
        '#include "tf_model.h"\nint main(void) { tf_model_run(); return tf_model_output()[0]; }\n'
    )
    arch = ["-mcpu=cortex-m7", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-sp-d16"]
    subprocess.run(
        ["arm-none-eabi-gcc", *arch, "-O2", f"-I{lib}", str(tmp_path / "main.c"), str(archive),
         "--specs=nosys.specs", "-Wl,--gc-sections", "-o", str(tmp_path / "app.elf")],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    syms = subprocess.run(["arm-none-eabi-nm", str(tmp_path / "app.elf")],
                          check=True, capture_output=True, text=True).stdout  # fmt: skip
    assert " T tf_model_run" in syms and " W tf_layer_done" in syms


def test_library_of_a_folder_that_is_not_compiled(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="not a compiled model"):
        export_library(tmp_path)
