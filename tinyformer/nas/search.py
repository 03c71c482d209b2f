"""SparseNAS: evolutionary search over subnets x per-layer block sparsity, target in the loop.

Each generation:
  1. every new candidate is evaluated by Ray tasks anywhere in the cluster (``tinyformer
     .cluster``): validation accuracy of the inherited-weight subnet after block pruning (the
     ``fitness`` function; on a GPU where a node has one) and its exact budgets (compiled by
     the engine: flash, planned arena, predicted peak SRAM);
  2. the latency model predicts every candidate's count; the top-K feasible candidates
     (by accuracy) that were never measured run on the free targets of the search's kind, at
     once, their per-layer counts join the sample table (in the candidates' order, whichever
     target finished first), and the latency model is refitted;
  3. the state is checkpointed (atomically); the next population is the elite plus
     mutations and crossovers of tournament-selected parents.

Every finished evaluation is written to the checkpoint at once, so ``resume`` loses and
repeats none. Measurements are checkpointed with their generation: ``resume`` repeats those
of an unfinished one, and a repeat replaces the samples it stored (``SAMPLE_KEY``) instead
of counting them twice. Feasible = flash <= budget, peak SRAM <= budget, latency <= target
(measured when measured, else predicted). A candidate that cannot fit (refused before the
build, or by the linker) is evaluated with what it needs, over the budget: infeasible, never
measured, and ranked after every feasible one.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from tinyformer.atomic_write import write_atomic_text
from tinyformer.boards import DEFAULT_BOARD, FLASH_BUDGET, RAM_BUDGET
from tinyformer.cluster import tasks
from tinyformer.cluster.pool import FirmwarePackage, TargetPool
from tinyformer.cluster.runtime import ray_session
from tinyformer.compiler.driver import compile_model, firmware_in
from tinyformer.compiler.errors import DoesNotFitError
from tinyformer.engine import ir
from tinyformer.engine.codegen import plan_graph
from tinyformer.hil.measure import Measurement
from tinyformer.hil.targets.base import Target
from tinyformer.model.config import SupernetSpace
from tinyformer.nas.candidate import config_graph
from tinyformer.nas.genome import Candidate, crossover, mutate, random_candidate
from tinyformer.nas.options import SearchOptions
from tinyformer.perf.latency import LatencyModel, SampleStore, samples_of
from tinyformer.perf.milliseconds import CycleModel, inference_ms
from tinyformer.results import percent, write_atomic

STATE_VERSION = 1
LATENCY_CHECK = "latency_check.csv"
SEARCH_STATE = "search_state.json"
Fitness = Callable[[Candidate], float]


class SearchStateError(ValueError):
    """A checkpoint that cannot be resumed (other settings, damaged, newer version)."""


@dataclass
class SearchSettings:
    space: dict[str, Any]
    population: int = SearchOptions.population
    generations: int = SearchOptions.generations
    top_k: int = SearchOptions.top_k
    elite: int = 4
    mutation: float = 0.2
    seed: int = SearchOptions.seed
    flash_budget: int = FLASH_BUDGET
    ram_budget: int = RAM_BUDGET
    max_latency: float | None = None  # in the target's count unit
    target: str = "qemu"
    board: str = DEFAULT_BOARD


@dataclass
class Evaluation:
    key: str
    candidate: dict[str, Any]
    generation: int
    accuracy: float
    flash_bytes: int
    arena_bytes: int
    peak_sram_bytes: int
    weight_sparsity: float
    predicted: float | None = None
    measured: float | None = None
    # the latency model's prediction just before this candidate was measured, from samples
    # that did not include it: the held-out check of the model on search candidates
    predicted_unseen: float | None = None
    seconds: float = 0.0
    measured_on: str | None = None  # the target worker that measured it (kind, host, node)

    @property
    def latency(self) -> float | None:
        return self.measured if self.measured is not None else self.predicted


@dataclass
class SearchState:
    settings: SearchSettings
    generation: int = 0
    population: list[str] = field(default_factory=list)
    candidates: dict[str, dict[str, Any]] = field(default_factory=dict)
    evaluated: dict[str, Evaluation] = field(default_factory=dict)
    rng: dict[str, Any] | None = None

    def save(self, path: Path) -> None:
        data = {
            "version": STATE_VERSION,
            "settings": asdict(self.settings),
            "generation": self.generation,
            "population": self.population,
            "candidates": self.candidates,
            "evaluated": {k: asdict(v) for k, v in self.evaluated.items()},
            "rng": self.rng,
        }
        write_atomic_text(json.dumps(data), path)

    @classmethod
    def load(cls, path: Path) -> SearchState:
        try:
            data = json.loads(Path(path).read_text())
            if data.get("version") != STATE_VERSION:
                raise SearchStateError(
                    f"{path}: checkpoint version {data.get('version')}, this TinyFormer reads "
                    f"{STATE_VERSION}"
                )
            return cls(
                SearchSettings(**data["settings"]),
                data["generation"],
                data["population"],
                data["candidates"],
                {k: Evaluation(**v) for k, v in data["evaluated"].items()},
                data["rng"],
            )
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise SearchStateError(f"{path}: damaged search checkpoint ({exc})") from exc


def _compile_task(
    cand_dict: dict, work: str, board: str, seed: int
) -> tuple[dict, float, FirmwarePackage | None]:
    """Compile a candidate's graph (a task on any node): its exact flash and SRAM figures,
    and the firmware, for a driver that does not share this node's disk (None: the model
    does not fit, its report says by how much)."""
    start = time.perf_counter()
    cand = Candidate.from_dict(cand_dict)
    work_dir = Path(work)
    try:
        work_dir.mkdir(parents=True, exist_ok=True)
    except OSError:  # another host, without the driver's folders
        work_dir = Path(tempfile.mkdtemp(prefix="tinyformer-candidate-"))
    graph = config_graph(cand.config, cand.plan_dict(), seed)
    try:
        report = asdict(
            compile_model(ir.save(graph, work_dir / "model.tfir"), work_dir / "fw", board)
        )
    except DoesNotFitError as exc:  # infeasible, not a crash: its needs, over the budgets
        report = {
            "flash_bytes": exc.flash_bytes,
            "arena_bytes": plan_graph(graph).arena_bytes,
            "predicted_peak_sram_bytes": exc.ram_bytes,
        }
        return report, time.perf_counter() - start, None
    return report, time.perf_counter() - start, FirmwarePackage.of(work_dir / "fw")


def _accuracy_task(fitness: Fitness, cand_dict: dict) -> tuple[float, float]:
    start = time.perf_counter()
    return fitness(Candidate.from_dict(cand_dict)), time.perf_counter() - start


def pareto_front(evals: list[Evaluation]) -> list[Evaluation]:
    """Candidates no other beats on accuracy, latency and peak SRAM at once."""

    def dominates(a: Evaluation, b: Evaluation) -> bool:
        ka = (-a.accuracy, a.latency, a.peak_sram_bytes)
        kb = (-b.accuracy, b.latency, b.peak_sram_bytes)
        return all(x <= y for x, y in zip(ka, kb, strict=True)) and ka != kb

    pts = [e for e in evals if e.latency is not None]
    return [e for e in pts if not any(dominates(o, e) for o in pts)]


class SparseNAS:
    def __init__(
        self,
        settings: SearchSettings,
        fitness: Fitness,
        target: Target,
        out_dir: Path,
        results: Path,
        log: Callable[[str], None] = tqdm.write,
        progress: bool = True,
    ) -> None:
        self.settings = settings
        self.space = SupernetSpace.from_dict(settings.space)
        self.fitness = fitness
        self.target = target
        self.out = Path(out_dir)
        self.store = SampleStore(results)
        self.results = Path(results)
        self.log = log
        self.progress = progress  # bars on a terminal only (tqdm's disable=None)
        self.state_path = self.out / SEARCH_STATE
        self.unit = "instructions" if target.count_source.startswith("qemu") else "cycles"

    # -- state ------------------------------------------------------------------------------

    def _start(self, resume: bool) -> tuple[SearchState, np.random.Generator]:
        if resume and self.state_path.exists():
            state = SearchState.load(self.state_path)
            if asdict(state.settings) != asdict(self.settings):
                raise SearchStateError(
                    f"{self.state_path} was written with other settings; resume with the same "
                    "options or start a new output folder"
                )
            rng = np.random.default_rng()
            rng.bit_generator.state = state.rng
            self.log(
                f"resuming at generation {state.generation} with "
                f"{len(state.evaluated)} candidates already evaluated"
            )
            return state, rng
        if self.state_path.exists():
            raise SearchStateError(f"{self.state_path} exists: pass --resume or another folder")
        rng = np.random.default_rng(self.settings.seed)
        state = SearchState(self.settings)
        first = [random_candidate(self.space, rng) for _ in range(self.settings.population)]
        self._set_population(state, first)
        state.rng = rng.bit_generator.state
        return state, rng

    @staticmethod
    def _set_population(state: SearchState, cands: list[Candidate]) -> None:
        state.population = []
        for c in cands:
            state.candidates[c.key] = c.to_dict()
            if c.key not in state.population:
                state.population.append(c.key)

    def _work_dir(self, key: str) -> Path:
        return self.out / "candidates" / key

    # -- evaluation ----------------------------------------------------------------------

    def _evaluate_new(self, state: SearchState) -> None:
        todo = [k for k in state.population if k not in state.evaluated]
        if not todo:
            return
        fitness = tasks.put(self.fitness)  # one copy of the supernet for every task
        gpu = 1.0 if tasks.gpus() else 0.0
        board, seed = self.settings.board, self.settings.seed
        compiles = {
            k: tasks.submit(_compile_task, state.candidates[k], str(self._work_dir(k)), board, seed)
            for k in todo
        }
        scores = {
            k: tasks.submit(_accuracy_task, fitness, state.candidates[k], num_gpus=gpu)
            for k in todo
        }
        bar = tqdm(todo, desc=f"generation {state.generation}: candidates", unit="cand",
                   disable=None if self.progress else True, leave=False)  # fmt: skip
        for key in bar:
            cand = Candidate.from_dict(state.candidates[key])
            accuracy, fit_seconds = tasks.result(scores[key])
            report, seconds, package = tasks.result(compiles[key])
            if package is not None:  # None: over the budgets, never built nor measured
                self._keep(key, package)
            state.evaluated[key] = Evaluation(
                key=key,
                candidate=state.candidates[key],
                generation=state.generation,
                accuracy=accuracy,
                flash_bytes=report["flash_bytes"],
                arena_bytes=report["arena_bytes"],
                peak_sram_bytes=report["predicted_peak_sram_bytes"],
                weight_sparsity=round(cand.weight_sparsity(), 4),
                seconds=round(fit_seconds + seconds, 2),
            )
            state.save(self.state_path)  # no finished evaluation is ever lost

    def _keep(self, key: str, package: FirmwarePackage) -> None:
        """The candidate's IR and firmware in its folder here (a task on another host wrote
        them to its own disk)."""
        package.check_firmware()
        work = self._work_dir(key)
        if not (work / "fw" / "build" / "firmware.elf").is_file():
            package.unpack(work / "fw")
            shutil.copyfile(work / "fw" / "model.tfir", work / "model.tfir")

    def _fits(self, e: Evaluation) -> bool:
        return e.flash_bytes <= self.settings.flash_budget and (
            e.peak_sram_bytes <= self.settings.ram_budget
        )

    def feasible(self, e: Evaluation) -> bool:
        limit = self.settings.max_latency
        return self._fits(e) and (limit is None or (e.latency is not None and e.latency <= limit))

    def _predict(self, state: SearchState, model: LatencyModel) -> None:
        for e in state.evaluated.values():
            graph = ir.load(self._work_dir(e.key) / "model.tfir")
            e.predicted = model.predict(graph) if model.covers(graph) else None

    def _measure(self, picked: list[Evaluation], unseen: LatencyModel, pool: TargetPool) -> None:
        """Run ``picked`` on free targets at once; ``unseen`` (fitted without them) predicts
        each first. Each measurement is stored as it is handed over, in ``picked``'s order."""
        jobs, graphs = [], []
        for e in picked:
            folder = self._work_dir(e.key) / "fw"
            _, graph = firmware_in(folder, self.target.board)
            e.predicted_unseen = unseen.predict(graph) if unseen.covers(graph) else None
            shape = graph.tensors[graph.inputs[0]].shape
            x = np.random.default_rng(0).integers(-128, 128, shape, dtype=np.int8)
            jobs.append((FirmwarePackage.of(folder), x.tobytes()))
            graphs.append(graph)

        def done(i: int, m: Measurement, where: str) -> None:
            e = picked[i]
            e.measured, e.measured_on = float(m.total), where
            counts = samples_of(graphs[i], m.layer_counts, self.target.name, m.count_unit, e.key)
            self.store.add(counts)

        pool.map("measure", jobs, done)

    def _measure_top(self, state: SearchState, pool: TargetPool) -> None:
        """Measure the best unmeasured candidates, refit, re-predict everything."""
        # Fitted without samples of candidates the checkpoint has not measured: they exist
        # only when a search was killed after measuring some and before its checkpoint, and
        # the resumed search must pick and predict (unseen) as the uninterrupted one did.
        samples = self.store.load()
        unmeasured = {k for k, e in state.evaluated.items() if e.measured is None}
        samples = samples[~samples["model_id"].isin(unmeasured)]
        model = LatencyModel.fit(samples, self.target.name, self.unit)
        self._predict(state, model)
        ranked = sorted(
            (e for e in state.evaluated.values() if self._fits(e) and e.measured is None),
            key=lambda e: -e.accuracy,
        )
        limit = self.settings.max_latency
        picked = [
            e for e in ranked if e.predicted is None or limit is None or e.predicted <= 1.1 * limit
        ][: self.settings.top_k]
        if picked:
            self._measure(picked, model, pool)
            self._predict(state, self.store.model(self.target.name, self.unit))

    # -- evolution -----------------------------------------------------------------------

    def _next_population(self, state: SearchState, rng: np.random.Generator) -> list[Candidate]:
        evals = list(state.evaluated.values())
        ranked = sorted(evals, key=lambda e: (not self.feasible(e), -e.accuracy))
        n_elite = max(1, min(self.settings.elite, self.settings.population // 3))
        elite = [Candidate.from_dict(e.candidate) for e in ranked[:n_elite]]
        pool = [Candidate.from_dict(e.candidate) for e in ranked[: max(4, len(ranked) // 2)]]
        children: list[Candidate] = list(elite)
        seen = set(state.evaluated) | {c.key for c in children}
        tries = 0
        while len(children) < self.settings.population and tries < 50 * self.settings.population:
            tries += 1
            a = pool[int(rng.integers(len(pool)))]
            if rng.random() < 0.5:
                b = pool[int(rng.integers(len(pool)))]
                child = mutate(crossover(a, b, rng), self.space, rng, self.settings.mutation)
            else:
                child = mutate(a, self.space, rng, self.settings.mutation)
            if child.key not in seen:
                seen.add(child.key)
                children.append(child)
        return children

    def run(self, resume: bool = False) -> SearchState:
        self.out.mkdir(parents=True, exist_ok=True)
        state, rng = self._start(resume)
        generations = tqdm(
            total=self.settings.generations, initial=state.generation, desc="SparseNAS",
            unit="generation", disable=None if self.progress else True, leave=False,
        )  # fmt: skip
        with generations, ray_session(), TargetPool(self.target) as pool:
            while state.generation < self.settings.generations:
                self._evaluate_new(state)
                self._measure_top(state, pool)
                best = max(state.evaluated.values(), key=lambda e: (self.feasible(e), e.accuracy))
                self.log(
                    f"generation {state.generation}: {len(state.evaluated)} evaluated, best "
                    f"{percent(best.accuracy)} acc, {best.latency or float('nan'):,.0f} "
                    f"{self.unit} ({self.latency_ms(best) or float('nan'):.3f} ms), "
                    f"{best.peak_sram_bytes:,} B SRAM"
                )
                state.generation += 1
                # bred even after the last generation, so a resume with more generations
                # continues the evolution instead of re-ranking the same population
                self._set_population(state, self._next_population(state, rng))
                state.rng = rng.bit_generator.state
                state.save(self.state_path)
                generations.update()
        self.report(state)
        return state

    # -- output --------------------------------------------------------------------------

    def best(self, state: SearchState) -> Evaluation:
        measured = [e for e in state.evaluated.values() if e.measured is not None]
        feasible = [e for e in measured if self.feasible(e)]
        if not feasible:
            raise SearchStateError(
                "no measured candidate meets the budgets and the latency target; relax the "
                "target or search longer"
            )
        return max(feasible, key=lambda e: (e.accuracy, -e.measured))

    def latency_ms(self, e: Evaluation, cycles: CycleModel | None = None) -> float | None:
        """``e``'s latency (measured, else predicted) in ms at 216 MHz, as ``run`` gives it:
        cycles from the board, else estimated from instructions (perf/milliseconds.py)."""
        if e.latency is None:
            return None
        cycles = cycles or CycleModel.from_results(self.results)
        graph = ir.load(self._work_dir(e.key) / "model.tfir")
        return round(inference_ms(graph, e.latency, self.unit, cycles).ms, 3)

    def report(self, state: SearchState) -> Evaluation:
        rows = []
        cycles = CycleModel.from_results(self.results)
        front = {e.key for e in pareto_front(list(state.evaluated.values()))}
        for e in state.evaluated.values():
            row = {k: v for k, v in asdict(e).items() if k != "candidate"}
            row.update(
                feasible=self.feasible(e),
                pareto=e.key in front,
                unit=self.unit,
                latency_ms=self.latency_ms(e, cycles),
                config=json.dumps(e.candidate["config"]),
            )
            rows.append(row)
        table = pd.DataFrame(rows).sort_values("accuracy", ascending=False)
        write_atomic(table, self.out / "candidates.csv")
        write_atomic(table[table["pareto"]], self.out / "pareto.csv")
        self._latency_check(state)
        best = self.best(state)
        chosen = self.out / "chosen"
        chosen.mkdir(exist_ok=True)
        shutil.copyfile(self._work_dir(best.key) / "model.tfir", chosen / "model.tfir")
        shutil.copytree(self._work_dir(best.key) / "fw", chosen / "fw", dirs_exist_ok=True)
        write_atomic_text(json.dumps(asdict(best), indent=2), chosen / "candidate.json")
        cand = Candidate.from_dict(best.candidate)  # what `train --config --plan` takes
        cand.config.save(chosen / "config.json")
        cand.sparsity_plan().save(chosen / "plan.json")
        self._plot(table, best)
        return best

    def _latency_check(self, state: SearchState) -> None:
        """Prediction vs measurement of every candidate measured while unseen by the model."""
        rows = [
            {
                "key": e.key,
                "generation": e.generation,
                "measured": e.measured,
                "predicted_unseen": round(e.predicted_unseen),
                "error_pct": round((e.predicted_unseen - e.measured) / e.measured * 100, 3),
                "target": self.target.name,
                "unit": self.unit,
            }
            for e in state.evaluated.values()
            if e.measured is not None and e.predicted_unseen is not None
        ]
        if not rows:
            return
        table = pd.DataFrame(rows)
        table["mape_pct"] = round(float(table["error_pct"].abs().mean()), 3)
        write_atomic(table, self.out / LATENCY_CHECK)
        self.log(
            f"latency model on {len(table)} candidates measured while unseen: MAPE "
            f"{table['mape_pct'].iloc[0]:.2f} % (see {self.out / LATENCY_CHECK})"
        )

    def _plot(self, table: pd.DataFrame, best: Evaluation) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        lat = table["measured"].fillna(table["predicted"])
        fig, ax = plt.subplots(figsize=(7, 4.5))
        sc = ax.scatter(
            lat,
            table["accuracy"],
            c=table["peak_sram_bytes"] / 1024,
            cmap="viridis",
            s=18,
            alpha=0.8,
        )
        front = table[table["pareto"]].assign(lat=lat).sort_values("lat")
        ax.plot(front["lat"], front["accuracy"], "r.-", label="Pareto front")
        ax.scatter([best.measured], [best.accuracy], marker="*", s=160, c="red", label="chosen")
        if self.settings.max_latency:
            ax.axvline(self.settings.max_latency, color="grey", ls="--", label="latency target")
        ax.set_xlabel(f"latency ({self.unit}, {self.target.name})")
        ax.set_ylabel("validation accuracy (pruned, inherited weights)")
        fig.colorbar(sc, label="peak SRAM (KB)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(self.out / "pareto.png", dpi=120)
        plt.close(fig)
