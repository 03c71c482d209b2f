"""Build an ELF's firmware for the host: the program the fake board runs when "flashed".

The stm32f746 ELF names its own sources (DWARF compile units, absolute paths, as the firmware
Makefile passes them): tf_app.c, the protocol, the runtime, the kernels and the generated
model. The same sources are compiled with the host gcc, with host_board.c in place of the
board's file and the Cortex-M core's own files (startup, fault handler, MPU stack guard), so
the fake board answers the protocol with the firmware's own code and the model the ELF holds.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

from elftools.elf.elffile import ELFFile

HERE = Path(__file__).resolve().parent
HOST_BOARD = HERE / "host_board.c"
# What only a Cortex-M has: replaced by host_board.c (or not needed on a host).
CORE_ONLY = {"tf_startup.c", "tf_fault.c", "tf_stack_guard.c"}
CFLAGS = ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Werror", "-Dmain=tf_app_main",
          '-DTF_BUILD_ID="fake-board"']  # fmt: skip


class HostBuildError(Exception):
    """The ELF's sources cannot be found or built for the host."""


def elf_sources(elf: Path) -> list[Path]:
    """The C files ``elf`` was built from, as absolute paths."""
    with open(elf, "rb") as f:
        dwarf = ELFFile(f).get_dwarf_info() if ELFFile(f).has_dwarf_info() else None
        if dwarf is None:
            raise HostBuildError(f"{elf} has no debug information to find its sources by")
        sources = []
        for cu in dwarf.iter_CUs():
            attrs = cu.get_top_DIE().attributes
            name = attrs["DW_AT_name"].value.decode()
            comp_dir = attrs["DW_AT_comp_dir"].value.decode() if "DW_AT_comp_dir" in attrs else "/"
            sources.append(Path(comp_dir, name))
    return [s for s in sources if s.suffix == ".c"]


def host_sources(elf: Path) -> tuple[list[Path], list[Path]]:
    """(sources, include folders) of the host build of ``elf``: the firmware's files and the
    model's folder (the C library's files are the host's own)."""
    found = elf_sources(elf)
    app = next((s for s in found if s.name == "tf_app.c"), None)
    model = next((s for s in found if s.name == "model.c"), None)
    if app is None or model is None:
        raise HostBuildError(f"{elf} is not a TinyFormer firmware (no tf_app.c and model.c)")
    firmware_dir = app.parent.parent
    sources = [HOST_BOARD]
    for src in found:
        ours = firmware_dir in src.parents and "boards" not in src.parts[len(firmware_dir.parts) :]
        if not (ours and src.name not in CORE_ONLY) and src.parent != model.parent:
            continue
        if not src.is_file():
            raise HostBuildError(f"{src}, a source of {elf}, is gone: rebuild the firmware")
        sources.append(src)
    includes = [firmware_dir / "common", firmware_dir / "kernels", model.parent]
    return sources, includes


def build_host(elf: Path, cache: Path) -> Path:
    """The host executable of ``elf``'s firmware, built once per set of sources."""
    sources, includes = host_sources(elf)
    digest = hashlib.sha256()
    for path in [*sources, *sorted(p for d in includes for p in d.glob("*.h"))]:
        digest.update(str(path).encode() + b"\0" + path.read_bytes())
    out = cache / f"firmware-{digest.hexdigest()[:16]}"
    if out.is_file():
        return out
    cache.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.name}.{os.getpid()}.partial")
    board = tmp.with_suffix(".board.o")
    inc = [f"-I{d}" for d in includes]
    firmware = [str(s) for s in sources if s != HOST_BOARD]
    compile_board = ["gcc", *CFLAGS, *inc, "-c", str(HOST_BOARD), "-o", str(board)]
    # The board file counts the firmware's basic blocks: the one file not instrumented.
    link = ["gcc", *CFLAGS, "-fsanitize-coverage=trace-pc", *inc, *firmware, str(board),
            "-o", str(tmp), "-lm"]  # fmt: skip
    for cmd in (compile_board, link):
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            first = next((ln for ln in proc.stderr.splitlines() if "error" in ln), proc.stderr)
            raise HostBuildError(f"host build of {elf} failed: {first.strip()}")
    board.unlink()
    os.replace(tmp, out)
    return out
