"""IR -> plan -> C: lower a graph into a CModel that the firmware links with."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinyformer.engine.cmodel import CArray, CModel
from tinyformer.engine.graph import Graph, Node, c_identifier
from tinyformer.engine.opset import opdef, rounding
from tinyformer.engine.planner import MemoryPlan, Step, plan_memory
from tinyformer.engine.validate import check_graph


def plan_graph(graph: Graph) -> MemoryPlan:
    """The memory plan of the graph's activations and scratch buffers."""
    check_graph(graph)
    activations = {n for n, t in graph.tensors.items() if not t.is_constant}
    steps = []
    for node in graph.nodes:
        d = opdef(node.op)
        steps.append(
            Step(
                node.name,
                tuple(t for t in node.inputs if t in activations),
                tuple(node.outputs),
                d.scratch_bytes(node, graph),
                d.inplace,
            )
        )
    sizes = {n: graph.tensors[n].nbytes for n in activations}
    return plan_memory(steps, sizes, list(graph.inputs), list(graph.outputs))


@dataclass
class _Ctx:
    plan: MemoryPlan
    constants: list[CArray]

    def const(self, name: str, values: np.ndarray) -> str:
        cname = c_identifier(name)
        self.constants.append(CArray(cname, np.ascontiguousarray(values)))
        return cname

    def ptr(self, tensor: str) -> str:
        return f"(arena + {self.plan.offsets[tensor]})"

    def scratch(self, node: Node) -> str:
        key = f"{node.name}:scratch"
        return f"(arena + {self.plan.offsets[key]})" if key in self.plan.offsets else "0"


def generate(graph: Graph, plan: MemoryPlan | None = None) -> CModel:
    """The C model for ``graph``: constants in flash, one arena, one kernel call per node."""
    plan = plan or plan_graph(graph)
    ctx = _Ctx(plan, [])
    includes: list[str] = []
    layers, layer_bytes = [], []
    for node in graph.nodes:
        first = len(ctx.constants)
        incs, code = opdef(node.op).emit(node, graph, ctx)
        includes += incs
        layers.append((f"{node.op} {node.name}", code))
        layer_bytes.append(sum(int(c.values.nbytes) for c in ctx.constants[first:]))
    x, y = graph.inputs[0], graph.outputs[0]
    return CModel(
        name=graph.name,
        arena_bytes=plan.arena_bytes,
        input_offset=plan.offsets[x],
        input_bytes=graph.tensors[x].nbytes,
        output_offset=plan.offsets[y],
        output_bytes=graph.tensors[y].nbytes,
        includes=includes,
        constants=ctx.constants,
        layers=layers,
        layer_constant_bytes=layer_bytes,
        rounding=rounding(graph),
    )
