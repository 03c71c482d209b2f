"""Nothing wrong is ever accepted: the real firmware under QEMU, a model that overwrites its
input (as real ones do), bytes damaged in both directions of the socket, resets in the middle
of requests, boot loops and lockups told apart."""

from __future__ import annotations

import random
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import FIXTURES, compile_graph

from tinyformer.compiler.firmware import Firmware
from tinyformer.engine import ir, reference
from tinyformer.engine.builder import random_hybrid_graph
from tinyformer.engine.codegen import plan_graph
from tinyformer.hil import protocol as p
from tinyformer.hil.errors import BootLoop, HilError, InputLost, TargetTimeout
from tinyformer.hil.lossy_link import LinkFaults
from tinyformer.hil.targets.qemu import QemuTarget

pytestmark = pytest.mark.qemu_only("damaged links, resets through its monitor, lockups")


@pytest.fixture(scope="module")
def hybrid(tmp_path_factory: pytest.TempPathFactory) -> tuple[ir.Graph, Firmware]:
    """A conv + transformer model whose memory plan reuses its input's bytes."""
    folder = tmp_path_factory.mktemp("hybrid")
    _, fw, graph = compile_graph(random_hybrid_graph(seed=0), folder, "mps2-an500")
    return graph, fw


def _inputs(graph: ir.Graph, n: int) -> list[np.ndarray]:
    shape = graph.tensors[graph.inputs[0]].shape
    rng = np.random.default_rng(5)
    return [rng.integers(-128, 128, shape, dtype=np.int8) for _ in range(n)]


def test_the_model_overwrites_its_input(hybrid) -> None:
    graph, _ = hybrid
    plan = plan_graph(graph)
    x = graph.inputs[0]
    lo, hi = plan.offsets[x], plan.offsets[x] + plan.sizes[x]
    reused = [t for t, at in plan.offsets.items() if t != x and at < hi and lo < at + plan.sizes[t]]
    assert reused, "the test model must overwrite its input, or a repeated RUN proves nothing"


def test_a_repeated_run_is_refused_not_run_on_an_overwritten_input(hybrid) -> None:
    graph, fw = hybrid
    x = _inputs(graph, 1)[0]
    with QemuTarget().session(fw) as dev:
        dev.write_input(x.tobytes())
        assert dev.request(p.Msg.RUN, p.run_payload(x.tobytes())).type == p.Msg.RUN_R
        with pytest.raises(InputLost, match="STALE_INPUT"):  # the input was consumed
            dev.request(p.Msg.RUN, p.run_payload(x.tobytes()))
        dev.write_input(x.tobytes())
        with pytest.raises(InputLost, match="STALE_INPUT"):  # not the input the host names
            dev.request(p.Msg.RUN, p.run_payload(x.tobytes()[::-1]))
        out = dev.run(x.tobytes()).output  # and the client recovers by itself
    np.testing.assert_array_equal(np.frombuffer(out, np.int8), reference.outputs(graph, x))


@pytest.mark.parametrize(
    "faults",
    [
        LinkFaults(to_device=3e-3, seed=1),
        LinkFaults(to_host=3e-3, seed=2),
        LinkFaults(to_device=3e-3, to_host=3e-3, seed=3),
    ],
    ids=["to-device", "to-host", "both"],
)
def test_lossy_link_accepts_no_wrong_output(hybrid, faults: LinkFaults) -> None:
    graph, fw = hybrid
    target = QemuTarget(link_faults=faults, reply_timeout=0.5)
    wrong = 0
    with target.session(fw) as dev:
        for x in _inputs(graph, 12):
            out = np.frombuffer(dev.run(x.tobytes()).output, np.int8)
            wrong += not np.array_equal(out, reference.outputs(graph, x))
        stats = (dev.resends, dev.damaged, dev.restarts)
    assert wrong == 0
    proxy = target.proxy
    assert proxy is not None
    assert (proxy.to_device.damaged > 0) == (faults.to_device > 0)
    assert (proxy.to_host.damaged > 0) == (faults.to_host > 0)
    assert sum(stats) > 0  # the damage was met, and recovered from


class MonitoredQemu(QemuTarget):
    """QEMU with its monitor on a Unix socket, to reset the machine as a watchdog would."""

    def __init__(self, monitor: Path, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.monitor = monitor

    def command(self, elf: Path, server_fd: int) -> list[str]:
        cmd = super().command(elf, server_fd)
        cmd[cmd.index("-monitor") + 1] = f"unix:{self.monitor},server=on,wait=off"
        return cmd

    def system_reset(self) -> None:
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(self.monitor))
            s.sendall(b"system_reset\n")
            time.sleep(0.01)  # let the monitor read it before the connection closes


def test_reset_in_the_middle_of_run_fails_that_run_and_is_recovered(hybrid, tmp_path) -> None:
    graph, fw = hybrid
    target = MonitoredQemu(tmp_path / "monitor.sock")
    x = _inputs(graph, 1)[0]
    with target.session(fw) as dev:
        dev.write_input(x.tobytes())
        dev._send(p.Msg.RUN, 200, p.run_payload(x.tobytes()))
        target.system_reset()
        # BOOT (reset during the run) or STALE_INPUT (reset before it): never a RUN reply
        with pytest.raises(InputLost):
            dev.request(p.Msg.RUN, p.run_payload(x.tobytes()))
        out = np.frombuffer(dev.run(x.tobytes()).output, np.int8)
    np.testing.assert_array_equal(out, reference.outputs(graph, x))


def test_a_reset_between_run_and_read_whose_boot_was_lost_is_caught(hybrid, tmp_path) -> None:
    """The BOOT frame may be lost on a noisy line: the CRCs in the RUN reply still tell the
    wiped arena READ returns from the output the run computed."""
    graph, fw = hybrid
    target = MonitoredQemu(tmp_path / "monitor.sock")
    x = _inputs(graph, 1)[0].tobytes()
    with target.session(fw) as dev:
        dev.write_input(x)
        summary = p.RunSummary.unpack(dev.request(p.Msg.RUN, p.run_payload(x)).payload)
        target.system_reset()
        time.sleep(0.5)
        dev.port.reset_input_buffer()  # the BOOT frame, lost
        output = dev.read(p.ReadWhat.OUTPUT, summary.output_bytes)
        raw = dev.read(p.ReadWhat.LAYER_COUNTS, 4 * summary.n_layers)
        with pytest.raises(InputLost, match="not what the run computed"):
            dev._proven(x, summary, output, raw)
        with pytest.raises(InputLost, match="names another input"):
            dev._proven(x[::-1], summary, output, raw)
    assert dev.boots == 0  # the reset went unseen, as on a noisy line


def test_resets_at_random_moments_never_give_a_wrong_output(hybrid, tmp_path) -> None:
    graph, fw = hybrid
    target = MonitoredQemu(tmp_path / "monitor.sock", reply_timeout=0.5)
    rng = random.Random(7)
    wrong = 0
    with target.session(fw) as dev:
        for x in _inputs(graph, 12):
            timer = threading.Timer(rng.uniform(0, 0.03), target.system_reset)
            timer.start()
            out = np.frombuffer(dev.run(x.tobytes()).output, np.int8)
            timer.join()
            wrong += not np.array_equal(out, reference.outputs(graph, x))
        lost = dev.restarts
    assert wrong == 0
    assert lost > 0, "no reset landed inside an inference: the test proves nothing"


def test_boot_loop_is_named(build_firmware) -> None:
    fw = build_firmware(FIXTURES / "boot_loop_model")
    start = time.monotonic()
    with pytest.raises(BootLoop, match="restarted 3 times"), QemuTarget().session(fw) as dev:
        dev.run(bytes(8))
    assert time.monotonic() - start < 20


def test_lockup_quotes_qemu(build_firmware) -> None:
    fw = build_firmware(FIXTURES / "lockup_model")
    lockup = r"QEMU exited: .*Lockup.*\(PC=0x"
    with pytest.raises(HilError, match=lockup) as info, QemuTarget().session(fw) as dev:
        dev.run(bytes(8))
    assert not isinstance(info.value, TargetTimeout)


def test_run_timeout_scales_with_the_model(hybrid) -> None:
    _, fw = hybrid
    assert fw.expected_count is not None
    assert QemuTarget().run_timeout_for(fw) == 60.0  # a small model: the floor
    big = Firmware(fw.elf, fw.board, fw.stack_size, expected_count=10**10)
    assert QemuTarget().run_timeout_for(big) == pytest.approx(5000.0)
    assert QemuTarget(run_timeout=2.5).run_timeout_for(big) == 2.5


def test_bytes_arriving_mid_run_do_not_change_its_counts(tmp_path) -> None:
    """PINGs sent while a long run computes are held by QEMU until the run ends (the receive
    interrupt is masked for the counted window): the counts are the model's alone, equal to
    those of a run nobody disturbed. Without the mask each PING adds its handler's
    instructions to the layer it lands in."""
    from tinyformer.nas.candidate import space_graph

    _, fw, graph = compile_graph(space_graph("digits"), tmp_path / "fw", "mps2-an500")
    x = _inputs(graph, 1)[0].tobytes()
    with QemuTarget(reply_timeout=30.0).session(fw) as quiet:
        expected = quiet.run(x)
        assert quiet.pings == 0
    with QemuTarget().session(fw) as pinged:
        pinged.first_ping = 0.002  # 2 ms into the run, then at doubling intervals to its end
        results = [pinged.run(x) for _ in range(3)]
        assert pinged.pings > 0
    for result in results:
        assert result.output == expected.output
        assert result.total == expected.total
        assert result.layer_counts == expected.layer_counts
