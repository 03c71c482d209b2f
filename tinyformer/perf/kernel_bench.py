"""Kernel benchmarks on a target: instructions (or cycles) per layer shape and sparsity.

Two suites, one table (``results/kernels.csv``, written atomically):

- *dense layers* (``dense_cases``): the linears of ``LINEAR_SHAPES``, a depthwise 3x3 and
  attention's Q.K^T and A.V, each model compiled through the whole compile path (IR ->
  plan -> C -> firmware), run once and checked bit for bit against the reference; a
  layer's own count is taken from the firmware's per-layer counters.
- *sparse* (``SPARSE_PROBLEMS`` x ``SPARSE_BLOCKS`` x ``SPARSITIES``): per problem (linear
  64 tokens x 96 -> 192, conv 3x3 and 1x1 on 16x16x32, the 1 x 256 -> 64 classifier head)
  one firmware holds the dense kernel and the block-sparse kernel at every block size B
  and block sparsity s, one layer each, with the same input. After every kernel layer a
  checksum layer (FNV-1a of the output, not counted with the kernel) records the output,
  and the run's output (the checksums) must equal the numpy reference's for every layer,
  so each count is of a kernel proven bit-exact on the target (the ARM assembly included).

Columns: kernel (the C function), op (linear, conv3x3, conv1x1, depthwise3x3, matmul_qk,
matmul_av), shape (tokens x in x out for linear, H x W x Cin x Cout with the kernel size
for conv, H x W x C with it for depthwise, heads x M x K x N for the matmuls), storage
(dense, block-rle), block (B, 0 for dense), sparsity (the pruned fraction of B-blocks),
count / unit / source (what was counted: ``instructions`` under QEMU), instructions (the
count when the unit is instructions), macs (dense MACs of the layer), macs_per_instr (dense
MACs per counted unit: the effective rate), speedup_vs_dense (dense count / count, same
problem and firmware; the dense linear 64x96x192 is in both suites and the faster count is
used), speedup_vs_ideal (speedup / (1 / (1 - s)): 1.0 means the sparse kernel is as fast
per remaining MAC as dense), weight_bytes (dense matrix or blob; 0 for the matmuls),
flash_bytes (of the firmware), cmsis_nn_count (the CMSIS-NN baseline below) and
speedup_vs_cmsis_nn.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tinyformer.compiler.driver import compile_model, firmware_in
from tinyformer.compiler.firmware import DEFAULT_STACK, build, build_id
from tinyformer.engine import ir, reference
from tinyformer.engine.builder import GraphBuilder
from tinyformer.engine.cmodel import CArray, CModel
from tinyformer.engine.demo import demo_graph, demo_input
from tinyformer.engine.intmath import quantize_multipliers
from tinyformer.engine.ir import Graph
from tinyformer.engine.ops.conv import (
    conv2d,
    conv2d_scratch_bytes,
    output_size,
    same_padding,
)
from tinyformer.engine.ops.linear import fc_scratch_bytes, fold_input_zero_point, fully_connected
from tinyformer.engine.ops.sparse import (
    CONV_HEADER,
    CONV_KERNEL,
    FC_HEADER,
    FC_KERNEL,
    conv2d_call,
    fc_call,
    sparse_conv2d_scratch_bytes,
    sparse_fc_scratch_bytes,
)
from tinyformer.engine.sparse_format import BLOCKS, decode, encode, prune_blocks
from tinyformer.engine.work import node_macs
from tinyformer.hil.errors import HilError
from tinyformer.hil.measure import measure
from tinyformer.hil.targets.base import Target
from tinyformer.perf.milliseconds import STATED_BASIS, count_ms
from tinyformer.results import now_iso, write_atomic

# (tokens, in, out): the transformer MLP shape of the CMSIS-NN baseline, a classifier head,
# and a large linear.
LINEAR_SHAPES = [(64, 96, 192), (1, 256, 64), (64, 384, 96)]
# CMSIS-NN v19.1's kernels on the same shapes, built with the same arm-none-eabi-gcc and
# flags and counted under the same QEMU (-icount): instructions. Measured once by hand, as
# CMSIS-NN cannot be installed here; the anchor of every speedup_vs_cmsis_nn.
CMSIS_NN = {
    "64x96x192": 2_826_880,
    "1x256x64": 34_000,
    "16x16x32x64k1": 1_397_200,
    "16x16x32x32k3": 4_546_880,
    "16x16x64k3": 1_249_800,
    "4x64x24x64": 1_658_800,  # Q.K^T
}
SPARSE_BLOCKS = BLOCKS  # every block size the format stores
SPARSITIES = (0.0, 0.5, 0.75, 0.9, 0.95)

COLUMNS = [
    "kernel", "op", "shape", "storage", "block", "sparsity", "count", "unit", "source",
    "instructions", "ms", "macs", "macs_per_instr", "speedup_vs_dense", "speedup_vs_ideal",
    "weight_bytes", "flash_bytes", "cmsis_nn_count", "speedup_vs_cmsis_nn",
]  # fmt: skip


MS_NOTE = f"ms: on the STM32F746, {STATED_BASIS}; a board's DWT cycles / 216 MHz"


@dataclass(frozen=True)
class SparseProblem:
    """A linear (h = tokens, w = 1, k = 1: [tokens][cin] -> [tokens][cout]) or a conv."""

    op: str  # "linear" or "conv"
    h: int
    w: int
    cin: int
    cout: int
    k: int = 1
    stride: int = 1

    @property
    def name(self) -> str:
        return "linear" if self.op == "linear" else f"conv{self.k}x{self.k}"

    @property
    def shape(self) -> str:
        if self.op == "linear":
            return f"{self.h}x{self.cin}x{self.cout}"
        return f"{self.h}x{self.w}x{self.cin}x{self.cout}k{self.k}"

    @property
    def padding(self) -> tuple[int, int, int, int]:
        if self.op == "linear":
            return (0, 0, 0, 0)
        return same_padding(self.h, self.w, self.k, self.k, self.stride)

    @property
    def out_hw(self) -> tuple[int, int]:
        if self.op == "linear":
            return self.h, 1
        t, left, b, r = self.padding
        return (
            output_size(self.h, self.k, self.stride, t, b),
            output_size(self.w, self.k, self.stride, left, r),
        )

    @property
    def depth(self) -> int:
        return self.k * self.k * self.cin

    @property
    def in_bytes(self) -> int:
        return self.h * self.w * self.cin

    @property
    def out_bytes(self) -> int:
        oh, ow = self.out_hw
        return oh * ow * self.cout

    @property
    def macs(self) -> int:
        oh, ow = self.out_hw
        return oh * ow * self.depth * self.cout


SPARSE_PROBLEMS = [
    SparseProblem("linear", 64, 1, 96, 192),
    SparseProblem("conv", 16, 16, 32, 32, k=3),
    SparseProblem("conv", 16, 16, 32, 64, k=1),
    # the classifier head: one token, so the one-token assembly path is checked too
    SparseProblem("linear", 1, 1, 256, 64),
]


# -- dense layers through the compile path -----------------------------------------------------

# A benchmarked model: its graph and, per benchmarked node name, (kernel, op, shape) labels.
# Other nodes (attention's projections) only feed the ones measured.
DenseCase = tuple[Graph, dict[str, tuple[str, str, str]]]


def dense_cases() -> list[DenseCase]:
    """The dense linears of LINEAR_SHAPES and the other layers of the CMSIS-NN table:
    depthwise 3x3 on 16x16x64, and Q.K^T (with A.V) for 4 heads x 64 tokens x 24."""
    cases: list[DenseCase] = [
        (demo_graph(0, t, k, m), {"fc": ("tf_fully_connected_s8", "linear", f"{t}x{k}x{m}")})
        for t, k, m in LINEAR_SHAPES
    ]
    rng = np.random.default_rng(0)
    b = GraphBuilder("bench_depthwise", rng.integers(-128, 128, (16, 16, 64), dtype=np.int8))
    graph = b.build(b.depthwise("dw", b.input, 3, act="none"))
    cases.append((graph, {"dw": ("tf_depthwise_conv2d_s8", "depthwise3x3", "16x16x64k3")}))
    b = GraphBuilder("bench_attention", rng.integers(-128, 128, (64, 96), dtype=np.int8))
    q, k, v = (b.linear(name, b.input, 96) for name in "qkv")
    graph = b.build(b.attention_core("att", q, k, v, heads=4, head_dim=24))
    cases.append((graph, {
        "att_qk": ("tf_batch_matmul_qk_s8", "matmul_qk", "4x64x24x64"),
        "att_av": ("tf_batch_matmul_av_s8", "matmul_av", "4x64x64x24"),
    }))  # fmt: skip
    return cases


def run_dense_case(target: Target, case: DenseCase, workdir: Path) -> list[dict]:
    """Compile the case's model, run it once, check it bit for bit, one row per label."""
    graph, labels = case
    path = ir.save(graph, workdir / "m.tfir")
    compile_model(path, workdir / "out", board=target.board)
    fw, graph = firmware_in(workdir / "out", target.board)
    x = demo_input(graph)
    m = measure(target, fw, x.tobytes())
    if m.output != reference.outputs(graph, x).tobytes():
        raise HilError(f"{graph.name}: output differs from the reference")
    rows = []
    for node, count in zip(graph.nodes, m.layer_counts, strict=True):
        if node.name not in labels:
            continue
        kernel, op, shape = labels[node.name]
        weights = graph.tensors[node.inputs[1]] if op in ("linear", "depthwise3x3") else None
        rows.append({
            "kernel": kernel, "op": op, "shape": shape, "storage": "dense", "block": 0,
            "sparsity": 0.0, "count": count, "unit": m.count_unit, "source": m.source,
            "macs": node_macs(node, graph), "weight_bytes": weights.nbytes if weights else 0,
            "flash_bytes": m.flash_bytes,
        })  # fmt: skip
    return rows


# -- the sparse suite: one firmware per problem, checksummed layers -----------------------------


def fnv1a(data: bytes) -> int:
    """32-bit FNV-1a, as the checksum layers compute it in C."""
    h = 2166136261
    for byte in data:
        h = ((h ^ byte) * 16777619) & 0xFFFFFFFF
    return h


@dataclass(frozen=True)
class ProblemData:
    """The seeded parameters and input of a problem (weights before pruning: ``base``)."""

    base: np.ndarray  # [cout][k][k][cin] int8
    bias: np.ndarray
    multiplier: np.ndarray
    shift: np.ndarray
    input_zp: int
    output_zp: int
    x: np.ndarray  # [h][w][cin] int8 ([tokens][1][cin] for a linear)


def problem_data(p: SparseProblem, seed: int = 0) -> ProblemData:
    """Seeded random parameters whose outputs spread over the int8 range (as demo_graph)."""
    rng = np.random.default_rng(seed)
    input_zp, output_zp = int(rng.integers(-20, 20)), int(rng.integers(-10, 10))
    scale = 40.0 / (np.sqrt(p.depth) * 74.0 * 74.0)
    mult, shift = quantize_multipliers(scale * rng.uniform(0.7, 1.3, p.cout))
    base = rng.integers(-128, 128, (p.cout, p.k, p.k, p.cin), dtype=np.int8)
    bias = rng.integers(-20000, 20000, p.cout, dtype=np.int32)
    x = rng.integers(-128, 128, (p.h, p.w, p.cin), dtype=np.int8)
    return ProblemData(base, bias, mult, shift, input_zp, output_zp, x)


def reference_output(p: SparseProblem, d: ProblemData, weights: np.ndarray) -> np.ndarray:
    args = (d.bias, d.input_zp, d.output_zp, d.multiplier, d.shift)
    if p.op == "linear":
        return fully_connected(d.x.reshape(p.h, p.cin), weights.reshape(p.cout, -1), *args)
    return conv2d(d.x, weights, *args, p.stride, p.padding)


@dataclass
class _Layer:
    kernel: str
    storage: str
    block: int
    sparsity: float
    code: str
    expected: int  # checksum of the reference output
    weight_bytes: int


def _align(n: int) -> int:
    return (n + 15) // 16 * 16


def _suite_model(
    p: SparseProblem,
    seed: int = 0,
    blocks: tuple[int, ...] = SPARSE_BLOCKS,
    sparsities: tuple[float, ...] = SPARSITIES,
) -> tuple[CModel, bytes, list[_Layer]]:
    """The problem's C model: dense + a sparse layer per (B, s) of ``blocks`` x
    ``sparsities``, each followed by a checksum layer; the arena is
    [input][output][scratch][checksums] and the model's output the checksums. Returns
    (model, input bytes, kernel layers)."""
    d = problem_data(p, seed)
    cm = CModel(name=f"bench_{p.name}", arena_bytes=0, input_offset=0, input_bytes=p.in_bytes,
                output_offset=0, output_bytes=0)  # fmt: skip

    def const(name: str, values: np.ndarray) -> str:
        cm.constants.append(CArray(f"c_{name}", np.ascontiguousarray(values)))
        return f"c_{name}"

    if p.op == "linear":
        scratch = [fc_scratch_bytes(p.cin)]
        scratch += [sparse_fc_scratch_bytes(p.cin, p.cout, b) for b in blocks]
    else:
        scratch = [conv2d_scratch_bytes(p.cin, p.k, p.k)]
        scratch += [sparse_conv2d_scratch_bytes(p.cin, p.k, p.k, p.cout, b) for b in blocks]
    y_off = _align(p.in_bytes)
    s_off = y_off + _align(p.out_bytes)
    ck_off = s_off + _align(max(scratch))
    xp, yp, sp = "(arena + 0)", f"(arena + {y_off})", f"(arena + {s_off})"
    mult, shift = const("mult", d.multiplier), const("shift", d.shift)
    layers: list[_Layer] = []

    def add(kernel: str, blk: int, s: float, weights: np.ndarray, wexpr: str, nbytes: int):
        folded = fold_input_zero_point(weights.reshape(p.cout, -1), d.bias, d.input_zp)
        bias = const(f"bias_b{blk}_s{round(s * 100)}", folded)
        if p.op == "linear":
            call = fc_call(xp, wexpr, bias, mult, shift, d.output_zp, -128, 127, p.h, p.cin,
                           p.cout, yp, sp)  # fmt: skip
            code = call.replace(FC_KERNEL, kernel)
        else:
            call = conv2d_call(xp, p.h, p.w, p.cin, wexpr, p.cout, p.k, p.k, bias, mult, shift,
                               d.input_zp, d.output_zp, p.stride, p.padding, -128, 127, yp,
                               sp)  # fmt: skip
            code = call.replace(CONV_KERNEL, kernel)
        expected = fnv1a(reference_output(p, d, weights).tobytes())
        storage = "dense" if blk == 0 else "block-rle"
        layers.append(_Layer(kernel, storage, blk, s, code, expected, nbytes))

    # the dense kernels take the same arguments as the sparse ones, weights aside
    dense = "tf_fully_connected_s8" if p.op == "linear" else "tf_conv2d_s8"
    add(dense, 0, 0.0, d.base, const("w_dense", d.base), d.base.size)
    for blk in blocks:
        for s in sparsities:
            pruned = prune_blocks(d.base, blk, s)
            blob = encode(pruned, blk)
            assert np.array_equal(decode(blob), pruned.reshape(p.cout, -1))
            wexpr = const(f"w_b{blk}_s{round(s * 100)}", np.frombuffer(blob, np.uint8))
            add(FC_KERNEL if p.op == "linear" else CONV_KERNEL, blk, s, pruned, wexpr, len(blob))

    cm.arena_bytes = ck_off + 4 * len(layers)
    cm.output_offset, cm.output_bytes = ck_off, 4 * len(layers)
    cm.includes = ["tf_fully_connected_s8.h", "tf_conv2d_s8.h", FC_HEADER, CONV_HEADER]
    for i, layer in enumerate(layers):
        cm.layers.append((f"{layer.kernel} B={layer.block} s={layer.sparsity}", layer.code))
        at = ck_off + 4 * i
        cm.layers.append((
            "checksum (FNV-1a) of the output",
            f"    {{ const uint8_t *q = (const uint8_t *)(arena + {y_off}); "
            f"uint32_t h = 2166136261u; for (uint32_t i = 0; i < {p.out_bytes}u; i++) "
            f"{{ h = (h ^ q[i]) * 16777619u; }} "
            f"for (int j = 0; j < 4; j++) {{ arena[{at} + j] = (int8_t)(h >> (8 * j)); }} }}",
        ))  # fmt: skip
    return cm, d.x.tobytes(), layers


def run_sparse_problem(
    target: Target,
    problem: SparseProblem,
    workdir: Path,
    blocks: tuple[int, ...] = SPARSE_BLOCKS,
    sparsities: tuple[float, ...] = SPARSITIES,
) -> list[dict]:
    """One row per kernel layer of the problem's firmware (:func:`_suite_model`), each
    counted by the target and proven bit-exact by its checksum."""
    model, data, layers = _suite_model(problem, blocks=blocks, sparsities=sparsities)
    model.write(workdir / "model")
    fw = build(workdir / "model", workdir / "build", board=target.board, stack_size=DEFAULT_STACK)
    m = measure(target, fw, data)
    got = np.frombuffer(m.output, "<u4")
    bad = [
        f"{lay.kernel} B={lay.block} s={lay.sparsity}"
        for lay, h in zip(layers, got, strict=True)
        if int(h) != lay.expected
    ]
    if bad:
        raise HilError(
            f"{problem.name} {problem.shape}: output differs from the reference for "
            + ", ".join(bad)
        )
    rows = []
    for i, lay in enumerate(layers):
        rows.append({
            "kernel": lay.kernel,
            "op": problem.name,
            "shape": problem.shape,
            "storage": lay.storage,
            "block": lay.block,
            "sparsity": lay.sparsity,
            "count": m.layer_counts[2 * i],
            "unit": m.count_unit,
            "source": m.source,
            "macs": problem.macs,
            "weight_bytes": lay.weight_bytes,
            "flash_bytes": m.flash_bytes,
        })  # fmt: skip
    return rows


def _finish(table: pd.DataFrame) -> pd.DataFrame:
    table["instructions"] = table["count"].where(table["unit"] == "instructions")
    table["ms"] = [
        round(count_ms(c, u, b), 4)
        for c, u, b in zip(table["count"], table["unit"], table["weight_bytes"], strict=True)
    ]  # at 216 MHz: MS_NOTE says how
    table["macs_per_instr"] = (table["macs"] / table["count"]).round(4)
    dense = table[table["storage"] == "dense"].groupby(["op", "shape"])["count"].min()
    base = [dense.get((o, s), np.nan) for o, s in zip(table["op"], table["shape"], strict=True)]
    table["speedup_vs_dense"] = (np.asarray(base, float) / table["count"]).round(3)
    table["speedup_vs_ideal"] = (table["speedup_vs_dense"] * (1.0 - table["sparsity"])).round(3)
    table["cmsis_nn_count"] = [CMSIS_NN.get(s, np.nan) for s in table["shape"]]
    table["speedup_vs_cmsis_nn"] = (table["cmsis_nn_count"] / table["count"]).round(3)
    return table[COLUMNS]


def bench_kernels(target: Target, out: Path, sparse: bool = True) -> pd.DataFrame:
    """Run both suites on ``target`` and write the table to ``out`` (atomically)."""
    rows = []
    for case in dense_cases():
        with tempfile.TemporaryDirectory() as tmp:
            rows += run_dense_case(target, case, Path(tmp))
    if sparse:
        for problem in SPARSE_PROBLEMS:
            with tempfile.TemporaryDirectory() as tmp:
                rows += run_sparse_problem(target, problem, Path(tmp))
    table = _finish(pd.DataFrame(rows))
    table["target"], table["git_rev"], table["time"] = target.name, build_id(), now_iso()
    write_atomic(table, out)
    return table
