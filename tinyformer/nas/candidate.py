"""A search candidate's IR graph: subnet structure + sparsity plan -> the engine's ops.

Budgets and latency depend on the shapes, the sparsity pattern sizes and the storage the
engine picks, not on the trained values, so the search builds each candidate's graph from
its ``SubnetConfig`` with seeded random weights, block-pruned to the plan, calibrated by the
graph builder, and stored by the engine's own cost model. The result compiles like any model
(``tinyformer compile``) and its flash, arena and peak SRAM are the engine's real figures.

Layer names are the ``Subnet`` module paths (``stem.conv``, ``stages.0.blocks.1.expand.conv``,
``stages.1.blocks.0.attn.q``, ``classifier``), the keys of a sparsity plan.
"""

from __future__ import annotations

import numpy as np

from tinyformer.engine.builder import GraphBuilder
from tinyformer.engine.ir import Graph
from tinyformer.engine.sparse_format import prune_blocks
from tinyformer.engine.storage import encode_weights
from tinyformer.model.config import (
    MBConvStageConfig,
    SubnetConfig,
    attention_width,
    mbconv_hidden,
    mlp_hidden,
)

Plan = dict[str, tuple[int, float]]  # layer -> (block size, block sparsity)


def prunable_layers(config: SubnetConfig) -> dict[str, tuple[int, int]]:
    """Every weight matrix the engine can store block-sparse: name -> (rows, row length)."""
    layers = {"stem.conv": (config.stem_width, config.stem_kernel**2 * config.in_channels)}
    width = config.stem_width
    for i, stage in enumerate(config.stages):
        if not isinstance(stage, MBConvStageConfig):
            layers[f"stages.{i}.embed"] = (stage.width, stage.patch_size**2 * width)
        for j in range(stage.depth):
            pre = f"stages.{i}.blocks.{j}"
            if isinstance(stage, MBConvStageConfig):
                hidden = mbconv_hidden(width, stage.expand_ratio)
                layers[f"{pre}.expand.conv"] = (hidden, width)
                layers[f"{pre}.project.conv"] = (stage.width, hidden)
            else:
                inner, hidden = (
                    attention_width(stage.heads, stage.head_dim),
                    mlp_hidden(stage.width, stage.mlp_ratio),
                )
                for p in "qkv":
                    layers[f"{pre}.attn.{p}"] = (inner, stage.width)
                layers[f"{pre}.attn.proj"] = (stage.width, inner)
                layers[f"{pre}.mlp.fc1"] = (hidden, stage.width)
                layers[f"{pre}.mlp.fc2"] = (stage.width, hidden)
            width = stage.width
    layers["classifier"] = (config.num_classes, width)
    return layers


class _PlannedBuilder(GraphBuilder):
    """A builder whose weighted layers draw random weights pruned to the plan."""

    def __init__(self, config: SubnetConfig, plan: Plan, seed: int) -> None:
        rng = np.random.default_rng(seed)
        shape = (config.image_size, config.image_size, config.in_channels)
        super().__init__("candidate", rng.integers(-128, 128, shape, dtype=np.int8), seed=seed)
        self.plan = plan

    def weights(self, layer: str, shape: tuple[int, ...]) -> tuple[np.ndarray, int | None]:
        fan_in = int(np.prod(shape[1:]))
        w = self.rng.integers(-127, 128, (shape[0], fan_in), dtype=np.int8)
        block, sparsity = self.plan.get(layer, (1, 0.0))
        if sparsity > 0:
            w = prune_blocks(w, block, sparsity)
        # uniform int8 values scaled to He-init variance (uniform(-127, 127) has std 73)
        flat = w.astype(np.float64) * np.sqrt(2.0 / fan_in) / 73.0
        if sparsity <= 0:
            return flat.reshape(shape), None
        return flat.reshape(shape), block


def config_graph(config: SubnetConfig, plan: Plan | None = None, seed: int = 0) -> Graph:
    """The candidate's graph, weights stored dense or block-sparse by the engine's cost model."""
    b = _PlannedBuilder(config, plan or {}, seed)

    def conv(
        layer: str,
        x: str,
        out_c: int,
        k: int,
        stride: int = 1,
        act: str = "relu6",
        padding: str = "same",
    ) -> str:
        cin = b.tensors[x].shape[-1]
        w, block = b.weights(layer, (out_c, k, k, cin))
        return b.conv2d(layer, x, out_c, k, stride, act, w, padding=padding, block=block)

    def linear(layer: str, x: str, out: int) -> str:
        w, block = b.weights(layer, (out, b.tensors[x].shape[-1]))
        return b.linear(layer, x, out, weights=w, block=block)

    x = conv("stem.conv", b.input, config.stem_width, config.stem_kernel, config.stem_stride)
    for i, stage in enumerate(config.stages):
        for j in range(stage.depth):
            pre = f"stages.{i}.blocks.{j}"
            if isinstance(stage, MBConvStageConfig):
                width = b.tensors[x].shape[-1]
                stride = stage.stride if j == 0 else 1
                h = conv(f"{pre}.expand.conv", x, mbconv_hidden(width, stage.expand_ratio), 1)
                h = b.depthwise(f"{pre}.depthwise.conv", h, stage.kernel_size, stride)
                h = conv(f"{pre}.project.conv", h, stage.width, 1, act="none")
                x = b.add(f"{pre}.add", x, h) if stride == 1 and width == stage.width else h
                continue
            if j == 0:
                p = stage.patch_size
                x = conv(f"stages.{i}.embed", x, stage.width, p, p, "none", "valid")
                hh, ww, c = b.tensors[x].shape
                x = b.reshape(f"stages.{i}.tokens", x, (hh * ww, c))
            inner = attention_width(stage.heads, stage.head_dim)
            t = b.layernorm(f"{pre}.norm1", x)
            q, k, v = (linear(f"{pre}.attn.{n}", t, inner) for n in "qkv")
            a = b.attention_core(f"{pre}.attn", q, k, v, stage.heads, stage.head_dim)
            x = b.add(f"{pre}.add1", x, linear(f"{pre}.attn.proj", a, stage.width))
            h = linear(
                f"{pre}.mlp.fc1",
                b.layernorm(f"{pre}.norm2", x),
                mlp_hidden(stage.width, stage.mlp_ratio),
            )
            x = b.add(
                f"{pre}.add2", x, linear(f"{pre}.mlp.fc2", b.gelu(f"{pre}.gelu", h), stage.width)
            )
        if not isinstance(stage, MBConvStageConfig):
            x = b.layernorm(f"stages.{i}.norm", x)
            side = config.feature_sizes()[i + 1]
            x = b.reshape(f"stages.{i}.map", x, (side, side, stage.width))
    x = b.global_avgpool("pool", x)
    return encode_weights(b.build(linear("classifier", x, config.num_classes)))
