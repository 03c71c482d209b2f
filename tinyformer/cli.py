"""The `tinyformer` command. It wires options to the library and holds no logic of its own."""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Callable, Sequence
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table

from tinyformer.boards import DEFAULT_BOARD
from tinyformer.errors import ToolError
from tinyformer.hil.errors import HilError
from tinyformer.nas.options import QUICK, SearchOptions

if TYPE_CHECKING:  # the CLI imports torch-side modules only in the commands that use them
    from tinyformer.model.config import SubnetConfig
    from tinyformer.perf.layer_report import LayerReport

app = typer.Typer(
    help="Design, compile and measure sparse transformer models for Cortex-M MCUs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err = Console(stderr=True)


def _version(value: bool) -> None:
    """--version: the package, the checkout and the firmware id that tags latency samples
    (what a bug report about a count needs)."""
    if not value:
        return
    from importlib.metadata import version

    from tinyformer.compiler.firmware import build_id
    from tinyformer.compiler.source_hash import firmware_id

    try:
        fw = firmware_id()
    except ToolError as exc:  # e.g. no cost-model fit to generate the probe models' C with
        fw = f"unknown ({exc})"
    ids = f"git {build_id()}, firmware {fw}"
    console.print(f"tinyformer {version('tinyformer')} ({ids})")
    raise typer.Exit()


@app.callback()
def options(
    show_version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="print the version"),
    ] = False,
) -> None:
    """Design, compile and measure sparse transformer models for Cortex-M MCUs."""


TargetOpt = Annotated[str, typer.Option("--target", "-t", help="qemu, renode or board")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print one JSON object")]
PortOpt = Annotated[str | None, typer.Option(help="board: serial port, e.g. /dev/ttyACM0")]
ProbeOpt = Annotated[str | None, typer.Option(help="board: pyOCD probe unique id")]
PyocdTargetOpt = Annotated[str | None, typer.Option(help="board: pyOCD target name")]
PackOpt = Annotated[
    str | None, typer.Option(help="board: CMSIS pack for pyOCD, e.g. Keil.STM32F7xx_DFP.pack")
]
RunTimeoutOpt = Annotated[
    float | None,
    typer.Option(
        min=0.001,
        help="seconds one inference may take before the target is called hung (default: 10x "
        "the model's predicted time, at least 60 s)",
    ),
]
ResultsOpt = Annotated[Path, typer.Option(help="folder of the results tables")]
RootOpt = Annotated[Path | None, typer.Option(help="data folder (cifar10, folder)")]
ImageSizeOpt = Annotated[
    int | None, typer.Option(help="folder data: resize every image to this square size")
]
ChannelsOpt = Annotated[
    int | None, typer.Option(help="folder data: 1 (luminance) or 3 (RGB); default 3 if any colour")
]
FreshOpt = Annotated[bool, typer.Option(help="start over, replacing an earlier run in OUT")]
DeviceOpt = Annotated[
    str, typer.Option(help="training device: auto (CUDA when present), cpu, cuda or cuda:N")
]
ThreadsOpt = Annotated[
    int | None,
    typer.Option(
        "--threads", min=1, help="CPU training threads (default: OMP_NUM_THREADS, else the "
        "cores this process may use: its affinity, capped by a cgroup CPU quota)",
    ),
]  # fmt: skip
AmpOpt = Annotated[bool, typer.Option(help="mixed precision on CUDA (float16 + loss scaling)")]
ProgressOpt = Annotated[
    bool, typer.Option(help="a line per epoch and generation; bars too on a terminal")
]
RayOpt = Annotated[
    str | None,
    typer.Option(
        "--ray", help="Ray cluster address (default: $RAY_ADDRESS, else this machine alone)"
    ),
]


def friendly_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the library's expected failures into one clear line and exit code 1."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (ToolError, ValueError, FileNotFoundError) as exc:  # IRFormatError: a ValueError
            # escape: the message may quote a file's names, which are not rich markup;
            # soft_wrap: one line however long (rich would wrap at 80 columns off a terminal)
            err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            sys.exit(1)
        except OSError as exc:  # a folder given for a file, no permission, disk full, ...
            where = f"{exc.filename}: " if exc.filename else ""
            err.print(
                f"[bold red]error:[/] {escape(f'{where}{exc.strerror or exc}')}",
                highlight=False,
                soft_wrap=True,
            )
            sys.exit(1)

    return wrapper


def _model_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Data set and checkpoint problems become ValueErrors, which friendly_errors reports."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from tinyformer.data import DatasetError
        from tinyformer.model.checkpoint import CheckpointError

        try:
            return fn(*args, **kwargs)
        except (DatasetError, CheckpointError) as exc:
            raise ValueError(str(exc)) from exc

    return wrapper


def _target(
    name: str,
    port: str | None,
    probe: str | None,
    pyocd_target: str | None,
    pack: str | None,
    run_timeout: float | None,
):
    from tinyformer.hil.targets.registry import make_target

    if name == "board":
        return make_target(name, port=port, probe_id=probe, pyocd_target=pyocd_target, pack=pack,
                           run_timeout=run_timeout)  # fmt: skip
    board_opts = (("--port", port), ("--probe", probe), ("--pyocd-target", pyocd_target),
                  ("--pack", pack))  # fmt: skip
    given = [f for f, v in board_opts if v is not None]
    if given:  # a lab user who forgot --target board would measure the emulator instead
        raise ValueError(f"{', '.join(given)}: only with --target board (not {name})")
    return make_target(name, run_timeout=run_timeout)


def _show(grid: Table) -> None:
    """Off a terminal (a pipe, a file) as wide as the table needs: rich would squeeze it into
    80 columns and cut hashes and numbers short with ellipses."""
    need = Measurement.get(console, console.options.update_width(1000), grid).maximum
    out = console if console.is_terminal else Console(width=max(console.width, need))
    out.print(grid)


def _print_measurement(summary: dict[str, Any], extra: dict[str, Any]) -> None:
    table = Table(show_header=False, box=None)
    for key, value in {**summary, **extra}.items():
        if key == "layer_counts":
            continue
        is_count = isinstance(value, int) and not isinstance(value, bool)
        table.add_row(key, f"{value:,}" if is_count else escape(str(value)))  # a model's name
    _show(table)


def _print_layers(report: LayerReport) -> None:
    """The per-layer table (perf/layer_report.py) and the lines that say where its figures
    come from."""
    from tinyformer.perf.layer_report import notes, table

    _show(table(report))
    for line in notes(report):
        console.print(escape(line), highlight=False, soft_wrap=True)


@app.command("import")
@friendly_errors
def import_tflite(
    model: Annotated[Path, typer.Argument(help="int8 TensorFlow Lite model (.tflite)")],
    out: Annotated[Path, typer.Option("-o", "--out", help="IR file to write (.tfir)")],
) -> None:
    """Import an int8 .tflite model as an IR file, bit-exact with TFLite Micro."""
    from tinyformer.engine import ir
    from tinyformer.engine.tflite_import import import_tflite as read_tflite

    graph = read_tflite(model)
    ir.save(graph, out)
    ops = sorted({n.op for n in graph.nodes})
    console.print(f"{out}: {len(graph.nodes)} layers ({', '.join(ops)}), TFLite rounding")


@app.command()
@friendly_errors
def compile(
    model: Annotated[Path, typer.Argument(help="IR file (.tfir) or int8 .tflite model")],
    out: Annotated[Path, typer.Option("-o", "--out", help="output folder")],
    board: Annotated[str, typer.Option(help="mps2-an500 (QEMU) or stm32f746")] = DEFAULT_BOARD,
    as_json: JsonOpt = False,
    layers: Annotated[
        bool,
        typer.Option(help="per layer: MACs, flash, scratch and the latency model's prediction"),
    ] = False,
    results: ResultsOpt = Path("results"),
    library: Annotated[
        bool,
        typer.Option(help="also OUT/library: the model's C and kernels for your own application"),
    ] = False,
    api: Annotated[
        str,
        typer.Option(help="--library's C names: API_run(), API_input(), ... (one per model)"),
    ] = "tf_model",
) -> None:
    """Compile an IR model into firmware; print flash, arena and predicted peak SRAM."""
    from dataclasses import asdict

    from tinyformer.compiler.driver import compile_model
    from tinyformer.compiler.library import check_api, export_library
    from tinyformer.engine import ir
    from tinyformer.perf.layer_report import CHART, predicted_layers

    if library:
        check_api(api)  # before the build, not after
    report = compile_model(model, out, board=board)
    per_layer = (
        predicted_layers(ir.load(out / "model.tfir"), board, results, out / CHART)
        if layers
        else None
    )
    lib = export_library(out, api) if library else None
    files = {"folder": str(out), "memory_plan": str(out / "plan.png")}
    if as_json:
        summary = {**asdict(report), **files}
        if per_layer:
            summary.update(per_layer.to_json())  # "layers" is the count
        if lib:
            summary["library"] = str(lib.folder)
        print(json.dumps(summary))
    else:
        _print_measurement(asdict(report), files)
        if per_layer:
            _print_layers(per_layer)
        if lib:
            console.print(
                f"C library: {lib.folder} ({len(lib.files)} files; `make -C {lib.folder}` "
                f"builds {lib.archive}, its README shows the API)"
            )


@app.command()
@friendly_errors
def run(
    model_dir: Annotated[
        Path | None, typer.Argument(help="compiled folder (default: the demo layer)")
    ] = None,
    target: TargetOpt = "qemu",
    as_json: JsonOpt = False,
    seed: Annotated[int, typer.Option(min=0, help="seed of the random input (and demo layer)")] = 0,
    port: PortOpt = None,
    probe: ProbeOpt = None,
    pyocd_target: PyocdTargetOpt = None,
    pack: PackOpt = None,
    run_timeout: RunTimeoutOpt = None,
    record: Annotated[bool, typer.Option(help="append the measurement to results/")] = False,
    results: ResultsOpt = Path("results"),
    layers: Annotated[
        bool,
        typer.Option(
            help="profile: each layer's count, ms at 216 MHz, share, MACs per count and the "
            "latency model's prediction (from --results); a chart in the model's folder"
        ),
    ] = False,
    input_file: Annotated[
        Path | None,
        typer.Option(
            "--input",
            help="the input: a .npy tensor (int8 codes, float values or a uint8 image) or an "
            "image file, converted to the model's input (default: random)",
        ),
    ] = None,
) -> None:
    """Run a compiled model (default: an int8 linear 64x96->192) on a target and measure it."""
    import numpy as np

    from tinyformer.compiler.driver import compile_model, firmware_in
    from tinyformer.engine import ir
    from tinyformer.engine.demo import demo_graph, demo_input
    from tinyformer.engine.reference import outputs
    from tinyformer.engine.work import graph_macs
    from tinyformer.hil.measure import measure
    from tinyformer.perf.latency import SampleStore, samples_of
    from tinyformer.perf.layer_report import measured_layers
    from tinyformer.perf.milliseconds import run_latency
    from tinyformer.quant.input_file import read_input
    from tinyformer.results import MEASUREMENTS, append_rows

    tgt = _target(target, port, probe, pyocd_target, pack, run_timeout)
    chart = None if model_dir is None else model_dir / f"latency_{tgt.name}.png"
    with tempfile.TemporaryDirectory(prefix="tinyformer-run-") as tmp:
        if model_dir is None:
            model_dir = Path(tmp) / "demo"
            ir.save(demo_graph(seed), Path(tmp) / "demo.tfir")
            compile_model(Path(tmp) / "demo.tfir", model_dir, board=tgt.board)
        firmware, graph = firmware_in(model_dir, tgt.board)
        x = demo_input(graph, seed) if input_file is None else read_input(input_file, graph)
        m = measure(tgt, firmware, x.tobytes())
    expected = outputs(graph, x)
    got = np.frombuffer(m.output, expected.dtype).reshape(expected.shape)
    n_macs = graph_macs(graph)
    extra: dict[str, Any] = {
        "input": "random" if input_file is None else str(input_file),
        "matches_reference": bool(np.array_equal(got, expected)),
    }
    if graph.tensors[graph.outputs[0]].shape[-1] > 1 and expected.ndim == 1:
        extra["top_class"] = int(np.argmax(got))  # a classifier's answer to the user's input
    if n_macs:
        extra["macs"] = n_macs
        extra[f"macs_per_{m.count_unit[:-1]}"] = round(n_macs / max(m.total, 1), 4)
    extra.update(run_latency(graph, m, results))
    per_layer = (
        measured_layers(graph, m.layer_counts, m.count_unit, tgt.name, results, chart)
        if layers
        else None
    )
    if record:  # the measurement, and its layers as latency samples (board runs calibrate ms)
        append_rows(m.rows(), results / MEASUREMENTS)
        SampleStore(results).add(samples_of(graph, m.layer_counts, tgt.name, m.count_unit))
    if as_json:
        if per_layer:
            extra.update(per_layer.to_json())
        print(json.dumps({**m.summary(), **extra}))
    else:
        _print_measurement(m.summary(), extra)
        if per_layer:
            _print_layers(per_layer)
    if not extra["matches_reference"]:
        raise HilError("the firmware's output differs from the numpy reference")


def _as_percentages(summary: dict[str, Any], fractions: Sequence[str]) -> dict[str, Any]:
    """``summary`` for people: its ``fractions`` (accuracies) as percentages."""
    from tinyformer.results import percent

    return {k: percent(v) if k in fractions else v for k, v in summary.items()}


def demo_display(summary: dict[str, Any]) -> dict[str, Any]:
    """The demo's summary for people: accuracies and agreements as percentages."""
    fractions = [k for k in summary if k.endswith(("_acc", "_agreement", "_fraction"))]
    return _as_percentages(summary, fractions)


def _summary_table(summary: dict[str, Any], title: str) -> None:
    table = Table(title=escape(title), show_header=False)  # names from files are not markup
    for key, value in summary.items():
        table.add_row(key, f"{value:,}" if isinstance(value, int) else escape(str(value)))
    console.print(table)


@app.command()
@friendly_errors
@_model_errors
def demo(
    out: Annotated[Path, typer.Option("-o", "--out", help="output folder")] = Path("build/demo"),
    target: TargetOpt = "qemu",
    port: PortOpt = None,
    probe: ProbeOpt = None,
    pyocd_target: PyocdTargetOpt = None,
    pack: PackOpt = None,
    run_timeout: RunTimeoutOpt = None,
    results: ResultsOpt = Path("results"),
    resume: Annotated[bool, typer.Option(help="continue an interrupted demo")] = False,
    fresh: FreshOpt = False,
    device: DeviceOpt = "auto",
    threads: ThreadsOpt = None,
    amp: AmpOpt = True,
    progress: ProgressOpt = True,
    ray: RayOpt = None,
    dataset: Annotated[
        str, typer.Option(help="digits (embedded) or cifar10 (with --root)")
    ] = "digits",
    root: RootOpt = None,
) -> None:
    """The main job (digits, or CIFAR-10 from --root): SuperNAS, supernet, SparseNAS,
    prune + QAT, firmware, evaluation on the target."""
    from dataclasses import replace

    from tinyformer.cluster.runtime import ray_session
    from tinyformer.nas.pipeline import demo as run_demo

    if dataset not in ("digits", "cifar10"):
        raise ValueError(f"demo runs on digits or cifar10, not {dataset!r}")
    opts = replace(
        QUICK, dataset=dataset, root=None if root is None else str(root), device=device,
        threads=threads, amp=amp, progress=progress,
    )  # fmt: skip
    tgt = _target(target, port, probe, pyocd_target, pack, run_timeout)
    with ray_session(ray):
        summary = run_demo(opts, tgt, out, results, resume, fresh=fresh)
    summary.pop("config")
    _summary_table(demo_display(summary), f"TinyFormer demo ({out})")
    console.print(f"recorded in {results / f'{dataset}_model.csv'}")


@app.command()
@friendly_errors
@_model_errors
def evaluate(
    model_dir: Annotated[Path, typer.Argument(help="a folder made by tinyformer compile")],
    dataset: Annotated[str, typer.Option(help="digits (embedded), cifar10 or folder")] = "digits",
    root: RootOpt = None,
    target: TargetOpt = "qemu",
    port: PortOpt = None,
    probe: ProbeOpt = None,
    pyocd_target: PyocdTargetOpt = None,
    pack: PackOpt = None,
    run_timeout: RunTimeoutOpt = None,
    as_json: JsonOpt = False,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
    ray: RayOpt = None,
    results: ResultsOpt = Path("results"),
) -> None:
    """Run every test image on the target(s); accuracy and agreement with the host reference,
    and the mean latency per inference (counts, and ms at 216 MHz as `run` gives them).
    The images are shared out over every free target of the kind in the Ray cluster."""
    from tinyformer.boards import BOARDS
    from tinyformer.cluster.evaluate import evaluate_sharded
    from tinyformer.cluster.pool import FirmwarePackage
    from tinyformer.cluster.runtime import ray_session
    from tinyformer.compiler.driver import firmware_in
    from tinyformer.data import load_dataset_for_input
    from tinyformer.hil.accuracy import check_data, progress_bar
    from tinyformer.perf.milliseconds import inference_latency
    from tinyformer.quant.evaluate import model_input

    tgt = _target(target, port, probe, pyocd_target, pack, run_timeout)
    _, graph = firmware_in(model_dir, tgt.board)
    h, _, c = graph.tensors[graph.inputs[0]].shape  # NHWC without the N
    test = load_dataset_for_input(dataset, root, h, c).test
    check_data(graph, test.image_shape, test.num_classes, f"the {dataset} test data")
    with (
        ray_session(ray),
        progress_bar(len(test), f"{graph.name} on {target}", progress) as on_image,
    ):
        run = evaluate_sharded(
            tgt, FirmwarePackage.of(model_dir), model_input(test.images), test.labels,
            on_image=on_image,
        )  # fmt: skip
    acc = run.accuracy
    unit = BOARDS[tgt.board].count_unit
    latency = {"count_unit": unit}
    latency |= inference_latency(graph, acc.mean_count_per_inference, unit, results)
    where = {"shards": len(run.shards), "targets": run.targets}
    if as_json:
        print(json.dumps(acc.to_dict() | latency | {"classes": list(test.classes)} | where))
    else:
        _summary_table(acc.display() | latency | where, f"{graph.name} on {target}")
    if acc.agreement < 1.0:
        raise HilError("the firmware's predictions differ from the host reference")


@app.command()
@friendly_errors
@_model_errors
def search(
    out: Annotated[Path, typer.Option("-o", "--out", help="output folder")] = Path("build/search"),
    dataset: Annotated[str, typer.Option(help="digits (embedded), cifar10 or folder")] = "digits",
    root: RootOpt = None,
    image_size: ImageSizeOpt = None,
    channels: ChannelsOpt = None,
    target: TargetOpt = "qemu",
    port: PortOpt = None,
    probe: ProbeOpt = None,
    pyocd_target: PyocdTargetOpt = None,
    pack: PackOpt = None,
    run_timeout: RunTimeoutOpt = None,
    results: ResultsOpt = Path("results"),
    max_latency: Annotated[
        float | None, typer.Option(help="latency target in the target's counts")
    ] = None,
    population: int = SearchOptions.population,
    generations: int = SearchOptions.generations,
    top_k: Annotated[
        int, typer.Option(help="candidates measured per generation")
    ] = SearchOptions.top_k,
    supernet_epochs: int = SearchOptions.supernet_epochs,
    space_samples: Annotated[
        int, typer.Option(help="subnets SuperNAS draws to score each candidate space")
    ] = SearchOptions.space_samples,
    seed: Annotated[int, typer.Option(min=0)] = SearchOptions.seed,
    resume: Annotated[bool, typer.Option(help="continue from the checkpoint in OUT")] = False,
    fresh: FreshOpt = False,
    device: DeviceOpt = "auto",
    threads: ThreadsOpt = None,
    amp: AmpOpt = True,
    progress: ProgressOpt = True,
    ray: RayOpt = None,
) -> None:
    """SuperNAS + SparseNAS with measured latency in the loop; Pareto front in OUT/search."""
    from tinyformer.cluster.runtime import ray_session
    from tinyformer.nas.pipeline import search as run_search

    opts = SearchOptions(
        dataset=dataset,
        root=None if root is None else str(root),
        image_size=image_size,
        channels=channels,
        supernet_epochs=supernet_epochs,
        space_samples=space_samples,
        population=population,
        generations=generations,
        top_k=top_k,
        max_latency=max_latency,
        seed=seed,
        device=device,
        threads=threads,
        amp=amp,
        progress=progress,
    )
    tgt = _target(target, port, probe, pyocd_target, pack, run_timeout)
    with ray_session(ray):
        cand, _ = run_search(opts, tgt, out, results, resume, fresh=fresh)
    console.print(f"chosen {cand.key}: {out / 'search' / 'chosen'} (IR and firmware)")


BENCHES = (
    "kernels",
    "latency",
    "link",
    "models",
    "evaluate",
    "train",
    "cpi",
    "cmsis-nn",
    "imported",
    "cluster",
    "farm",
    "sparse-cost",
)


@app.command()
@friendly_errors
def bench(
    what: Annotated[str, typer.Argument(help=", ".join(BENCHES))] = "kernels",
    target: TargetOpt = "qemu",
    port: PortOpt = None,
    probe: ProbeOpt = None,
    pyocd_target: PyocdTargetOpt = None,
    pack: PackOpt = None,
    run_timeout: RunTimeoutOpt = None,
    results: ResultsOpt = Path("results"),
    cmsis_nn: Annotated[
        Path | None, typer.Option(help="cmsis-nn: a CMSIS-NN checkout (not downloaded)")
    ] = None,
    device: DeviceOpt = "auto",
    threads: ThreadsOpt = None,
    ray: RayOpt = None,
) -> None:
    """kernels: results/kernels.csv. latency: latency-model MAPE on held-out candidates.
    link: inferences over a link damaging 1e-4..1e-2 of the bytes (QEMU): results/link.csv.
    models: CIFAR-scale subnets dense and block-sparse, whole-model figures: results/models.csv.
    evaluate: images per minute of evaluate, serial vs bulk: results/evaluate_speed.csv.
    cpi: board cycles vs QEMU instructions of the layers measured on both (recorded runs):
    results/board_vs_qemu.csv, which calibrates the milliseconds estimated on QEMU.
    cmsis-nn: CMSIS-NN's linear kernel from your checkout (--cmsis-nn) on the kernel bench's
    shapes, beside the constants the bench compares with: results/cmsis_nn.csv.
    train: training images/second, digits and CIFAR-scale models: results/training.csv.
    imported: .tflite models (ResNet-8 dense and block-pruned, DS-CNN, MobileNet-style, a
    transformer block) and
    TFLite rounding's cost per kernel: results/imported_models.csv.
    cluster: evaluate on 1 and 2 target workers (results/cluster.csv). farm: a simulated farm
    of 1..64 targets, candidates measured per hour (results/farm.csv, farm.png).
    sparse-cost: the engine's cost model (dense or block-sparse storage) fitted on QEMU counts
    of the FC and conv kernels: results/sparse_cost_calls.csv, engine/fitted/sparse_cost.json."""
    if what == "train":  # the host's CPU or GPU: no target
        from tinyformer.model.train_bench import TRAINING_BENCH, bench_training

        table = bench_training(
            results / TRAINING_BENCH, device, None if threads is None else [threads]
        )
        shown = ["model", "step", "device", "threads", "amp", "images_per_s", "host_load"]
        console.print(table[shown].to_string(index=False))
        console.print(f"-> {results / TRAINING_BENCH}")
        return
    tgt = _target(target, port, probe, pyocd_target, pack, run_timeout)
    if what in ("cluster", "farm"):
        from tinyformer.cluster.runtime import ray_session
        from tinyformer.perf.cluster_bench import bench_cluster, bench_farm

        with ray_session(ray):
            table = bench_cluster(tgt, results) if what == "cluster" else bench_farm(results)
        console.print(table.drop(columns=["time"]).to_string(index=False))
    elif what == "kernels":
        from tinyformer.perf.kernel_bench import MS_NOTE, bench_kernels

        table = bench_kernels(tgt, results / "kernels.csv")
        console.print(table.drop(columns=["git_rev", "time"]).to_string(index=False))
        console.print(MS_NOTE, highlight=False, soft_wrap=True)
    elif what == "latency":
        from tinyformer.perf.calibrate import LATENCY_REPORT, check_latency_model

        table = check_latency_model(tgt, results)
        console.print(
            table.drop(columns=["time", "ms_basis"]).to_string(index=False), soft_wrap=True
        )
        console.print(f"ms: {table['ms_basis'].iloc[0]}", highlight=False, soft_wrap=True)
        console.print(f"MAPE {table['mape_pct'].iloc[0]:.2f} % -> {results / LATENCY_REPORT}")
    elif what == "imported":
        from tinyformer.perf.imported_bench import IMPORTED_BENCH, bench_imported

        table = bench_imported(tgt, results / IMPORTED_BENCH)
        console.print(table.drop(columns=["git_rev", "time"]).to_string(index=False))
    elif what == "link":
        from tinyformer.perf.link_bench import LINK_BENCH, bench_link

        table = bench_link(tgt, results / LINK_BENCH)
        console.print(table.drop(columns=["time"]).to_string(index=False))
        wrong = int(table["wrong_accepted"].sum())
        if wrong:
            raise HilError(f"{wrong} wrong outputs were accepted: see {results / LINK_BENCH}")
    elif what == "models":
        from tinyformer.nas.bench_models import subnet_bench_models
        from tinyformer.perf.model_bench import MODELS, bench_models

        table = bench_models(tgt, subnet_bench_models(), results, progress=console.print)
        console.print(f"{len(table)} models -> {results / MODELS}")
    elif what == "evaluate":
        from tinyformer.nas.candidate import space_graph
        from tinyformer.perf.evaluate_bench import EVALUATE_BENCH, bench_evaluate

        models = {"digits-largest": (space_graph("digits"), 200),  # model, images
                  "cifar10-largest-75%": (space_graph("cifar10", sparsity=0.75), 40)}  # fmt: skip
        table = bench_evaluate(tgt, models, results / EVALUATE_BENCH)
        console.print(table.drop(columns=["time"]).to_string(index=False))
    elif what == "cpi":  # no run: compares what board and QEMU runs recorded
        from tinyformer.perf.milliseconds import BOARD_VS_QEMU, write_board_vs_qemu

        table = write_board_vs_qemu(results)
        if table.empty:
            raise ValueError(
                f"no layer in {results} was measured on both the board and QEMU with the "
                "current firmware: `tinyformer run DIR --record` a model compiled for each "
                "(--board stm32f746 with --target board; the default with --target qemu)"
            )
        console.print(table.drop(columns=["time"]).to_string(index=False))
        console.print(f"-> {results / BOARD_VS_QEMU}: ms on QEMU are calibrated by it")
    elif what == "cmsis-nn":
        from tinyformer.perf.cmsis_nn import CMSIS_NN_BENCH, bench_cmsis_nn

        if cmsis_nn is None:
            raise ValueError("bench cmsis-nn needs --cmsis-nn PATH: a CMSIS-NN checkout")
        table = bench_cmsis_nn(tgt, cmsis_nn, results)
        console.print(table.drop(columns=["time"]).to_string(index=False))
        console.print(f"-> {results / CMSIS_NN_BENCH}")
    elif what == "sparse-cost":
        from tinyformer.perf.sparse_cost_bench import CALLS, bench_sparse_cost

        fit = bench_sparse_cost(tgt, results, progress=console.print)
        for kernel, e in fit.error.items():
            console.print(
                f"{kernel}: {e.calls} calls, error mean {e.mean_pct:.2f} % max {e.max_pct:.2f} %"
            )
        console.print(f"-> {results / CALLS}, fit {fit.kernel_sources} of the kernel sources")
    else:
        raise ValueError(f"unknown benchmark {what!r}; available: {', '.join(BENCHES)}")


@app.command()
@friendly_errors
def worker(
    target: TargetOpt = "qemu",
    port: PortOpt = None,
    probe: ProbeOpt = None,
    pyocd_target: PyocdTargetOpt = None,
    pack: PackOpt = None,
    run_timeout: RunTimeoutOpt = None,
    ray: RayOpt = None,
    cpus: Annotated[
        int | None, typer.Option(min=0, help="CPUs this host lends (default: qemu all, board 0)")
    ] = None,
    emulators: Annotated[
        int | None, typer.Option(min=1, help="qemu: emulator workers (default: one per core)")
    ] = None,
) -> None:
    """Join a Ray cluster with this host's targets (an attached board, or emulator cores) until
    Ctrl-C; searches and evaluations anywhere in the cluster then use them."""
    import os

    from tinyformer.cluster.worker import serve

    address = ray or os.environ.get("RAY_ADDRESS")
    if not address:
        raise ValueError("worker joins a cluster: give --ray HEAD:6379 (or set RAY_ADDRESS)")
    tgt = _target(target, port, probe, pyocd_target, pack, run_timeout)
    cores = os.cpu_count() or 1

    def log(line: str) -> None:  # plain lines, at once: a service's log
        print(line, flush=True)

    if target == "board":
        serve(address, [tgt], cpus=cpus or 0, emulators=0, log=log)
    else:
        lent = cores if cpus is None else cpus
        serve(address, [], cpus=lent, emulators=emulators or cores, log=log)


# -- models: train (float -> block pruning -> QAT -> IR) and export ---------------------------


def _subnet_config(spec: str) -> SubnetConfig | str:
    """--config: "largest", "smallest", inline JSON or a JSON file's path."""
    from tinyformer.model.config import SubnetConfig

    if spec in ("largest", "smallest"):
        return spec
    if spec.lstrip().startswith("{"):
        return SubnetConfig.from_json(spec)
    if not Path(spec).exists():
        raise FileNotFoundError(
            f"config {spec!r} is neither 'largest', 'smallest', inline JSON nor a file"
        )
    return SubnetConfig.load(spec)


@app.command()
@friendly_errors
@_model_errors
def train(
    out: Annotated[Path, typer.Option("-o", "--out", help="output folder")],
    dataset: Annotated[str, typer.Option(help="digits, cifar10 or folder")] = "digits",
    root: RootOpt = None,
    image_size: ImageSizeOpt = None,
    channels: ChannelsOpt = None,
    config: Annotated[
        str | None, typer.Option(help="largest (default), smallest, a JSON file or inline JSON")
    ] = None,
    supernet: Annotated[
        Path | None, typer.Option(help="inherit the weights from this supernet checkpoint")
    ] = None,
    sparsity: Annotated[
        float | None, typer.Option(help="block sparsity of every pruned layer (default 0.75)")
    ] = None,
    block: Annotated[int | None, typer.Option(help="block size 1, 2, 4, 8, 16 (default 4)")] = None,
    plan: Annotated[
        Path | None, typer.Option(help="sparsity plan JSON (instead of --sparsity/--block)")
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="float training epochs (40)")] = None,
    prune_epochs: Annotated[int | None, typer.Option(help="gradual pruning epochs (30)")] = None,
    finetune_epochs: Annotated[
        int | None, typer.Option(help="epochs at the final sparsity (15)")
    ] = None,
    qat_epochs: Annotated[int | None, typer.Option(help="QAT epochs (10)")] = None,
    distill: Annotated[
        bool | None, typer.Option(help="distil from the dense model while pruning and in QAT (on)")
    ] = None,
    seed: Annotated[int, typer.Option(min=0, help="random seed")] = 0,
    progress: ProgressOpt = True,
    device: DeviceOpt = "auto",
    threads: ThreadsOpt = None,
    amp: AmpOpt = True,
    resume: Annotated[
        bool,
        typer.Option(help="continue the interrupted run in OUT (same settings) at its last epoch"),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Train a subnet, prune it blockwise, QAT it to int8 and export DIR/model.tfir."""
    from tinyformer.prune import SparsityPlan
    from tinyformer.quant.pipeline import PipelineConfig, run_pipeline

    if plan is not None and (sparsity is not None or block is not None):
        raise ValueError("give either --plan or --sparsity/--block, not both")
    given = {
        "root": None if root is None else str(root),
        "image_size": image_size,
        "channels": channels,
        "config": None if config is None else _subnet_config(config),
        "supernet": None if supernet is None else str(supernet),
        "plan": None if plan is None else SparsityPlan.load(plan),
        "sparsity": sparsity,
        "block": block,
        "epochs": epochs,
        "prune_epochs": prune_epochs,
        "finetune_epochs": finetune_epochs,
        "qat_epochs": qat_epochs,
        "distill": distill,
    }  # None: PipelineConfig's default
    cfg = PipelineConfig(
        dataset=dataset,
        seed=seed,
        progress=progress and not as_json,
        device=device,
        amp=amp,
        num_threads=threads,
        **{k: v for k, v in given.items() if v is not None},
    )
    result = run_pipeline(out, cfg, resume=resume)
    m = result.metrics
    keys = (
        "float_test_acc",
        "pruned_test_acc",
        "qat_test_acc",
        "reference_acc",
        "agreement",
        "exact_logits",
        "weight_bytes_dense",
        "weight_bytes_stored",
    )
    summary: dict[str, Any] = {k: m[k] for k in keys}
    summary["sparsity"] = round(m["sparsity"]["sparsity"], 4)
    summary["seconds"] = round(m["seconds"]["total"], 1)
    if "resumed_after" in m:
        summary["resumed_after"] = m["resumed_after"]
    summary.update({name: str(path) for name, path in result.paths.items()})
    if as_json:
        print(json.dumps(summary))
    else:
        _print_measurement(_as_percentages(summary, keys[:6]), {})


@app.command("export")
@friendly_errors
@_model_errors
def export_model(
    checkpoint: Annotated[Path, typer.Argument(help="qat.pt, or a float subnet.pt (PTQ)")],
    out: Annotated[Path, typer.Option("-o", "--out", help="IR file to write (.tfir)")],
    dataset: Annotated[str, typer.Option(help="calibration data for a float subnet")] = "digits",
    root: RootOpt = None,
    plan: Annotated[
        Path | None, typer.Option(help="sparsity plan of a float subnet (default: plan.json)")
    ] = None,
    encode: Annotated[bool, typer.Option(help="store pruned weights block-sparse")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Export a QAT checkpoint (or a float subnet, calibrated post-training) to an IR file."""
    from tinyformer.engine import ir
    from tinyformer.prune import SparsityPlan
    from tinyformer.quant.pipeline import export_checkpoint

    graph = export_checkpoint(
        checkpoint,
        out,
        dataset,
        None if root is None else str(root),
        None if plan is None else SparsityPlan.load(plan),
        encode,
    )
    summary = {
        "model": str(out),
        "nodes": len(graph.nodes),
        "sparse_layers": sum(t.encoding is not None for t in graph.tensors.values()),
        "digest": ir.digest(graph),
    }
    if as_json:
        print(json.dumps(summary))
    else:
        _print_measurement(summary, {})


def main() -> None:
    app()


if __name__ == "__main__":
    main()
