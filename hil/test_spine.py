"""The firmware spine end to end: boot, INFO, RUN, counts, stack, link errors."""

from __future__ import annotations

import numpy as np
import pytest
from counts import assert_counts_agree, warm_runs
from faulty_port import FaultyPort

from tinyformer.engine.codegen import generate
from tinyformer.engine.demo import demo_graph, demo_input
from tinyformer.engine.reference import outputs
from tinyformer.hil import protocol as p
from tinyformer.hil.errors import LinkError


def test_boot_and_info(dut, demo) -> None:
    info = dut.info()
    assert info.protocol_version == p.PROTOCOL_VERSION
    assert info.input_bytes == 8 * 40
    assert info.output_bytes == 8 * 24
    assert info.model_hash == generate(demo).digest().hex()
    assert info.n_layers == 1
    assert info.board in ("mps2-an500", "stm32f746")
    assert info.count_unit in ("instructions", "cycles")
    assert "gcc" in info.build


@pytest.mark.parametrize(
    ("seed", "n", "k", "m"),
    [(1, 1, 1, 1), (2, 3, 5, 7), (3, 17, 33, 9), (4, 64, 96, 192), (5, 2, 130, 65), (6, 9, 4, 2)],
)
def test_run_matches_reference(target, build_firmware, seed, n, k, m) -> None:
    graph = demo_graph(seed, n, k, m)
    fw = build_firmware(graph)
    x = demo_input(graph, seed)
    with target.session(fw) as dev:
        result = dev.run(x.tobytes())
    out = np.frombuffer(result.output, np.int8).reshape(n, m)
    np.testing.assert_array_equal(out, outputs(graph, x))


def test_counts_repeat(dut, demo, count_tolerance) -> None:
    """After a warm-up run (a board's first run after reset fills its caches), the same
    input counts the same: exactly on QEMU, within --count-tolerance on a board."""
    x = demo_input(demo, 0).tobytes()
    first, second = warm_runs(dut, x)
    assert first.total > 0
    assert_counts_agree([first.total], [second.total], count_tolerance)
    assert_counts_agree(first.layer_counts, second.layer_counts, count_tolerance)
    assert 0 < first.layer_counts[0] <= first.total


def test_counts_repeat_across_boots(target, demo_firmware, demo, count_tolerance) -> None:
    x = demo_input(demo, 0).tobytes()
    totals = []
    for _ in range(2):
        with target.session(demo_firmware) as dev:
            totals.append(warm_runs(dev, x, n=1)[0].total)
    assert_counts_agree(totals[:1], totals[1:], count_tolerance)


def test_stack_high_water_mark(dut, demo) -> None:
    result = dut.run(demo_input(demo, 0).tobytes())
    assert 0 < result.stack_used < result.stack_bytes


def test_corrupt_frame_gets_error_and_link_recovers(dut) -> None:
    frame = bytearray(p.encode_frame(p.Frame(p.Msg.INFO, 77, b"")))
    frame[2] ^= 0x10  # damage the body, keep the delimiter
    dut.port.write(b"\x00" + bytes(frame))
    reply = dut._await(77, p.Msg.INFO, timeout=2.0)  # a BAD_CRC error: resend
    assert reply == "damaged"
    raw = p.encode_frame(p.Frame(0x42, 78, b""))  # a type the firmware does not know
    dut.port.write(raw)
    reply = dut._await(78, p.Msg.INFO, timeout=2.0)
    assert isinstance(reply, p.Frame) and reply.type == p.Msg.ERROR
    assert reply.payload[0] == p.ErrorCode.UNKNOWN_TYPE
    assert dut.info().n_layers == 1  # the link keeps working


def test_garbage_bytes_then_request_succeeds(dut) -> None:
    dut.port.write(bytes(range(1, 256)) * 8 + b"\x00")  # one long frame: OVERFLOW error
    assert dut.info().input_bytes > 0


def test_bad_arguments_are_rejected(dut) -> None:
    info = dut.info()
    with pytest.raises(LinkError, match="BAD_ARGS"):
        dut.request(p.Msg.INPUT, p.input_payload(info.input_bytes, b"\x01"))
    with pytest.raises(LinkError, match="BAD_ARGS"):
        dut.request(p.Msg.READ, p.read_payload(p.ReadWhat.OUTPUT, 0, info.output_bytes + 1))


def test_flaky_link_retries_to_the_right_answer(dut, demo) -> None:
    faulty = FaultyPort(dut.port, seed=3, p_corrupt=0.15, p_drop=0.15)
    dut.port = faulty
    dut.reply_timeout = 0.5
    x = demo_input(demo, 0)
    result = dut.run(x.tobytes())
    for _ in range(3):
        result = dut.run(x.tobytes())
    out = np.frombuffer(result.output, np.int8).reshape(8, 24)
    np.testing.assert_array_equal(out, outputs(demo, x))
    assert faulty.damaged_writes > 0
    # Not every damaged write costs a resend: a dropped trailing delimiter is harmless,
    # since every frame also starts with one.
    assert dut.resends > 0


def test_reset_reboots_and_serves_again(dut) -> None:
    dut.reset()
    assert dut.booted
    assert dut.info().n_layers == 1
