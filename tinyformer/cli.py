"""The `tinyformer` command. It wires options to the library and holds no logic of its own."""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tinyformer.boards import BOARDS, DEFAULT_BOARD
from tinyformer.errors import ToolError
from tinyformer.hil.errors import HilError
from tinyformer.nas.options import QUICK, SearchOptions

if TYPE_CHECKING:  # the CLI imports torch-side modules only in the commands that use them
    from tinyformer.model.config import SubnetConfig

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

    ids = f"git {build_id()}, firmware {firmware_id()}"
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
    run_timeout: float | None,
):
    from tinyformer.hil.targets.registry import make_target

    if name == "board":
        return make_target(
            name, port=port, probe_id=probe, pyocd_target=pyocd_target, run_timeout=run_timeout
        )
    given = [f for f, v in (("--port", port), ("--probe", probe), ("--pyocd-target", pyocd_target))
             if v is not None]  # fmt: skip
    if given:  # a lab user who forgot --target board would measure the emulator instead
        raise ValueError(f"{', '.join(given)}: only with --target board (not {name})")
    return make_target(name, run_timeout=run_timeout)


def _print_measurement(summary: dict[str, Any], extra: dict[str, Any]) -> None:
    table = Table(show_header=False, box=None)
    for key, value in {**summary, **extra}.items():
        if key == "layer_counts":
            continue
        is_count = isinstance(value, int) and not isinstance(value, bool)
        table.add_row(key, f"{value:,}" if is_count else escape(str(value)))  # a model's name
    console.print(table)


def _print_profile(profile: list[Any], unit: str, measured: bool) -> None:
    """The per-layer table: measured (run) or planned (compile: flash, scratch, live arena,
    predicted)."""
    kind = (
        f"count = {unit}, predicted by the latency model (error vs the count)"
        if measured
        else f"predicted {unit} (latency model), live = arena in use (* the peak)"
    )
    table = Table(
        title=f"per layer: {kind}, MACs dense (pruned ones included), weights dense or "
        "block-sparse B<size> <pruned>",
        box=None,
    )
    tail = (
        ("count", "share", "MAC/cnt", "predicted", "error")
        if measured
        else ("flash", "scratch", "live", "predicted")
    )
    peak = max((row.live_bytes for row in profile), default=0)
    for name in ("#", "op", "output", "weights", "MACs", *tail):
        left = name in ("op", "output", "weights")
        table.add_column(name, justify="left" if left else "right", no_wrap=True)
    for row in profile:
        guess = "" if row.predicted is None else f"{row.predicted:,}"
        if measured:
            error = (
                f"{(row.predicted - row.count) / row.count:+.1%}"
                if row.predicted is not None and row.count
                else ""
            )
            per = f"{row.macs_per_count:.2f}" if row.macs_per_count else ""
            cells = (f"{row.count:,}", f"{row.share:.1%}", per, guess, error)
        else:
            live = f"{row.live_bytes:,}" + ("*" if row.live_bytes == peak else " ")
            cells = (f"{row.flash_bytes:,}", f"{row.scratch_bytes:,}", live, guess)
        macs = f"{row.macs:,}" if row.macs else ""
        table.add_row(str(row.layer), row.op, row.output, row.weights, macs, *cells)
    console.print(table)


@app.command()
@friendly_errors
def compile(
    model: Annotated[Path, typer.Argument(help="IR file (.tfir)")],
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
    from tinyformer.compiler.profile import layer_profile
    from tinyformer.engine import ir
    from tinyformer.perf.latency import SampleStore

    if library:
        check_api(api)  # before the build, not after
    report = compile_model(model, out, board=board)
    profile = []
    if layers:
        spec = BOARDS[board]  # its samples come from the target that measures this board
        latency = SampleStore(results).model(spec.target, spec.count_unit)
        profile = layer_profile(ir.load(out / "model.tfir"), predict=latency.predict_known)
    lib = export_library(out, api) if library else None
    if as_json:
        summary = asdict(report)
        if layers:
            summary["per_layer"] = [asdict(r) for r in profile]  # "layers" is the count
        if lib:
            summary["library"] = str(lib.folder)
        print(json.dumps(summary))
    else:
        _print_measurement(asdict(report), {"folder": str(out)})
        if layers:
            _print_profile(profile, BOARDS[board].count_unit, measured=False)
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
    run_timeout: RunTimeoutOpt = None,
    record: Annotated[bool, typer.Option(help="append the measurement to results/")] = False,
    results: ResultsOpt = Path("results"),
    layers: Annotated[
        bool,
        typer.Option(
            help="profile: each layer's count, share, MACs per count and the latency model's "
            "prediction (from --results)"
        ),
    ] = False,
) -> None:
    """Run a compiled model (default: an int8 linear 64x96->192) on a target and measure it."""
    from dataclasses import asdict

    import numpy as np

    from tinyformer.compiler.driver import compile_model, firmware_in
    from tinyformer.compiler.profile import layer_profile
    from tinyformer.engine import ir
    from tinyformer.engine.demo import demo_graph, demo_input
    from tinyformer.engine.reference import outputs
    from tinyformer.engine.work import graph_macs
    from tinyformer.hil.measure import measure
    from tinyformer.perf.latency import SampleStore
    from tinyformer.results import MEASUREMENTS, append_rows

    tgt = _target(target, port, probe, pyocd_target, run_timeout)
    with tempfile.TemporaryDirectory(prefix="tinyformer-run-") as tmp:
        if model_dir is None:
            model_dir = Path(tmp) / "demo"
            ir.save(demo_graph(seed), Path(tmp) / "demo.tfir")
            compile_model(Path(tmp) / "demo.tfir", model_dir, board=tgt.board)
        firmware, graph = firmware_in(model_dir, tgt.board)
        x = demo_input(graph, seed)
        m = measure(tgt, firmware, x.tobytes())
    expected = outputs(graph, x)
    got = np.frombuffer(m.output, expected.dtype).reshape(expected.shape)
    n_macs = graph_macs(graph)
    extra: dict[str, Any] = {"matches_reference": bool(np.array_equal(got, expected))}
    if n_macs:
        extra["macs"] = n_macs
        extra[f"macs_per_{m.count_unit[:-1]}"] = round(n_macs / max(m.total, 1), 4)
    profile = []
    if layers:  # beside each count, what the search's latency model would have said
        latency = SampleStore(results).model(tgt.name, m.count_unit)
        profile = layer_profile(graph, m.layer_counts, predict=latency.predict_known)
    if record:
        append_rows(m.rows(), results / MEASUREMENTS)
    if as_json:
        if layers:
            extra["per_layer"] = [asdict(row) for row in profile]
        print(json.dumps({**m.summary(), **extra}))
    else:
        _print_measurement(m.summary(), extra)
        if layers:
            _print_profile(profile, m.count_unit, measured=True)
    if not extra["matches_reference"]:
        raise HilError("the firmware's output differs from the numpy reference")


def _summary_table(summary: dict[str, Any], title: str) -> None:
    table = Table(title=escape(title), show_header=False)  # names from files are not markup
    for key, value in summary.items():
        table.add_row(key, f"{value:,}" if isinstance(value, int) else escape(str(value)))
    console.print(table)


@app.command()
@friendly_errors
@_model_errors
def demo(
    out: Annotated[Path, typer.Option("-o", help="output folder")] = Path("build/demo"),
    target: TargetOpt = "qemu",
    port: PortOpt = None,
    probe: ProbeOpt = None,
    pyocd_target: PyocdTargetOpt = None,
    run_timeout: RunTimeoutOpt = None,
    results: ResultsOpt = Path("results"),
    resume: Annotated[bool, typer.Option(help="continue an interrupted demo")] = False,
    fresh: FreshOpt = False,
    dataset: Annotated[
        str, typer.Option(help="digits (embedded) or cifar10 (with --root)")
    ] = "digits",
    root: RootOpt = None,
) -> None:
    """The main job (digits, or CIFAR-10 from --root): SuperNAS, supernet, SparseNAS,
    prune + QAT, firmware, evaluation on the target."""
    from dataclasses import replace

    from tinyformer.nas.pipeline import demo as run_demo

    if dataset not in ("digits", "cifar10"):
        raise ValueError(f"demo runs on digits or cifar10, not {dataset!r}")
    opts = replace(QUICK, dataset=dataset, root=None if root is None else str(root))
    tgt = _target(target, port, probe, pyocd_target, run_timeout)
    summary = run_demo(opts, tgt, out, results, resume, fresh=fresh)
    summary.pop("config")
    _summary_table(summary, f"TinyFormer demo ({out})")
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
    run_timeout: RunTimeoutOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run every test image on the target; accuracy and agreement with the host reference."""
    from tinyformer.compiler.driver import firmware_in
    from tinyformer.data import load_dataset_for_input
    from tinyformer.hil.accuracy import evaluate_on_target
    from tinyformer.quant.evaluate import model_input

    tgt = _target(target, port, probe, pyocd_target, run_timeout)
    fw, graph = firmware_in(model_dir, tgt.board)
    h, _, c = graph.tensors[graph.inputs[0]].shape  # NHWC without the N
    test = load_dataset_for_input(dataset, root, h, c).test
    acc = evaluate_on_target(tgt, fw, graph, model_input(test.images), test.labels)
    if as_json:
        print(json.dumps(acc.to_dict()))
    else:
        _summary_table(acc.to_dict(), f"{graph.name} on {target}")
    if acc.agreement < 1.0:
        raise HilError("the firmware's predictions differ from the host reference")


@app.command()
@friendly_errors
@_model_errors
def search(
    out: Annotated[Path, typer.Option("-o", help="output folder")] = Path("build/search"),
    dataset: Annotated[str, typer.Option(help="digits (embedded), cifar10 or folder")] = "digits",
    root: RootOpt = None,
    image_size: ImageSizeOpt = None,
    channels: ChannelsOpt = None,
    target: TargetOpt = "qemu",
    port: PortOpt = None,
    probe: ProbeOpt = None,
    pyocd_target: PyocdTargetOpt = None,
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
) -> None:
    """SuperNAS + SparseNAS with measured latency in the loop; Pareto front in OUT/search."""
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
    )
    tgt = _target(target, port, probe, pyocd_target, run_timeout)
    cand, _ = run_search(opts, tgt, out, results, resume, fresh=fresh)
    console.print(f"chosen {cand.key}: {out / 'search' / 'chosen'} (IR and firmware)")


@app.command()
@friendly_errors
def bench(
    what: Annotated[str, typer.Argument(help="kernels, latency or link")] = "kernels",
    target: TargetOpt = "qemu",
    port: PortOpt = None,
    probe: ProbeOpt = None,
    pyocd_target: PyocdTargetOpt = None,
    run_timeout: RunTimeoutOpt = None,
    results: ResultsOpt = Path("results"),
) -> None:
    """kernels: results/kernels.csv. latency: latency-model MAPE on held-out candidates.
    link: inferences over a link damaging 1e-4..1e-2 of the bytes (QEMU): results/link.csv."""
    tgt = _target(target, port, probe, pyocd_target, run_timeout)
    if what == "kernels":
        from tinyformer.perf.kernel_bench import bench_kernels

        table = bench_kernels(tgt, results / "kernels.csv")
        console.print(table.drop(columns=["git_rev", "time"]).to_string(index=False))
    elif what == "latency":
        from tinyformer.perf.calibrate import LATENCY_REPORT, check_latency_model

        table = check_latency_model(tgt, results)
        console.print(table.drop(columns=["time"]).to_string(index=False))
        console.print(f"MAPE {table['mape_pct'].iloc[0]:.2f} % -> {results / LATENCY_REPORT}")
    elif what == "link":
        from tinyformer.perf.link_bench import LINK_BENCH, bench_link

        table = bench_link(tgt, results / LINK_BENCH)
        console.print(table.drop(columns=["time"]).to_string(index=False))
        wrong = int(table["wrong_accepted"].sum())
        if wrong:
            raise HilError(f"{wrong} wrong outputs were accepted: see {results / LINK_BENCH}")
    else:
        raise ValueError(f"unknown benchmark {what!r}; available: kernels, latency, link")


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
    progress: Annotated[bool, typer.Option(help="show progress bars")] = True,
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
        **{k: v for k, v in given.items() if v is not None},
    )
    result = run_pipeline(out, cfg)
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
    summary.update({name: str(path) for name, path in result.paths.items()})
    if as_json:
        print(json.dumps(summary))
    else:
        _print_measurement(summary, {})


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
