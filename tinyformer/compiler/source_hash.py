"""The firmware id: a hash of what decides an inference's counts, blind to comments.

Counts measured with another firmware id are stale: the latency model only uses samples
whose id is the current one. Two things decide the counts:
- the firmware sources (kernels, runtime, Makefile, linker script), hashed without their
  comments and blank lines, so editing those keeps the samples;
- the C the code generator writes for a layer (which kernel, which tables, which layouts),
  hashed as the generated C of probe models that hold every op kind, dense and block-sparse
  at every block size: a code generator change that changes no generated C (a refactor, an
  analysis field) keeps the samples, one that does change it makes them stale.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from pathlib import Path

from tinyformer.compiler.firmware import FIRMWARE_DIR
from tinyformer.engine.kernel_headers import c_code


@functools.lru_cache(maxsize=1)
def generated_code_digest() -> str:
    """sha256 of the C generated for the probe models (fixed for a process's lifetime)."""
    from tinyformer.engine.builder import random_hybrid_graph
    from tinyformer.engine.codegen import generate
    from tinyformer.engine.sparse_format import BLOCKS, prune_blocks
    from tinyformer.engine.storage import encode_weights

    h = hashlib.sha256()
    for block in (None, *BLOCKS):
        graph = random_hybrid_graph(seed=0)
        for node in graph.nodes:
            if block is not None and node.op in ("linear", "conv2d"):
                w = graph.tensors[node.inputs[1]]
                pruned = prune_blocks(w.const, block, 0.75)
                graph.tensors[w.name] = dataclasses.replace(w, data=pruned)
                node.attrs["block"] = block
        h.update(generate(encode_weights(graph)).render().encode())
    return h.hexdigest()


def _firmware_files(firmware_dir: Path) -> list[Path]:
    return sorted(
        p
        for p in firmware_dir.rglob("*")
        if p.is_file() and (p.suffix in (".c", ".h", ".S", ".ld") or p.name == "Makefile")
    )


@functools.lru_cache(maxsize=8)
def _sources_digest(firmware_dir: Path, files: tuple[tuple[Path, int, int], ...]) -> str:
    h = hashlib.sha256()
    for path, _, _ in files:
        text = path.read_text()
        code = text if path.suffix == ".ld" or path.name == "Makefile" else c_code(text)
        h.update(f"{path.relative_to(firmware_dir)}\0{code}\0".encode())
    return h.hexdigest()


def firmware_id(firmware_dir: Path = FIRMWARE_DIR) -> str:
    """12 hex digits over the firmware's sources and the code generator's output (the
    sources' hash cached while no file's size or modification time changes)."""
    files = tuple(
        (path, (st := path.stat()).st_mtime_ns, st.st_size)
        for path in _firmware_files(firmware_dir)
    )
    combined = _sources_digest(firmware_dir, files) + generated_code_digest()
    return hashlib.sha256(combined.encode()).hexdigest()[:12]
