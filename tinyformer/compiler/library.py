"""Export a compiled model as a C library for the user's own application.

A folder made by ``tinyformer compile`` holds the model's C and a test firmware (serial
protocol, counters). An application wants only the model: ``library/`` gets the model's C
(the code generator's, as the firmware was built from it), ``tf_model.h``, the kernels it
calls (the closure of its ``#include``s over firmware/kernels: headers, their C and their
``_arm.S`` assembly), a weak no-op
``tf_layer_done`` (the per-layer hook the firmware uses for its counts), a Makefile that
builds ``lib<api>.a``, a CMakeLists.txt with the target ``<api>`` and a README with the
tensors' shapes and quantization and the memory the model needs.

The API is ``tf_model_run()``, ``tf_model_input()``, ... as the firmware's, or, with another
``api`` name, ``<api>_run()`` ... declared in ``<api>.h``: an application links several
models that way (the kernels they share resolve once).
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from tinyformer.atomic_write import write_atomic_text
from tinyformer.compiler.driver import compile_report
from tinyformer.compiler.firmware import FIRMWARE_DIR
from tinyformer.compiler.stackusage import CallGraph
from tinyformer.engine import ir
from tinyformer.engine.cmodel import CONFIG_HEADER
from tinyformer.engine.codegen import generate, plan_graph

KERNELS = FIRMWARE_DIR / "kernels"
MODEL_HEADER = FIRMWARE_DIR / "common" / "tf_model.h"
_INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.MULTILINE)

HOOKS_C = """\
/* The per-layer hook of tf_model.h: tf_model_run() calls tf_layer_done(i) after layer i.
 * This default does nothing; define your own (timing, tracing) and it replaces this one. */
#include "tf_model.h"

__attribute__((weak)) void tf_layer_done(uint16_t layer) { (void)layer; }
"""

MAKEFILE = """\
# TinyFormer model "{name}" as a static library:  make  ->  {archive}
# Defaults: Cortex-M7 with its single-precision FPU, hard float (STM32F746). Examples:
#   make ARCH="-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16"   (Cortex-M4F)
#   make CC=gcc AR=ar ARCH=                                   (host: portable C, no assembly)
# -O2 is how the kernels are measured; any level gives the same results.
CC = arm-none-eabi-gcc
AR = arm-none-eabi-ar
ARCH = -mcpu=cortex-m7 -mthumb -mfloat-abi=hard -mfpu=fpv5-sp-d16
CFLAGS = -O2 -std=gnu11 -Wall -Wextra -ffunction-sections -fdata-sections
EXTRA_CFLAGS =

# The kernels' assembly (*_arm.S) assembles to nothing without the DSP extension (tf_dsp.h).
SOURCES := $(sort $(wildcard *.c)) $(sort $(wildcard *.S))
OBJECTS := $(addsuffix .o,$(basename $(SOURCES)))

{archive}: $(OBJECTS)
\t$(AR) rcs $@ $^

%.o: %.c $(wildcard *.h)
\t$(CC) $(ARCH) $(CFLAGS) $(EXTRA_CFLAGS) -I. -c $< -o $@

%.o: %.S $(wildcard *.h)
\t$(CC) $(ARCH) $(CFLAGS) $(EXTRA_CFLAGS) -I. -c $< -o $@

.PHONY: clean
clean:
\trm -f $(OBJECTS) {archive}
"""

CMAKE = """\
# TinyFormer model "{name}" as a CMake library target: add_subdirectory() this folder and
# target_link_libraries(your_app PRIVATE {api}). The compiler and its -mcpu / float-ABI
# flags are your project's (-O2 is how the kernels are measured).
cmake_minimum_required(VERSION 3.13)
# ASM: the kernels' *_arm.S, assembled by the C compiler's driver (empty without the DSP
# extension, tf_dsp.h).
project({api} C ASM)
file(GLOB TINYFORMER_SOURCES CONFIGURE_DEPENDS "${{CMAKE_CURRENT_SOURCE_DIR}}/*.c"
     "${{CMAKE_CURRENT_SOURCE_DIR}}/*.S")
add_library({api} STATIC ${{TINYFORMER_SOURCES}})
target_include_directories({api} PUBLIC "${{CMAKE_CURRENT_SOURCE_DIR}}")
target_compile_options({api} PRIVATE -O2 -Wall -Wextra)
# LayerNorm's square root starts from a float estimate: sqrtf without an FPU, and on a host
find_library(TINYFORMER_LIBM m)
if(TINYFORMER_LIBM)
  target_link_libraries({api} PUBLIC ${{TINYFORMER_LIBM}})
endif()
"""

API_HEADER = """\
/* {api}.h - the TinyFormer model "{name}" (generated: see README.md). */
#ifndef {guard}
#define {guard}

#include "tf_model.h" /* tf_model_info_t, tf_layer_done */

extern const tf_model_info_t {api}_info;
int8_t *{api}_input(void);
const int8_t *{api}_output(void);
void {api}_run(void);

#endif /* {guard} */
"""
DEFAULT_API = "tf_model"
_API = re.compile(r"[a-z_][a-z0-9_]*")


@dataclass(frozen=True)
class LibraryReport:
    folder: Path
    api: str
    archive: str  # what its Makefile builds
    files: list[str]
    arena_bytes: int
    constant_bytes: int
    stack_bytes: int


def kernel_closure(source: str) -> list[Path]:
    """The firmware/kernels files ``source`` needs: the headers it includes, each one's .c
    and its assembly (``<kernel>_arm.S``), and what those include in turn (a conv kernel
    calls the linear one, ...)."""
    seen: dict[str, Path] = {}
    todo = _INCLUDE.findall(source)
    while todo:
        name = todo.pop()
        if name in seen or not (KERNELS / name).is_file():
            continue  # tf_model.h and system headers are not kernels
        header = KERNELS / name
        for path in (header, header.with_suffix(".c"), header.with_name(f"{header.stem}_arm.S")):
            if path.is_file() and path.name not in seen:
                seen[path.name] = path
                todo.extend(_INCLUDE.findall(path.read_text()))
    return [seen[n] for n in sorted(seen)]


def _tensor_line(graph: ir.Graph, name: str) -> str:
    t = graph.tensors[name]
    shape = " x ".join(map(str, t.shape))
    return (
        f"{t.dtype} [{shape}] ({t.nbytes:,} bytes), scale {t.scale:.6g}, zero point {t.zero_point}"
    )


def _readme(graph: ir.Graph, meta: dict, report: LibraryReport, header: str, c_file: str) -> str:
    sources = "\n".join(f"- `{f}`" for f in report.files if f.endswith((".c", ".S")))
    inp, outp = graph.tensors[graph.inputs[0]], graph.tensors[graph.outputs[0]]
    board, stack, api = meta["board"], report.stack_bytes, report.api
    return f"""# {graph.name}: a TinyFormer model as C

Generated by `tinyformer compile --library`; model hash
`{meta["model_hash"]}`. The same layers, weights and kernels as the compiled folder's
firmware, the one `tinyformer run` measures.

```c
#include <string.h>
#include "{header}"

memcpy({api}_input(), input, {inp.nbytes});  /* int8 */
{api}_run();
const int8_t *output = {api}_output();  /* {outp.nbytes} bytes, int8 */
```

- input: {_tensor_line(graph, graph.inputs[0])}
- output: {_tensor_line(graph, graph.outputs[0])}
- real value = scale x (q - zero point); layouts are NHWC / [tokens][features]
- `{api}_info` holds the model's name, hash and sizes (`tf_model_info_t`, tf_model.h)

## Memory

| what | bytes |
|---|---|
| model data in flash (weights, bias, requantization tables) | {report.constant_bytes:,} |
| arena (static RAM inside `{c_file}`: activations and scratch) | {report.arena_bytes:,} |
| stack under `{api}_run()` (its call tree's frames, {board} build) | up to {stack:,} |

The kernels' code comes on top of the model data. Nothing is allocated at run time. Add your
caller's frames and your interrupts' to the stack figure.

## Build

`make` builds `{report.archive}` for a Cortex-M7 with hard float (see the Makefile for
other cores and for a host build). In a CMake project, `add_subdirectory()` this folder and
link the target `{api}`. Or add these files to your project:

{sources}

with `-I` this folder (`-O2`: as measured). On a core with the DSP extension (Cortex-M4,
M7, M33) the kernels use SMLAD / SXTB16 and assembly (the `*_arm.S` files: assemble them
with the same compiler driver and flags as the C); elsewhere they assemble to nothing and
the same results come from portable C (`TF_ARM_DSP_ASM` in `tf_dsp.h` chooses; define it
to 0 for the portable C on any core). Link with `-lm` on a core without a single-precision
FPU, and on a host: the exact integer square root of LayerNorm starts from a float estimate
(VSQRT on an FPU).

## Notes

- `{api}_run()` calls `tf_layer_done(i)` after each of the {len(graph.nodes)} layers.
  The library's default does nothing; define `void tf_layer_done(uint16_t layer)` in your
  application to time or trace layers.
- `{api}_run()` is not reentrant. To link several models into one application, export
  each with its own name (`tinyformer compile ... --library --api NAME`): each library then
  defines `NAME_run()`, `NAME_input()`, ... in `NAME.c` / `NAME.h`. Linked as archives,
  the kernels the libraries share resolve once; added as sources, add each `tf_*.c` and
  `tf_*_arm.S` once (they are the same files).
"""


def check_api(api: str) -> str:
    """``api`` if it can prefix the library's C names, else a ValueError saying why."""
    if not _API.fullmatch(api) or (api.startswith("tf_") and api != DEFAULT_API):
        raise ValueError(
            f"library API name {api!r}: use lower-case letters, digits and _, "
            "not starting with tf_ (the kernels' prefix)"
        )
    return api


def export_library(folder: Path, api: str = DEFAULT_API) -> LibraryReport:
    """Write ``folder/library`` from a folder made by ``tinyformer compile``."""
    folder = Path(folder)
    check_api(api)
    meta = compile_report(folder)
    graph = ir.load(folder / "model.tfir")
    cmodel = generate(graph, plan_graph(graph))
    out = folder / "library"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir()
    source = cmodel.render(api)
    for path in (MODEL_HEADER, *kernel_closure(source)):
        shutil.copyfile(path, out / path.name)
    if api == DEFAULT_API:
        header, stem = MODEL_HEADER.name, "model"
    else:
        header, stem = f"{api}.h", api
        guard = f"{api.upper()}_H"
        write_atomic_text(API_HEADER.format(api=api, name=graph.name, guard=guard), out / header)
    write_atomic_text(source, out / f"{stem}.c")
    write_atomic_text(HOOKS_C, out / "tf_model_hooks.c")
    write_atomic_text(cmodel.config(), out / CONFIG_HEADER)  # the kernels' build switches
    archive = f"lib{api}.a"
    write_atomic_text(MAKEFILE.format(name=graph.name, archive=archive), out / "Makefile")
    write_atomic_text(CMAKE.format(name=graph.name, api=api), out / "CMakeLists.txt")
    report = LibraryReport(
        folder=out,
        api=api,
        archive=archive,
        files=sorted([*(p.name for p in out.iterdir()), "README.md"]),
        arena_bytes=cmodel.arena_bytes,
        constant_bytes=sum(cmodel.layer_constant_bytes),
        stack_bytes=CallGraph.from_build(folder / "build").worst("tf_model_run"),
    )
    write_atomic_text(_readme(graph, meta, report, header, f"{stem}.c"), out / "README.md")
    return report
