"""IR files: round trip, and clear errors for corrupt, truncated or newer-version files."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from tinyformer.engine import ir
from tinyformer.engine.codegen import generate, plan_graph
from tinyformer.engine.demo import demo_graph, demo_input
from tinyformer.engine.ops.linear import fully_connected
from tinyformer.engine.reference import outputs
from tinyformer.engine.validate import check_graph


def test_round_trip_keeps_everything(tmp_path) -> None:
    g = demo_graph(1, 5, 12, 7)
    back = ir.load(ir.save(g, tmp_path / "m.tfir"))
    assert back.name == g.name and back.inputs == g.inputs and back.outputs == g.outputs
    for name, t in g.tensors.items():
        b = back.tensors[name]
        assert (b.shape, b.dtype, b.zero_point) == (t.shape, t.dtype, t.zero_point)
        if t.data is not None:
            np.testing.assert_array_equal(b.data, t.data)
    assert back.nodes[0].attrs["multiplier"] == [int(v) for v in g.nodes[0].attrs["multiplier"]]
    assert ir.digest(back) == ir.digest(g)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: b"XXXX" + b[4:], "bad magic"),
        (lambda b: b[: len(b) // 2], "truncated"),
        (lambda b: b[:60] + bytes([b[60] ^ 1]) + b[61:], "corrupt"),
        (lambda b: b[:4] + struct.pack("<H", ir.FORMAT_VERSION + 1) + b[6:], "newer TinyFormer"),
        (lambda b: b"", "bad magic"),
    ],
)
def test_damaged_files_fail_clearly(tmp_path, damage, message) -> None:
    path = tmp_path / "m.tfir"
    path.write_bytes(damage(ir.to_bytes(demo_graph())))
    with pytest.raises(ir.IRFormatError, match=message):
        ir.load(path)


def test_missing_file_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(ir.IRFormatError, match="cannot read IR file"):
        ir.load(tmp_path / "nope.tfir")


def test_graph_reading_an_unproduced_tensor_is_invalid() -> None:
    g = demo_graph()
    g.nodes[0].inputs[0] = "y"
    with pytest.raises(ir.IRFormatError, match="before it is produced"):
        check_graph(g)


def test_reference_interpreter_runs_the_op_semantics() -> None:
    g = demo_graph(2, 6, 20, 9)
    x = demo_input(g, 2)
    a = g.nodes[0].attrs
    expected = fully_connected(
        x, g.tensors["w"].data, g.tensors["b"].data, a["input_zp"], a["output_zp"],
        a["multiplier"], a["shift"],
    )  # fmt: skip
    np.testing.assert_array_equal(outputs(g, x), expected)
    with pytest.raises(ValueError, match="must be int8"):
        outputs(g, x.astype(np.int16))


def test_codegen_places_tensors_from_the_plan() -> None:
    g = demo_graph(0, 4, 16, 8)
    plan = plan_graph(g)
    c = generate(g, plan)
    assert c.arena_bytes == plan.arena_bytes
    assert c.input_offset == plan.offsets["x"] and c.output_offset == plan.offsets["y"]
    assert "tf_fully_connected_s8(" in c.render()
    assert plan.ratio <= 1.05
