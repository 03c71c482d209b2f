"""IR files validated to the last field: each check below is met by a header tampered with
and given a valid checksum, which before validation loaded (or crashed the loader or the
compiler) and now fails with one clear IRFormatError naming the node and field."""

from __future__ import annotations

import copy
import dataclasses
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from ir_tamper import GRAPHS, blob_of, header_of, reframe  # tests/ is on sys.path (conftest.py)

from tinyformer.engine import ir, sparse_format
from tinyformer.engine.codegen import generate
from tinyformer.engine.validate import check_graph

Header = dict[str, Any]


@pytest.fixture(scope="module")
def files() -> dict[str, bytes]:
    return {key: ir.to_bytes(make()) for key, make in GRAPHS.items()}


def _node(h: Header, name: str) -> dict[str, Any]:
    return next(n for n in h["nodes"] if n["name"] == name)


def _attrs(node: str, /, **values: Any) -> Callable[[Header], None]:
    return lambda h: _node(h, node)["attrs"].update(values)


def _tensor(tensor: str, /, **values: Any) -> Callable[[Header], None]:
    return lambda h: h["tensors"][tensor].update(values)


def _node_field(node: str, /, **values: Any) -> Callable[[Header], None]:
    return lambda h: _node(h, node).update(values)


def _input(node: str, i: int, tensor: str) -> Callable[[Header], None]:
    return lambda h: _node(h, node)["inputs"].__setitem__(i, tensor)


def _swap_first_nodes(h: Header) -> None:
    h["nodes"][0], h["nodes"][1] = h["nodes"][1], h["nodes"][0]


def _duplicate_node(rename: str | None) -> Callable[[Header], None]:
    def mutate(h: Header) -> None:
        twin = copy.deepcopy(h["nodes"][0])
        twin["name"] = rename or twin["name"]
        h["nodes"].append(twin)

    return mutate


def _ghost(h: Header) -> None:
    h["tensors"]["ghost"] = dict(h["tensors"]["y"])


def _shorter_multiplier(h: Header) -> None:
    _node(h, "fc")["attrs"]["multiplier"].pop()


def _sparse_tag(h: Header) -> None:
    h["tensors"]["w"]["encoding"] = "block-rle"
    h["tensors"]["w"]["data"]["dtype"] = "uint8"


CASES: list[tuple[str, str, Callable[[Header], None], str]] = [
    # the header's structure: what the layout needs to build the graph
    ("missing field", "demo", lambda h: h.pop("meta"), r"header\.meta is missing"),
    ("unknown field", "demo", lambda h: h.update(extra=1), r"header\.extra is not a field"),
    ("tensors not an object", "demo", lambda h: h.update(tensors=[]), r"tensors must be dict"),
    ("node not an object", "demo", lambda h: h["nodes"].__setitem__(0, "fc"),
     r"nodes\[0\] must be an object"),
    ("tensor field missing", "demo", lambda h: h["tensors"]["x"].pop("dtype"),
     r"tensors\.x\.dtype is missing"),
    ("data moved", "demo", lambda h: h["tensors"]["w"]["data"].update(offset=8),
     r"tensors\.w\.data\.offset is 8, the layout puts it at 0"),
    ("data dtype not numeric", "demo", lambda h: h["tensors"]["w"]["data"].update(dtype="object"),
     r"tensors\.w\.data\.dtype 'object' is not one of"),
    ("data size", "demo", lambda h: h["tensors"]["b"]["data"].update(nbytes=63),
     r"tensors\.b\.data\.nbytes 63: not whole int32s"),
    # tensors
    ("negative dimension", "demo", _tensor("y", shape=[8, -16]),
     r"tensor 'y': shape \[8, -16\] must have 1\.\.8 dimensions, each >= 1"),
    ("float dimension", "demo", _tensor("y", shape=[8, 16.0]), r"shape must be a list of integers"),
    ("huge tensor", "demo", _tensor("y", shape=[2**20, 2**20]), r"over 2147483647 bytes"),
    ("shape not a list", "demo", _tensor("y", shape="8x16"), r"tensors\.y\.shape must be list"),
    ("unknown dtype", "demo", _tensor("x", dtype="float32"), r"unknown dtype 'float32'"),
    ("int16 activation", "demo", _tensor("x", dtype="int16"), r"activations are int8"),
    ("zero scale", "demo", _tensor("x", scale=0), r"scale must be a finite number > 0"),
    ("string scale", "demo", _tensor("x", scale="1"), r"scale must be a finite number > 0"),
    ("zero point beyond int8", "demo", _tensor("x", zero_point=300), r"zero_point must be an int8"),
    ("unknown encoding", "demo", _tensor("w", encoding="zstd"), r"unknown encoding 'zstd'"),
    ("dense bytes called sparse", "demo", _sparse_tag, r"tensor 'w': not a block-rle blob"),
    ("data of another dtype", "demo", lambda h: h["tensors"]["w"]["data"].update(dtype="uint8"),
     r"tensor 'w': data is uint8 \[16, 24\], the tensor int8 \[16, 24\]"),
    ("sparse blob of another shape", "layout", _tensor("head_w", shape=[8, 5]),
     r"tensor 'head_w': block-rle blob holds 5 x 8 weights"),
    ("quote in a name", "demo", lambda h: h.update(name='m"; evil(); "'), r"""contains '"'"""),
    ("comment end in a name", "demo", lambda h: h.update(name="m */ evil(); /*"),
     r"contains '/\*'"),
    ("newline in a node name", "demo", _node_field("fc", name="fc\nx"), r"non-printable"),
    ("newline in a tensor name", "demo", lambda h: h["tensors"].update({"a\nb": {}}),
     r"tensors\['a\\nb'\]\.dtype is missing"),
    ("op not a string", "demo", _node_field("fc", op=["linear"]),
     r"node 0 \(\['linear'\] 'fc'\): op: unknown op"),
    # the graph's input and output
    ("two inputs", "demo", lambda h: h.update(inputs=["x", "w"]),
     r"graph inputs must be a list of one tensor name"),
    ("output not a tensor", "demo", lambda h: h.update(outputs=["z"]),
     r"graph output 'z' is not a tensor"),
    ("constant input", "demo", lambda h: h.update(inputs=["w"]), r"graph input 'w' is a constant"),
    ("dangling activation", "demo", _ghost,
     r"tensor 'ghost' is an activation that nothing produces"),
    # nodes: ops, arity, references, order
    ("unknown op", "demo", _node_field("fc", op="gemm"), r"node 0 \('gemm' 'fc'\): op: unknown op"),
    ("conv relabelled softmax", "hybrid", _node_field("stem", op="softmax"),
     r"node 0 \(softmax 'stem'\): inputs: takes 2 tensors, got 3"),
    ("add relabelled matmul", "hybrid", _node_field("mb_add", op="matmul_qk"),
     r"node 4 \(matmul_qk 'mb_add'\): attrs\.input1_zp: unknown attribute \(this op takes: heads"),
    ("duplicated node", "demo", _duplicate_node(None),
     r"node 1 \(linear 'fc'\): name clashes with node 0's"),
    ("duplicated node renamed", "demo", _duplicate_node("fc2"),
     r"node 1 \(linear 'fc2'\): output 'y': is already written"),
    ("names clashing in C", "hybrid", _node_field("mb_dw", name="mb.add"),
     r"node 4 \(add 'mb_add'\): name clashes with node 2's"),
    ("unknown input", "demo", _input("fc", 0, "nope"),
     r"node 0 \(linear 'fc'\): input 0 'nope' \(x\): is not a tensor"),
    ("nodes out of order", "hybrid", _swap_first_nodes,
     r"node 0 \(conv2d 'mb_expand'\): input 0 'stem_out' \(x\): is read before it is produced"),
    ("cycle", "hybrid", _input("stem", 0, "stem_out"),
     r"node 0 \(conv2d 'stem'\): input 0 'stem_out' \(x\): is read before it is produced"),
    ("activation as weights", "demo", _input("fc", 1, "x"),
     r"input 1 'x' \(weights\): must be a constant"),
    ("constant as input", "demo", _input("fc", 0, "w"),
     r"input 0 'w' \(x\): must be an activation"),
    ("bias of another dtype", "demo", _input("fc", 2, "w"),
     r"input 2 'w' \(bias\): must be int32, got int8"),
    ("two outputs", "demo", _node_field("fc", outputs=["y", "x"]), r"outputs: takes 1 tensor"),
    # attributes: presence, type, range
    ("missing attribute", "demo", lambda h: _node(h, "fc")["attrs"].pop("shift"),
     r"node 0 \(linear 'fc'\): attrs\.shift: missing"),
    ("unknown attribute", "demo", _attrs("fc", shfit=0), r"attrs\.shfit: unknown attribute"),
    ("multiplier not a list", "demo", _attrs("fc", multiplier="big"),
     r"attrs\.multiplier: must be a list of integers"),
    ("shift out of range", "demo", lambda h: _node(h, "fc")["attrs"]["shift"].__setitem__(0, -1000),
     r"attrs\.shift: -1000 is out of range -31\.\.30"),
    ("multiplier beyond Q31", "demo",
     lambda h: _node(h, "fc")["attrs"]["multiplier"].__setitem__(3, 2**31),
     r"attrs\.multiplier: 2147483648 is out of range 0\.\.2147483647"),
    ("zero point beyond int8", "demo", _attrs("fc", input_zp=200),
     r"attrs\.input_zp: 200 is out of range -128\.\.127"),
    ("float zero point", "demo", _attrs("fc", input_zp=1.5), r"attrs\.input_zp: must be an int"),
    ("bool zero point", "demo", _attrs("fc", output_zp=True), r"attrs\.output_zp: must be an int"),
    ("null zero point", "demo", _attrs("fc", output_zp=None), r"attrs\.output_zp: must be an int"),
    ("a multiplier short", "demo", _shorter_multiplier,
     r"attrs\.multiplier: has 15 values for 16 output channels"),
    ("empty clamp", "demo", _attrs("fc", act_min=100, act_max=0),
     r"attrs\.act_min: 100 is above act_max 0"),
    ("zero heads", "hybrid", _attrs("block0_attn_qk", heads=0), r"attrs\.heads: 0 is out of range"),
    ("heads not dividing", "hybrid", _attrs("block0_attn_qk", heads=3),
     r"attrs\.heads: 3 does not divide the width 16 of input 0"),
    ("heads disagreeing", "hybrid", _attrs("block0_attn_av", heads=1),
     r"attrs\.heads: 1, the attention has 2 heads"),
    ("scalar shift out of range", "hybrid", _attrs("block0_attn_qk", shift=31),
     r"attrs\.shift: 31 is out of range"),
    ("left shift", "hybrid", _attrs("mb_add", left_shift=30), r"attrs\.left_shift: 30 is out"),
    ("positive input shift", "hybrid", _attrs("mb_add", input1_shift=3),
     r"attrs\.input1_shift: 3 is out of range -31\.\.0"),
    ("negative padding", "hybrid", _attrs("stem", padding=[-1, 0, 0, 0]),
     r"node 0 \(conv2d 'stem'\): attrs\.padding: -1 is out of range"),
    ("padding a whole kernel", "hybrid", _attrs("stem", padding=[3, 3, 3, 3]),
     r"attrs\.padding: 3, 3 on the height: not below the kernel 3"),
    ("zero stride", "hybrid", _attrs("stem", stride=0), r"attrs\.stride: 0 is out of range"),
    ("block hint", "hybrid", _attrs("stem", block=3), r"attrs\.block: must be one of \[1, 2,"),
    ("negative eps", "hybrid", _attrs("norm", eps=-1), r"attrs\.eps: -1 is out of range"),
    ("not a permutation", "layout", _attrs("swap", perm=[0, 1, 1, 3]),
     r"node 2 \(transpose 'swap'\): attrs\.perm: \[0, 1, 1, 3\] is not a permutation"),
    ("transpose blocks", "layout", _attrs("swap", shape=[1, 4, 4, 9]),
     r"attrs\.shape: x inner holds 144 values, the input 128"),
    ("pooling kernel", "layout", _attrs("pool", kernel=[2]), r"attrs\.kernel: must have 2 values"),
    # shapes along the graph
    ("output shape", "demo", _tensor("y", shape=[8, 15]),
     r"node 0 \(linear 'fc'\): output 'y': has shape \[8, 15\], the op computes \[8, 16\]"),
    ("input features", "demo", _tensor("x", shape=[8, 25]),
     r"input 0 'x': has 25 features, the weights take 24"),
    ("reshaped activation", "hybrid", _tensor("to_tokens_out", shape=[16, 4]),
     r"node 7 \(layernorm 'block0_norm1'\): input 1 'block0_norm1_gamma': has shape \[16\], "
     r"the op needs \[4\]"),
    ("reshape losing values", "hybrid", _tensor("to_tokens_out", shape=[4, 15]),
     r"output 'to_tokens_out': shape \[4, 15\] holds 60 values, the op makes 64"),
    ("conv channels", "hybrid", _tensor("stem_out", shape=[4, 4, 9]),
     r"output 'stem_out': has shape \[4, 4, 9\], the op computes \[4, 4, 8\]"),
    ("add of two shapes", "hybrid", _input("mb_add", 1, "mb_expand_out"),
     r"input 1 'mb_expand_out': has shape \[4, 4, 16\], the op needs \[4, 4, 8\]"),
    ("attention rank", "hybrid",
     _input("block0_attn_qk", 1, "embed_out"),
     r"input 1 'embed_out': must be 2-D, got shape \[2, 2, 16\]"),
]  # fmt: skip


@pytest.mark.parametrize(("graph", "mutate", "message"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_tampered_header_is_refused(files, graph, mutate, message) -> None:
    h = header_of(files[graph])
    mutate(h)
    with pytest.raises(ir.IRFormatError, match=message) as caught:
        ir.from_bytes(reframe(files[graph], h), source="m.tfir")
    assert str(caught.value).startswith("m.tfir: ") and "\n" not in str(caught.value)


def test_more_layers_than_the_firmware_can_number_are_refused() -> None:
    graph = GRAPHS["demo"]()
    graph.nodes *= 65_537
    with pytest.raises(ir.IRFormatError, match=r"65,537 nodes: .* 16 bits \(at most 65,535\)"):
        check_graph(graph)


def _deep(depth: int, closed: bool = True) -> bytes:
    return b"[" * depth + (b"]" * depth if closed else b"")


FRAMING: list[tuple[str, dict[str, Any], str]] = [
    ("version 0", {"version": 0}, r"corrupt \(format v0"),
    ("reserved field", {"reserved": 1}, r"reserved field 1"),
    ("bytes after the checksum", {"tail": b"\x00"}, r"1 bytes after its checksum"),
    ("deep nesting", {"meta": _deep(100_000)}, r"malformed header: nested more than 32 deep"),
    ("deep unclosed nesting", {"meta": _deep(5_000, closed=False)}, r"nested more than 32 deep"),
    ("nesting in a string is text", {"meta": b'{"s": "' + _deep(100) + b'"}'}, ""),
    ("duplicate key", {"meta": b'{"a": 1, "a": 2}'}, r"duplicate key 'a'"),
    ("NaN", {"meta": b"NaN"}, r"NaN is not a JSON number"),
    ("not UTF-8", {"meta": b'"\xff"'}, r"malformed header"),
    ("huge integer", {"meta": b"1" * 5000}, r"malformed header"),
    ("blob bytes nobody owns", {"blob": b"\x00" * 8}, r"blob holds 8 bytes no tensor owns"),
]


@pytest.mark.parametrize(("change", "message"), [c[1:] for c in FRAMING],
                         ids=[c[0] for c in FRAMING])  # fmt: skip
def test_tampered_framing_is_refused(files, change, message) -> None:
    data = files["demo"]
    h = header_of(data)
    assert h["meta"] == {}
    text = json.dumps(h).encode()
    change = dict(change)
    if "meta" in change:  # raw JSON, which json.dumps could not write
        text = text.replace(b'"meta": {}', b'"meta": ' + change.pop("meta"))
    if "blob" in change:
        change["blob"] = blob_of(data) + change["blob"]
    tampered = reframe(data, text, **change)
    if not message:
        assert ir.from_bytes(tampered).meta == {"s": "[" * 100 + "]" * 100}
        return
    with pytest.raises(ir.IRFormatError, match=message):
        ir.from_bytes(tampered)


def test_padding_between_tensors_must_be_zero(files) -> None:
    data = files["demo"]
    blob = bytearray(blob_of(data))
    blob[380:384] = b"\x01\x00\x00\x00"
    h = header_of(data)
    h["tensors"]["w"]["data"]["nbytes"] = 380  # w's last 4 bytes become padding
    with pytest.raises(ir.IRFormatError, match=r"tensors\.w\.data is followed by non-zero"):
        ir.from_bytes(reframe(data, h, blob=bytes(blob)))


@pytest.mark.parametrize("graph", sorted(GRAPHS))
def test_valid_models_load_and_compile_as_before(files, graph) -> None:
    made = GRAPHS[graph]()
    back = ir.from_bytes(files[graph])
    assert ir.digest(back) == ir.digest(made)
    assert generate(back).render() == generate(made).render()


def test_encoding_only_where_the_op_decodes_it() -> None:
    graph = GRAPHS["hybrid"]()
    t = graph.tensors["mb_dw_w"]  # depthwise weights: the depthwise kernel is dense only
    blob = sparse_format.encode(t.data.reshape(t.shape[0], -1), 1)
    graph.tensors["mb_dw_w"] = dataclasses.replace(
        t, data=np.frombuffer(blob, np.uint8).copy(), encoding=sparse_format.ENCODING
    )
    message = r"node 2 \(depthwise_conv2d 'mb_dw'\): input 1 'mb_dw_w' \(weights\): cannot be"
    with pytest.raises(ir.IRFormatError, match=message):
        ir.to_bytes(graph)  # nothing invalid is written either


def _compile(tmp_path, data: bytes) -> subprocess.CompletedProcess[str]:
    (tmp_path / "m.tfir").write_bytes(data)
    return subprocess.run(
        [sys.executable, "-m", "tinyformer.cli", "compile", "m.tfir", "-o", "out"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip


@pytest.mark.parametrize("name", ["fc", "[/fc]"])  # the second is rich markup, printed as is
def test_cli_compile_of_a_tampered_file_is_one_line(tmp_path, files, name) -> None:
    h = header_of(files["demo"])
    _node(h, "fc").update(name=name)
    _node(h, name)["attrs"]["shift"][0] = -1000
    proc = _compile(tmp_path, reframe(files["demo"], h))
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    want = f"error: m.tfir: node 0 (linear '{name}'): attrs.shift: -1000 is out of range -31..30"
    assert proc.stderr.strip() == want
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="needs arm-none-eabi-gcc")
def test_names_of_any_allowed_characters_compile(tmp_path, files) -> None:
    """Into C comments and strings, the plan plot's labels, the CLI's tables: as they are."""
    odd = "a [/x] {b} %s é^_#"
    h = header_of(files["demo"])
    h["name"] = odd
    h["tensors"][odd] = h["tensors"].pop("x")
    h.update(inputs=[odd])
    _node(h, "fc").update(name="fc [/x] {b} %s ^_#")
    _input("fc [/x] {b} %s ^_#", 0, odd)(h)
    proc = _compile(tmp_path, reframe(files["demo"], h))
    assert proc.returncode == 0, proc.stderr
    assert odd in proc.stdout and (tmp_path / "out" / "plan.png").is_file()
    assert f'"{odd}"' in (tmp_path / "out" / "model" / "model.c").read_text()
