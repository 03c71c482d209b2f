"""`tinyformer compile --library`: the model's C and kernels as a library for an application.

The library is built with its own Makefile, for the host (portable C) and for the Cortex-M7
(DSP assembly), both with -Werror. The host build is linked into a small application that
runs the model: its outputs must match the numpy reference bit for bit, through the weak
default tf_layer_done and through an application's own one, and with two models, each
under its own API name, in one application (linked by hand and through their
CMakeLists.txt).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tinyformer.compiler.driver import compile_model, firmware_in
from tinyformer.compiler.library import export_library, kernel_closure
from tinyformer.engine import ir, reference
from tinyformer.engine.builder import random_hybrid_graph

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

# Two models in one application: stdin holds m1's input then m2's, stdout gets both outputs.
TWO_C = """\
#include <stdio.h>
#include "m1.h"
#include "m2.h"

int main(void)
{
    if (fread(m1_input(), 1, m1_info.input_bytes, stdin) != m1_info.input_bytes ||
        fread(m2_input(), 1, m2_info.input_bytes, stdin) != m2_info.input_bytes)
        return 2;
    m1_run();
    m2_run();
    fwrite(m1_output(), 1, m1_info.output_bytes, stdout);
    fwrite(m2_output(), 1, m2_info.output_bytes, stdout);
    return 0;
}
"""


def _compiled(tmp: Path, seed: int, **shape) -> tuple[ir.Graph, Path]:
    graph = random_hybrid_graph(seed, **shape)
    ir.save(graph, tmp / f"m{seed}.tfir")
    compile_model(tmp / f"m{seed}.tfir", tmp / f"out{seed}")
    return graph, tmp / f"out{seed}"


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> tuple[ir.Graph, Path]:
    return _compiled(tmp_path_factory.mktemp("library"), 4)


def _make(lib: Path, *args: str) -> Path:
    subprocess.run(["make", "-s", "-C", str(lib), "clean"], check=True, capture_output=True)
    subprocess.run(
        ["make", "-s", "-C", str(lib), "EXTRA_CFLAGS=-Werror", *args],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return next(lib.glob("lib*.a"))


def _host_archive(lib: Path) -> Path:
    return _make(lib, "CC=gcc", "AR=ar", "ARCH=")


def _link(app_c: str, tmp: Path, libs: list[Path], archives: list[Path], *flags: str) -> Path:
    (tmp / "app.c").write_text(app_c)
    app = tmp / "app"
    includes = [f"-I{lib}" for lib in libs]
    cmd = ["gcc", "-O2", "-Wall", "-Wextra", "-Werror", *includes, *flags, str(tmp / "app.c")]
    subprocess.run([*cmd, *map(str, archives), "-lm", "-o", str(app)],
                   check=True, capture_output=True, text=True)  # fmt: skip
    return app


def _input(graph: ir.Graph, rng: np.random.Generator) -> np.ndarray:
    shape = graph.tensors[graph.inputs[0]].shape
    return rng.integers(-128, 128, shape, dtype=np.int8)


def test_library_holds_the_model_and_only_the_kernels_it_calls(compiled) -> None:
    graph, out = compiled
    report = export_library(out)
    names = sorted(p.name for p in report.folder.iterdir())
    assert names == report.files and report.archive == "libtf_model.a"
    # the default API is the firmware's: the very model.c that was built and measured
    assert (report.folder / "model.c").read_bytes() == (out / "model" / "model.c").read_bytes()
    expected = {"tf_model.h", "tf_model_hooks.c", "Makefile", "CMakeLists.txt", "README.md"}
    assert expected <= set(names) and "tf_dsp.h" in names
    # a kernel the model does not call stays out; one a called kernel calls comes along
    assert "transpose" not in {n.op for n in graph.nodes}
    assert "tf_transpose_s8.c" not in names
    assert "tf_fully_connected_s8.c" in names  # conv2d runs its patches through it
    assert "tf_fully_connected_s8_arm.S" in names  # ... and its assembly with it
    readme = (report.folder / "README.md").read_text()
    assert f"{report.arena_bytes:,}" in readme and graph.name in readme
    assert "tf_model_run();" in readme
    assert report.constant_bytes > 0
    # the stack under tf_model_run alone: less than the whole firmware's, runtime included
    firmware_stack = json.loads((out / "compile.json").read_text())["predicted_stack_bytes"]
    assert 0 < report.stack_bytes < firmware_stack
    assert f"up to {report.stack_bytes:,}" in readme


def test_kernel_closure_follows_includes() -> None:
    names = [p.name for p in kernel_closure('#include "tf_conv2d_s8.h"\n#include <stdint.h>\n')]
    assert names == sorted(names)
    assert {"tf_conv2d_s8.c", "tf_conv2d_s8.h", "tf_fully_connected_s8.c", "tf_dsp.h"} <= set(names)
    assert "tf_fully_connected_s8_arm.S" in names  # a kernel's assembly comes with its C
    assert kernel_closure('#include "tf_model.h"\n') == []


@pytest.mark.parametrize("count", [False, True], ids=["weak-hook", "own-hook"])
def test_host_build_of_the_library_matches_reference(compiled, tmp_path, count) -> None:
    graph, out = compiled
    lib = export_library(out).folder
    flags = ["-DCOUNT"] if count else []
    app = _link(APP_C, tmp_path, [lib], [_host_archive(lib)], *flags)
    rng = np.random.default_rng(11)
    for _ in range(3):
        x = _input(graph, rng)
        got = subprocess.run([str(app)], input=x.tobytes(), capture_output=True, check=True)
        want = reference.outputs(graph, x)
        np.testing.assert_array_equal(np.frombuffer(got.stdout[: want.size], np.int8), want.ravel())
        if count:
            assert int.from_bytes(got.stdout[want.size :], "little") == len(graph.nodes)
        else:
            assert len(got.stdout) == want.size


def test_two_models_under_their_own_names_in_one_application(compiled, tmp_path) -> None:
    g1, out1 = compiled
    g2, out2 = _compiled(tmp_path, 5, size=12, channels=3, width=8, dim=24, heads=2, blocks=1)
    libs, archives = [], []
    for api, out in (("m1", out1), ("m2", out2)):
        report = export_library(out, api)
        assert {f"{api}.c", f"{api}.h"} <= set(report.files) and "model.c" not in report.files
        assert f"{api}_run();" in (report.folder / "README.md").read_text()
        libs.append(report.folder)
        archives.append(_host_archive(report.folder))
    assert [a.name for a in archives] == ["libm1.a", "libm2.a"]
    app = _link(TWO_C, tmp_path, libs, archives)
    rng = np.random.default_rng(3)
    x1, x2 = _input(g1, rng), _input(g2, rng)
    got = subprocess.run([str(app)], input=x1.tobytes() + x2.tobytes(), capture_output=True,
                         check=True).stdout  # fmt: skip
    want1, want2 = reference.outputs(g1, x1).ravel(), reference.outputs(g2, x2).ravel()
    np.testing.assert_array_equal(np.frombuffer(got, np.int8), np.concatenate([want1, want2]))


@pytest.mark.skipif(shutil.which("cmake") is None, reason="needs cmake")
def test_cmake_project_with_two_models(compiled, tmp_path) -> None:
    """The libraries' CMakeLists.txt: add_subdirectory() both, link both targets."""
    g1, out1 = compiled
    g2, out2 = _compiled(tmp_path, 6, size=8, channels=1, width=8, dim=16, heads=2, blocks=1)
    libs = [export_library(out, api).folder for api, out in (("m1", out1), ("m2", out2))]
    (tmp_path / "app.c").write_text(TWO_C)
    (tmp_path / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.13)\nproject(app C)\n"
        f'add_subdirectory("{libs[0]}" m1)\nadd_subdirectory("{libs[1]}" m2)\n'
        "add_executable(app app.c)\ntarget_link_libraries(app PRIVATE m1 m2)\n"
    )
    build = tmp_path / "build"
    for cmd in (["cmake", "-S", str(tmp_path), "-B", str(build), "-DCMAKE_C_COMPILER=gcc",
                 "-DCMAKE_C_FLAGS=-Werror"], ["cmake", "--build", str(build)]):  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    rng = np.random.default_rng(5)
    x1, x2 = _input(g1, rng), _input(g2, rng)
    got = subprocess.run([str(build / "app")], input=x1.tobytes() + x2.tobytes(),
                         capture_output=True, check=True).stdout  # fmt: skip
    want = np.concatenate([reference.outputs(g1, x1).ravel(), reference.outputs(g2, x2).ravel()])
    np.testing.assert_array_equal(np.frombuffer(got, np.int8), want)


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
    # the kernels' assembly is in the archive and linked (the FC row loops)
    assert " T tf_fc_tile6" in syms


def test_library_of_a_folder_that_is_not_compiled(compiled, tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="not a compiled model"):
        export_library(tmp_path)
    # a damaged compile report is named, for the library and for running the folder
    folder = shutil.copytree(compiled[1], tmp_path / "copy")
    for text, message in (("garbage", "is damaged"), ('{"board": "x"}', "not a compile report")):
        (folder / "compile.json").write_text(text)
        for call in (lambda: export_library(folder), lambda: firmware_in(folder, "mps2-an500")):
            with pytest.raises(ValueError, match=message):
                call()


@pytest.mark.parametrize("api", ["Kws", "tf_kws", "2nd", "kws-net"])
def test_library_api_names_that_cannot_prefix_c_names(compiled, api) -> None:
    with pytest.raises(ValueError, match="library API name"):
        export_library(compiled[1], api)
