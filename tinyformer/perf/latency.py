"""Latency model: per-op instruction (or cycle) counts predicted from op features.

Every RUN on a target reports one count per layer, so each measured model yields one
sample per op: (op kind, features, count); kind + features is the layer's signature.
Samples accumulate in ``results/latency_samples.csv`` across runs, one model per (target,
unit), fitted only on samples measured with the current firmware sources and code
generator (``firmware_id``): a kernel or code generator change makes older counts stale.
A model measured again on the same firmware replaces its samples (``SAMPLE_KEY``), so the
fit counts each measurement once.

Prediction per layer: a signature already measured on that target is answered with its
measured count (QEMU counts are exact and repeatable); otherwise a linear model of the
op kind's features, fitted by non-negative least squares on relative error (rows scaled by
1 / count, so small layers matter as much as big ones). Features are the work terms the
kernels' loops scale with: MACs, outputs, rows, extended inputs, non-zero blocks, ...
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import nnls

from tinyformer.compiler.source_hash import firmware_id
from tinyformer.engine.ir import Graph, Node
from tinyformer.engine.work import weight_storage
from tinyformer.results import append_rows, locked, now_iso, read_table, write_atomic

SAMPLES = "latency_samples.csv"
COLUMNS = ["target", "unit", "op", "features", "count", "model_id", "firmware", "time"]
# One measurement of a layer: a model measured again replaces its samples (each of its
# layers with the same work; a model's identical layers are all kept, as measured).
SAMPLE_KEY = ["target", "unit", "firmware", "model_id", "op", "features"]


def _shape(graph: Graph, name: str) -> tuple[int, ...]:
    return tuple(graph.tensors[name].shape)


def op_features(node: Node, graph: Graph) -> tuple[str, dict[str, float]]:
    """(op kind, features) of one node; the kind separates kernels with different loops."""
    out = _shape(graph, node.outputs[0])
    n_out = float(np.prod(out))
    if node.op in ("linear", "conv2d"):
        storage, block, nnz = weight_storage(node, graph)
        if node.op == "linear":
            k, m = _shape(graph, node.inputs[0])[-1], out[-1]
            pixels, taps, kind = n_out / m, k, "linear"
        else:
            _, kh, kw, cin = _shape(graph, node.inputs[1])
            m, taps = out[-1], kh * kw * cin
            pixels = n_out / m
            pointwise = kh == kw == 1 and node.attrs.get("stride", 1) == 1
            kind = "conv2d/pointwise" if pointwise else "conv2d/kxk"
        f = {
            "one": 1.0,
            "outputs": n_out,
            "rows": float(m),
            "inputs": pixels * taps,
            "pixels": pixels,
        }
        if storage == "dense":
            f["macs"] = pixels * taps * m
            return f"{kind}/dense", f
        f.update(nnz_macs=pixels * nnz * block, nnz_blocks=pixels * nnz, stored_blocks=float(nnz))
        return f"{kind}/sparse-b{block}", f
    n_in = float(np.prod(_shape(graph, node.inputs[0])))
    if node.op == "depthwise_conv2d":
        kh, kw, _ = _shape(graph, node.inputs[1])
        pixels = n_out / out[-1]
        return "depthwise_conv2d", {
            "one": 1.0,
            "macs": n_out * kh * kw,
            "outputs": n_out,
            "pixels": pixels,
            "edge": (out[0] + out[1]) * out[-1],
        }
    if node.op in ("matmul_qk", "matmul_av"):
        a, b = _shape(graph, node.inputs[0]), _shape(graph, node.inputs[1])
        heads = int(node.attrs["heads"])
        reduce = a[-1] // heads if node.op == "matmul_qk" else a[-1]
        return node.op, {
            "one": 1.0,
            "macs": n_out * reduce,
            "outputs": n_out,
            "inputs": float(np.prod(b)),
            "heads": float(heads),
        }
    rows = n_in / _shape(graph, node.inputs[0])[-1]
    if node.op == "avgpool":
        kh, kw = node.attrs["kernel"]
        return "avgpool", {"one": 1.0, "taps": n_out * kh * kw, "outputs": n_out}
    return node.op, {"one": 1.0, "elements": n_in, "rows": rows, "outputs": n_out}


def features_json(feats: dict[str, float]) -> str:
    """Features as stored in the samples table; op kind + this is a layer's signature."""
    return json.dumps(feats, sort_keys=True)


@dataclass
class LatencyModel:
    target: str
    unit: str
    coefs: dict[str, dict[str, float]] = field(default_factory=dict)
    exact: dict[str, float] = field(default_factory=dict)

    @classmethod
    def fit(cls, samples: pd.DataFrame, target: str, unit: str) -> LatencyModel:
        rows = samples[
            (samples["target"] == target)
            & (samples["unit"] == unit)
            & (samples["firmware"] == firmware_id())
        ]
        model = cls(target, unit)
        model.exact = rows.groupby(rows["op"] + rows["features"])["count"].median().to_dict()
        for kind, group in rows.groupby("op"):
            feats = [json.loads(f) for f in group["features"]]
            names = sorted({k for f in feats for k in f})
            x = np.array([[f.get(k, 0.0) for k in names] for f in feats], np.float64)
            y = group["count"].to_numpy(np.float64)
            weight = 1.0 / np.maximum(y, 1.0)
            coef, _ = nnls(x * weight[:, None], y * weight)
            model.coefs[str(kind)] = dict(zip(names, coef.tolist(), strict=True))
        return model

    def predict_node(self, node: Node, graph: Graph) -> float:
        return self.predict_features(*op_features(node, graph))

    def predict_features(self, kind: str, feats: dict[str, float], exact: bool = True) -> float:
        """One layer's count from its op kind and features; ``exact=False``: the fit alone,
        even for a signature already measured."""
        sig = kind + features_json(feats)
        if exact and sig in self.exact:
            return float(self.exact[sig])
        coef = self.coefs.get(kind)
        if coef is None:
            raise KeyError(f"no {self.target} measurements of {kind} yet: measure one first")
        return float(sum(coef.get(k, 0.0) * v for k, v in feats.items()))

    def predict_known(self, node: Node, graph: Graph) -> float | None:
        """predict_node, or None for an op kind this target has no measurements of."""
        try:
            return self.predict_node(node, graph)
        except KeyError:
            return None

    def predict(self, graph: Graph) -> float:
        """Predicted count of one inference of ``graph``."""
        return sum(self.predict_node(node, graph) for node in graph.nodes)

    def covers(self, graph: Graph) -> bool:
        return all(op_features(n, graph)[0] in self.coefs for n in graph.nodes)


def samples_of(
    graph: Graph, layer_counts: Sequence[int], target: str, unit: str, model_id: str | None = None
) -> list[dict]:
    """One sample row per layer of a measured run."""
    if len(layer_counts) != len(graph.nodes):
        raise ValueError(f"{len(layer_counts)} layer counts for {len(graph.nodes)} layers")
    rows, time, fw = [], now_iso(), firmware_id()
    for node, count in zip(graph.nodes, layer_counts, strict=True):
        kind, feats = op_features(node, graph)
        rows.append(
            {
                "target": target,
                "unit": unit,
                "op": kind,
                "features": features_json(feats),
                "count": int(count),
                "model_id": model_id or graph.name,
                "firmware": fw,
                "time": time,
            }
        )
    return rows


class SampleStore:
    """The persistent table of per-layer samples under a results folder."""

    def __init__(self, results: Path) -> None:
        self.path = Path(results) / SAMPLES
        self._upgrade()

    def add(self, rows: Iterable[dict]) -> None:
        append_rows(rows, self.path, COLUMNS, SAMPLE_KEY)

    def load(self) -> pd.DataFrame:
        if not self.path.exists():
            return pd.DataFrame(columns=COLUMNS)
        return read_table(self.path, COLUMNS, SAMPLE_KEY)

    def _upgrade(self) -> None:
        """Older tables, rewritten once: samples from before firmware ids are kept, marked
        unknown; the 'signature' column (op + features again, half the file) goes."""
        if not self.path.exists():
            return
        header = pd.read_csv(self.path, nrows=0).columns
        if "firmware" in header and "signature" not in header:
            return
        with locked(self.path):  # a search's workers may append meanwhile
            table = pd.read_csv(self.path)
            if "firmware" not in table.columns:
                table.insert(COLUMNS.index("firmware"), "firmware", "unknown")
            write_atomic(table.drop(columns=["signature"], errors="ignore"), self.path)

    def model(self, target: str, unit: str) -> LatencyModel:
        return LatencyModel.fit(self.load(), target, unit)


def mape(predicted: Sequence[float], measured: Sequence[float]) -> float:
    """Mean absolute percentage error, in percent."""
    p, m = np.asarray(predicted, np.float64), np.asarray(measured, np.float64)
    return float(np.mean(np.abs(p - m) / m) * 100.0)
