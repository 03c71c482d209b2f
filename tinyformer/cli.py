"""The `tinyformer` command. It wires options to the library and holds no logic of its own."""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from tinyformer.hil.errors import HilError

app = typer.Typer(
    help="Design, compile and measure sparse transformer models for Cortex-M MCUs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err = Console(stderr=True)

TargetOpt = Annotated[str, typer.Option("--target", "-t", help="qemu, renode or board")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print one JSON object")]
PortOpt = Annotated[str | None, typer.Option(help="board: serial port, e.g. /dev/ttyACM0")]
ProbeOpt = Annotated[str | None, typer.Option(help="board: pyOCD probe unique id")]
PyocdTargetOpt = Annotated[str | None, typer.Option(help="board: pyOCD target name")]
ResultsOpt = Annotated[Path, typer.Option(help="folder of the results tables")]


def friendly_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the library's expected failures into one clear line and exit code 1."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (HilError, ValueError, FileNotFoundError) as exc:  # IRFormatError is a ValueError
            err.print(f"[bold red]error:[/] {exc}", highlight=False)
            sys.exit(1)

    return wrapper


def _target(name: str, port: str | None, probe: str | None, pyocd_target: str | None):
    from tinyformer.hil.targets import make_target

    if name == "board":
        return make_target(name, port=port, probe_id=probe, pyocd_target=pyocd_target)
    return make_target(name)


def _print_measurement(summary: dict[str, Any], extra: dict[str, Any]) -> None:
    table = Table(show_header=False, box=None)
    for key, value in {**summary, **extra}.items():
        if key == "layer_counts":
            continue
        is_count = isinstance(value, int) and not isinstance(value, bool)
        table.add_row(key, f"{value:,}" if is_count else str(value))
    console.print(table)


@app.command()
@friendly_errors
def compile(
    model: Annotated[Path, typer.Argument(help="IR file (.tfir)")],
    out: Annotated[Path, typer.Option("-o", "--out", help="output folder")],
    board: Annotated[str, typer.Option(help="mps2-an500 (QEMU) or stm32f746")] = "mps2-an500",
    as_json: JsonOpt = False,
) -> None:
    """Compile an IR model into firmware; print flash, arena and predicted peak SRAM."""
    from dataclasses import asdict

    from tinyformer.hil.deploy import compile_model

    report = compile_model(model, out, board=board)
    if as_json:
        print(json.dumps(asdict(report)))
    else:
        _print_measurement(asdict(report), {"folder": str(out)})


@app.command()
@friendly_errors
def run(
    model_dir: Annotated[
        Path | None, typer.Argument(help="compiled folder (default: the demo layer)")
    ] = None,
    target: TargetOpt = "qemu",
    as_json: JsonOpt = False,
    seed: Annotated[int, typer.Option(help="seed of the random input (and demo layer)")] = 0,
    port: PortOpt = None,
    probe: ProbeOpt = None,
    pyocd_target: PyocdTargetOpt = None,
    record: Annotated[bool, typer.Option(help="append the measurement to results/")] = False,
    results: ResultsOpt = Path("results"),
) -> None:
    """Run a compiled model (default: an int8 linear 64x96->192) on a target and measure it."""
    import numpy as np

    from tinyformer.engine import ir
    from tinyformer.engine.demo import demo_graph, demo_input, macs
    from tinyformer.engine.reference import outputs
    from tinyformer.hil.deploy import compile_model, firmware_in
    from tinyformer.hil.measure import measure
    from tinyformer.hil.results import MEASUREMENTS, append_rows

    tgt = _target(target, port, probe, pyocd_target)
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
    n_macs = macs(graph)
    extra: dict[str, Any] = {"matches_reference": bool(np.array_equal(got, expected))}
    if n_macs:
        extra["macs"] = n_macs
        extra[f"macs_per_{m.count_unit[:-1]}"] = round(n_macs / max(m.total, 1), 4)
    if record:
        append_rows(m.rows(), results / MEASUREMENTS)
    if as_json:
        print(json.dumps({**m.summary(), **extra}))
    else:
        _print_measurement(m.summary(), extra)
    if not extra["matches_reference"]:
        raise HilError("the firmware's output differs from the numpy reference")


@app.command()
@friendly_errors
def demo(results: ResultsOpt = Path("results")) -> None:
    """The main job on the embedded default: for now, the demo layer on QEMU, recorded."""
    run(model_dir=None, target="qemu", as_json=False, seed=0, record=True, results=results)
    console.print(f"recorded in {results / 'measurements.csv'}")


@app.command()
@friendly_errors
def bench(
    what: Annotated[str, typer.Argument(help="what to benchmark: kernels")] = "kernels",
    target: TargetOpt = "qemu",
    results: ResultsOpt = Path("results"),
) -> None:
    """Benchmark kernels on a target; writes results/kernels.csv."""
    from tinyformer.hil.bench import bench_kernels

    if what != "kernels":
        raise ValueError(f"unknown benchmark {what!r}; available: kernels")
    table = bench_kernels(_target(target, None, None, None), results / "kernels.csv")
    console.print(table.drop(columns=["git_rev", "time"]).to_string(index=False))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
