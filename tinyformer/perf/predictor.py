"""Where a latency prediction comes from, and why there is none: for `compile --layers` and
`run --layers`, which must never leave the prediction column silently blank.

In order: the samples in the user's results folder (measured with the current firmware), then
the fit shipped with the package (``fitted/<target>_<unit>.json``, made from the repository's
``results/`` by ``python -m tinyformer.perf.predictor``), so a folder other than the repo
root still predicts. A board without cycle samples of its own is predicted from QEMU's
instructions through the Cortex-M7 cycle model (``perf/milliseconds.py``).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tinyformer.atomic_write import write_atomic_text
from tinyformer.compiler.source_hash import firmware_id
from tinyformer.engine.codegen import generate, plan_graph
from tinyformer.engine.ir import Graph, Node
from tinyformer.perf.latency import LatencyModel, SampleStore, op_features
from tinyformer.perf.milliseconds import CycleModel

FITTED = Path(__file__).parent / "fitted"
MEASURE_HINT = "`tinyformer bench latency --target {target} --results {results}` measures some"


@dataclass(frozen=True)
class Predictor:
    """A latency model for one (target, unit), what it was fitted on, and what it lacks."""

    model: LatencyModel | None
    source: str  # where the fit comes from, or why there is none and what to run
    stale: bool = False  # a shipped fit of older firmware sources

    def predict(self, node: Node, graph: Graph) -> float | None:
        return None if self.model is None else self.model.predict_known(node, graph)

    def missing(self, graph: Graph) -> list[str]:
        """The graph's op kinds this predictor has no measurements of (none without a model:
        ``source`` says why there is none)."""
        if self.model is None:
            return []
        return sorted({op_features(n, graph)[0] for n in graph.nodes} - set(self.model.coefs))


def _shipped_path(target: str, unit: str) -> Path:
    return FITTED / f"{target}_{unit}.json"


def shipped(target: str, unit: str) -> tuple[LatencyModel, str, int] | None:
    """The packaged fit for (target, unit): model, its firmware id, its sample count."""
    path = _shipped_path(target, unit)
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    return LatencyModel(target, unit, coefs=data["coefs"]), data["firmware"], data["samples"]


def predictor(results: Path, target: str, unit: str) -> Predictor:
    """The best latency model for (target, unit): the user's samples, else the shipped fit."""
    store = SampleStore(results)
    samples = store.load()
    current = samples[
        (samples["target"] == target)
        & (samples["unit"] == unit)
        & (samples["firmware"] == firmware_id())
    ]
    if len(current):
        model = LatencyModel.fit(samples, target, unit)
        return Predictor(model, f"fitted on {len(current):,} {target} samples in {store.path}")
    fit = shipped(target, unit)
    if samples.empty:
        why = f"no samples in {store.path}"
    elif not (samples["target"] == target).any():
        why = f"no {target} samples in {store.path}"
    else:
        why = f"no {target} samples of the current firmware ({firmware_id()}) in {store.path}"
    if fit is None:
        hint = MEASURE_HINT.format(target=target, results=results)
        return Predictor(None, f"no prediction: {why} and no shipped fit; {hint}")
    model, fw, n = fit
    source = f"shipped fit ({n:,} {target} samples, firmware {fw}; {why})"
    if fw != firmware_id():
        hint = MEASURE_HINT.format(target=target, results=results)
        source += f"; the firmware sources changed since: may be off, {hint}"
    return Predictor(model, source, stale=fw != firmware_id())


@dataclass(frozen=True)
class BoardFromQemu:
    """Cycles on the board predicted from QEMU's instruction model via the cycle model."""

    qemu: Predictor
    cycles: CycleModel
    _constants: dict[int, list[int]] = field(default_factory=dict)  # per graph, by id

    def predict(self, node: Node, graph: Graph) -> float | None:
        instructions = self.qemu.predict(node, graph)
        if instructions is None:
            return None
        if id(graph) not in self._constants:
            self._constants[id(graph)] = generate(graph, plan_graph(graph)).layer_constant_bytes
        flash = self._constants[id(graph)][graph.nodes.index(node)]
        return self.cycles.layer_cycles(op_features(node, graph)[0], instructions, flash)


def ship(results: Path, target: str = "qemu", unit: str = "instructions") -> Path:
    """Write the packaged fit from ``results``' samples of the current firmware."""
    samples = SampleStore(results).load()
    n = int(
        (
            (samples["target"] == target)
            & (samples["unit"] == unit)
            & (samples["firmware"] == firmware_id())
        ).sum()
    )
    if not n:
        raise ValueError(f"no {target} {unit} samples of firmware {firmware_id()} in {results}")
    model = LatencyModel.fit(samples, target, unit)
    data = {"firmware": firmware_id(), "samples": n, "coefs": model.coefs}
    path = _shipped_path(target, unit)
    path.parent.mkdir(exist_ok=True)
    write_atomic_text(json.dumps(data, indent=1, sort_keys=True) + "\n", path)
    return path


if __name__ == "__main__":  # python -m tinyformer.perf.predictor [RESULTS]
    print(ship(Path(sys.argv[1] if len(sys.argv) > 1 else "results")))
