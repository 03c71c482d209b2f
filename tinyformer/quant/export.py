"""QAT subnet -> the engine's integer IR (``tinyformer.engine.ir``).

The graph follows the IR op contract (``tinyformer/engine/opset.py``), NHWC without batch:

    input "input" [H][W][C] int8 (scale 1/255, zp -128)
    stem.conv                 conv2d (BN folded, ReLU6 as act_min / act_max)
    stages.i.blocks.j.expand.conv / depthwise.conv / project.conv, stages.i.blocks.j.add
    stages.i.embed            conv2d p x p stride p;  stages.i.tokens: reshape [H*W][C]
    stages.i.blocks.j.norm1   layernorm
      .attn.q / .attn.k / .attn.v   linear;  .attn_qk matmul_qk;  .attn_softmax softmax;
      .attn_av matmul_av;  .attn.proj linear;  .add1 add
      .norm2 layernorm; .mlp.fc1 linear; .mlp.act lut (GELU); .mlp.fc2 linear; .add2 add
    stages.i.norm             layernorm;  stages.i.map: reshape [H][W][C]
    pool                      global_avgpool -> [C]
    classifier                linear -> logits [classes] int8 (the graph's output)

Every integer parameter comes from the same ``int_params`` methods the QAT model's integer
evaluation path uses, so the reference interpreter reproduces that path bit for bit.
Weights are exported dense (pruned blocks are zeros) with the pruning block size in
``node.attrs["block"]``; ``export(..., encode=True)`` then lets the engine's storage pass
(``tinyformer.engine.storage.encode_weights``) store each weight dense or block-sparse.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tinyformer.engine import ir
from tinyformer.engine.ir import Graph
from tinyformer.engine.storage import encode_weights
from tinyformer.quant.fakequant import INPUT_QPARAMS
from tinyformer.quant.qmodules import QuantSubnet
from tinyformer.quant.writer import GraphWriter


def to_graph(model: QuantSubnet, name: str = "tinyformer", meta: dict[str, Any] | None = None):
    """The model's integer graph with dense weights (see the module docstring)."""
    if not model.calibrated:
        raise ValueError("the QAT model is not calibrated: observe activations before export")
    g = GraphWriter(name)
    out = model.export_graph(g)
    info = {
        "config": model.config.to_dict(),
        "sparsity_plan": model.plan.to_dict(),
        "input": {
            "scale": INPUT_QPARAMS[0],
            "zero_point": INPUT_QPARAMS[1],
            "layout": "HWC",
            "from_pixels": "q = pixel - 128",
        },
    }
    return g.build(out, {**info, **(meta or {})})


def export(
    model: QuantSubnet,
    path: str | Path,
    name: str = "tinyformer",
    meta: dict[str, Any] | None = None,
    encode: bool = True,
) -> Graph:
    """Write the model's IR file to ``path``; returns the graph written.

    ``encode``: store each pruned weight dense or block-sparse as the engine's cost model
    prefers (same integer semantics); otherwise every weight is stored dense.
    """
    graph = to_graph(model, name, meta)
    if encode:
        graph = encode_weights(graph)
    ir.save(graph, Path(path))
    return graph
