"""A minimal IR graph writer for the exporter: tensors and nodes in execution order."""

from __future__ import annotations

from typing import Any

import numpy as np

from tinyformer.engine.ir import Graph, Node, Tensor
from tinyformer.engine.validate import check_graph
from tinyformer.quant.fakequant import QParams


class GraphWriter:
    """Collects tensors and nodes; node ``name`` writes the activation ``{name}_out``."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.tensors: dict[str, Tensor] = {}
        self.nodes: list[Node] = []
        self.inputs: list[str] = []

    def _new(self, tensor: Tensor) -> str:
        if tensor.name in self.tensors:
            raise ValueError(f"duplicate tensor name {tensor.name!r}")
        self.tensors[tensor.name] = tensor
        return tensor.name

    def input(self, name: str, shape: tuple[int, ...], qp: QParams) -> str:
        self.inputs.append(self._new(Tensor(name, tuple(shape), "int8", qp[0], qp[1])))
        return name

    def const(self, name: str, data: np.ndarray) -> str:
        data = np.ascontiguousarray(data)
        return self._new(Tensor(name, tuple(data.shape), str(data.dtype), data=data))

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.tensors[name].shape)

    def node(
        self,
        op: str,
        name: str,
        inputs: list[str],
        attrs: dict[str, Any],
        shape: tuple[int, ...],
        qp: QParams,
    ) -> str:
        out = self._new(Tensor(f"{name}_out", tuple(int(s) for s in shape), "int8", qp[0], qp[1]))
        self.nodes.append(Node(op, name, list(inputs), [out], dict(attrs)))
        return out

    def build(self, output: str, meta: dict[str, Any] | None = None) -> Graph:
        graph = Graph(self.name, self.tensors, self.nodes, self.inputs, [output], meta or {})
        check_graph(graph)
        return graph
