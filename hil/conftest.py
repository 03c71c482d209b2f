"""HIL fixtures: `pytest hil/` builds firmware and runs it on a target (QEMU by default).

As in pytest-embedded, tests take a `dut` (a connected DeviceClient) so one test runs on any
target: `--target qemu|renode|board` (board options: --port, --probe, --pyocd-target, --pack).
Every test honours them: in-process through the `target` fixture, and the `tinyformer`
commands a test starts through `target_args`. A board that cannot be reached (no port, no
probe) skips every test that needs the target with the same one reason; a test that only
makes sense on QEMU is marked `qemu_only(why)` and skips on other targets saying so.

Counts: QEMU's repeat exactly; a board's (DWT cycles, caches on) are compared after a
warm-up run, within --count-tolerance (default 2 % on a board: what the caches and the
flash's ART accelerator leave of run-to-run variation once warm).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tinyformer.compiler.driver import CompileReport, compile_model, firmware_in
from tinyformer.compiler.firmware import Firmware, build
from tinyformer.engine import ir
from tinyformer.engine.cmodel import CModel
from tinyformer.engine.codegen import generate
from tinyformer.engine.demo import demo_graph
from tinyformer.engine.ir import Graph
from tinyformer.hil.client import DeviceClient
from tinyformer.hil.errors import TargetUnavailable
from tinyformer.hil.targets.base import Target
from tinyformer.hil.targets.registry import make_target

BOARD_OPTIONS = ("--port", "--probe", "--pyocd-target", "--pack")
BOARD_COUNT_TOLERANCE = 0.02


# helpers shared with tests/ (processes.py); appended, so hil/ modules win a name clash
sys.path.append(str(Path(__file__).resolve().parent.parent / "tests"))


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("tinyformer")
    group.addoption("--target", default="qemu", help="qemu (default), renode or board")
    group.addoption("--port", default=None, help="board: serial port")
    group.addoption("--probe", default=None, help="board: pyOCD probe unique id")
    group.addoption("--pyocd-target", default=None, help="board: pyOCD target name")
    group.addoption("--pack", default=None, help="board: CMSIS pack (.pack) for pyOCD")
    group.addoption(
        "--count-tolerance",
        type=float,
        default=None,
        help="relative difference allowed between warm runs' counts (default: 0 on an "
        f"emulator, {BOARD_COUNT_TOLERANCE:g} on a board)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "qemu_only(why): the test only makes sense on QEMU")
    if config.getoption("--target") != "board":
        given = [opt for opt in BOARD_OPTIONS if config.getoption(opt) is not None]
        if given:  # a lab user who forgot --target board would test the emulator instead
            raise pytest.UsageError(f"{', '.join(given)}: only with --target board")


def pytest_runtest_setup(item: pytest.Item) -> None:
    mark = item.get_closest_marker("qemu_only")
    target = item.config.getoption("--target")
    if mark is not None and target != "qemu":
        pytest.skip(f"QEMU only ({mark.args[0]}), not run on --target {target}")


@pytest.fixture(scope="session")
def target_args(pytestconfig: pytest.Config, target: Target) -> list[str]:
    """The target options as `tinyformer` takes them, for the commands a test runs."""
    args = ["--target", target.name]
    for opt in BOARD_OPTIONS:
        value = pytestconfig.getoption(opt)
        if value is not None:
            args += [opt, str(value)]
    return args


@pytest.fixture(scope="session")
def target(pytestconfig: pytest.Config) -> Target:
    name = pytestconfig.getoption("--target")
    opts = {}
    if name == "board":
        opts = {
            "port": pytestconfig.getoption("--port"),
            "probe_id": pytestconfig.getoption("--probe"),
            "pyocd_target": pytestconfig.getoption("--pyocd-target"),
            "pack": pytestconfig.getoption("--pack"),
        }
    try:
        tgt = make_target(name, **opts)
        tgt.check()  # once: a missing board skips every test that needs it, for one reason
    except TargetUnavailable as exc:
        pytest.skip(str(exc))
    return tgt


@pytest.fixture(scope="session")
def count_tolerance(pytestconfig: pytest.Config, target: Target) -> float:
    given = pytestconfig.getoption("--count-tolerance")
    if given is not None:
        return float(given)
    return BOARD_COUNT_TOLERANCE if target.name == "board" else 0.0


@pytest.fixture(scope="session")
def build_firmware(
    tmp_path_factory: pytest.TempPathFactory, target: Target
) -> Callable[..., Firmware]:
    """Compile a graph, a CModel or a folder holding a model.c into firmware."""

    def _build(model: Graph | CModel | Path, **kwargs: object) -> Firmware:
        root = tmp_path_factory.mktemp("fw")
        if isinstance(model, Graph):
            model = generate(model)
        if isinstance(model, CModel):
            model.write(root / "model")
            model = root / "model"
        return build(model, root / "build", board=target.board, **kwargs)

    return _build


@pytest.fixture(scope="session")
def demo() -> Graph:
    return demo_graph(seed=0, tokens=8, in_features=40, out_features=24)


@pytest.fixture(scope="session")
def demo_firmware(build_firmware: Callable[..., Firmware], demo: Graph) -> Firmware:
    return build_firmware(demo)


@pytest.fixture
def dut(target: Target, demo_firmware: Firmware) -> Iterator[DeviceClient]:
    with target.session(demo_firmware) as client:
        yield client


def compile_graph(graph: Graph, folder: Path, board: str) -> tuple[CompileReport, Firmware, Graph]:
    """``tinyformer compile`` of ``graph`` saved in ``folder``: the report, the firmware and
    the graph as the compiled folder holds it."""
    ir.save(graph, folder / "model.tfir")
    report = compile_model(folder / "model.tfir", folder / "out", board=board)
    fw, compiled = firmware_in(folder / "out", board)
    return report, fw, compiled


FIXTURES = Path(__file__).parent / "fixtures"


def processes_running(path: Path) -> list[int]:
    """PIDs whose command line names ``path`` (or a file under it): an emulator, a compiler
    or a make we may have left behind."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if str(path).encode() in cmdline:
            pids.append(int(entry))
    return pids


@pytest.fixture(scope="session")
def ray_cluster(target: Target) -> Iterator[Any]:
    """A real multi-node Ray cluster on this machine, shared by the tests that need one: a head
    with one emulator core and a second node with another and a GPU (a resource: tasks that
    ask for it go there; there is no CUDA behind it). One CPU each: this machine has two."""
    if target.name != "qemu":
        pytest.skip("the cluster's emulator workers are QEMU")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray
    from ray.cluster_utils import Cluster

    from tinyformer.cluster.runtime import NAMESPACE, QEMU

    fast = {"health_check_period_ms": 500, "health_check_failure_threshold": 4}
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 1,
            "resources": {QEMU: 1},
            "include_dashboard": False,
            "_system_config": fast,
        },
    )
    try:
        cluster.add_node(num_cpus=1, num_gpus=1, resources={QEMU: 1})
        cluster.wait_for_nodes()
        ray.init(
            address=cluster.address, namespace=NAMESPACE, logging_level="ERROR", log_to_driver=False
        )
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()
