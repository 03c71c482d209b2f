"""Bulk evaluation on QEMU: inputs preloaded into the board's PSRAM and LOADed, each image's
LOAD + RUN + READ queued behind the previous one's, the reference beside the emulator. Same
outputs and counts as one image after another over the UART, and nothing is accepted that
RUN does not prove."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import compile_graph

from tinyformer.compiler.firmware import Firmware, build
from tinyformer.engine import ir, reference
from tinyformer.engine.builder import random_hybrid_graph
from tinyformer.engine.codegen import generate
from tinyformer.hil import protocol as p
from tinyformer.hil.accuracy import ImageRuns, run_images
from tinyformer.hil.client import DeviceClient
from tinyformer.hil.errors import HilError, LinkError
from tinyformer.hil.lossy_link import LinkFaults
from tinyformer.hil.targets.qemu import QemuTarget
from tinyformer.perf.evaluate_bench import bench_evaluate


@pytest.fixture(autouse=True)
def _qemu_only(target) -> None:
    if target.name != "qemu":
        pytest.skip("preloading inputs is QEMU's: its loader fills the PSRAM before boot")


@pytest.fixture(scope="module")
def hybrid(tmp_path_factory: pytest.TempPathFactory) -> tuple[ir.Graph, Firmware]:
    """A conv + transformer model whose memory plan reuses its input's bytes."""
    folder = tmp_path_factory.mktemp("hybrid")
    _, fw, graph = compile_graph(random_hybrid_graph(seed=3), folder, "mps2-an500")
    return graph, fw


def _inputs(graph: ir.Graph, n: int, seed: int = 0) -> np.ndarray:
    shape = graph.tensors[graph.inputs[0]].shape
    return np.random.default_rng(seed).integers(-128, 128, (n, *shape), dtype=np.int8)


def test_bulk_gives_the_uart_path_s_outputs_and_counts(hybrid) -> None:
    graph, fw = hybrid
    x = _inputs(graph, 6)
    done: list[int] = []
    bulk = run_images(QemuTarget(), fw, graph, x, on_image=done.append)
    serial = run_images(QemuTarget(), fw, graph, x, preload=False)
    assert done == [1, 2, 3, 4, 5, 6]
    assert bulk.bit_exact.all() and serial.bit_exact.all()
    np.testing.assert_array_equal(bulk.outputs, serial.outputs)
    np.testing.assert_array_equal(bulk.counts, serial.counts)  # LOAD changes no count
    ref = np.stack([reference.outputs(graph, image).reshape(-1) for image in x])
    np.testing.assert_array_equal(bulk.references, ref)  # weights decoded once: same values
    both = ImageRuns.concat([run_images(QemuTarget(), fw, graph, x[:2]), bulk])
    np.testing.assert_array_equal(both.outputs, np.concatenate([bulk.outputs[:2], bulk.outputs]))


def test_sessions_of_a_full_preload_region_follow_each_other(hybrid, monkeypatch) -> None:
    graph, fw = hybrid
    x = _inputs(graph, 5, seed=1)
    monkeypatch.setattr(QemuTarget, "preload_bytes", lambda self, fw: 2 * x[0].nbytes)
    runs = run_images(QemuTarget(), fw, graph, x)  # sessions of 2, 2 and 1 images
    assert runs.bit_exact.all() and len(runs.outputs) == 5


def test_after_the_first_image_no_request_waits_for_a_reply(hybrid, monkeypatch) -> None:
    graph, fw = hybrid
    x = _inputs(graph, 5, seed=2)
    requests: list[p.Msg] = []
    real = DeviceClient.request

    def counted(self: DeviceClient, ftype: p.Msg, *args, **kwargs) -> p.Frame:
        requests.append(ftype)
        return real(self, ftype, *args, **kwargs)

    monkeypatch.setattr(DeviceClient, "request", counted)
    with QemuTarget().preloaded_session(fw, x.tobytes()) as dev:
        requests.clear()  # the handshake's
        outs = list(dev.run_preloaded([image.tobytes() for image in x]))
        assert dev.restarts == 0
    # the first run learns the output size step by step; the others are queued, not requested
    assert requests == [p.Msg.LOAD, p.Msg.RUN, p.Msg.READ]
    for image, out in zip(x, outs, strict=True):
        assert out.output == reference.outputs(graph, image).tobytes()
        assert out.layer_counts == [] and out.total > 0


def test_load_is_proven_by_run_like_input(hybrid) -> None:
    graph, fw = hybrid
    x = _inputs(graph, 2, seed=3)
    with QemuTarget().preloaded_session(fw, x.tobytes()) as dev:
        dev.retries = 1
        # the host names input 1 but LOAD copies input 0: RUN refuses every time
        with pytest.raises(LinkError, match=r"lost each time.*STALE_INPUT"):
            dev.run(x[1].tobytes(), preloaded=0)
        with pytest.raises(LinkError, match="rejected LOAD: BAD_ARGS"):  # past the data
            dev.run(x[0].tobytes(), preloaded=(16 << 20) // x[0].nbytes)
        assert (
            dev.run(x[1].tobytes(), preloaded=1).output == reference.outputs(graph, x[1]).tobytes()
        )


def test_pipelined_runs_over_a_lossy_link_accept_no_wrong_output(hybrid) -> None:
    graph, fw = hybrid
    x = _inputs(graph, 16, seed=4)
    target = QemuTarget(link_faults=LinkFaults(1e-2, 3e-3, seed=5), reply_timeout=0.5)
    with target.preloaded_session(fw, x.tobytes()) as dev:
        outs = list(dev.run_preloaded([image.tobytes() for image in x]))
        restarts = dev.restarts
    for image, out in zip(x, outs, strict=True):
        assert out.output == reference.outputs(graph, image).tobytes()
    assert target.proxy is not None and target.proxy.to_host.damaged > 0
    assert restarts > 0  # queued images met the damage and ran again step by step


def test_the_preload_region_is_the_emulator_s_only(hybrid, tmp_path: Path) -> None:
    graph, fw = hybrid
    assert fw.info.preload_region == (0x60000000, 16 << 20)
    generate(graph).write(tmp_path / "model")
    board = build(tmp_path / "model", tmp_path / "build", board="stm32f746")
    assert board.info.preload_region[1] == 0  # silicon has no loader: inputs go over UART
    too_many = QemuTarget().preloaded_session(fw, bytes((16 << 20) + 1))
    with pytest.raises(HilError, match="do not fit the firmware's preload region"), too_many:
        pass


def test_evaluate_bench_records_both_ways(hybrid, tmp_path: Path) -> None:
    graph, _ = hybrid
    table = bench_evaluate(QemuTarget(), {"hybrid": (graph, 3)}, tmp_path / "evaluate_speed.csv")
    saved = pd.read_csv(tmp_path / "evaluate_speed.csv")
    assert list(saved["mode"]) == ["serial", "bulk"] == list(table["mode"])
    assert (saved["images"] == 3).all() and saved["bit_exact"].all()
    assert (saved["images_per_minute"] > 0).all() and (saved["cpu_s_per_image"] > 0).all()
    assert saved["count_per_inference"].nunique() == 1
