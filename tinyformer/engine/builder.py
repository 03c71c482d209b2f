"""Build quantized IR graphs op by op, calibrating every tensor's scale on a sample input.

Each method takes float weights (random ones, seeded, when none are given), quantizes them
the engine's way (symmetric int8 per output channel, int32 bias at input x weight scale),
runs the op's float semantics on the dequantized sample to choose the output's scale and
zero point from the observed range, then runs the integer reference op so the next layer
calibrates on exactly what the engine computes. That is post-training quantization with a
single calibration input: enough to give random models well-spread int8 activations (kernel
tests, benchmarks, budget estimates of untrained subnets).
"""

from __future__ import annotations

import math

import numpy as np

from tinyformer.engine.graph import Graph, Node, Tensor
from tinyformer.engine.intmath import (
    INT8_MAX,
    INT8_MIN,
    quantize_multiplier,
    quantize_multipliers,
    quantize_weights,
)
from tinyformer.engine.ops.conv import output_size, patches, same_padding
from tinyformer.engine.ops.elementwise import activation_range, add_params
from tinyformer.engine.ops.gelu import gelu_table
from tinyformer.engine.ops.norm import layernorm_params
from tinyformer.engine.ops.softmax import OUTPUT_SCALE, OUTPUT_ZP, softmax_exp_table
from tinyformer.engine.opset import opdef
from tinyformer.engine.validate import check_graph

_erf = np.vectorize(math.erf, otypes=[np.float64])


def output_quant(real: np.ndarray) -> tuple[float, int]:
    """(scale, zero point) mapping the range of ``real`` (widened to hold 0) onto int8."""
    lo, hi = min(float(real.min()), 0.0), max(float(real.max()), 0.0)
    scale = max(hi - lo, 1e-6) / 255.0
    zp = int(np.clip(round(INT8_MIN - lo / scale), INT8_MIN, INT8_MAX))
    return scale, zp


class GraphBuilder:
    """Append ops to a graph in execution order; methods return the output tensor's name."""

    def __init__(
        self,
        name: str,
        sample: np.ndarray,
        input_scale: float = 1 / 255,
        input_zp: int = -128,
        seed: int = 0,
    ) -> None:
        self.name = name
        self.rng = np.random.default_rng(seed)
        self.tensors: dict[str, Tensor] = {}
        self.nodes: list[Node] = []
        self.values: dict[str, np.ndarray] = {}
        x = np.asarray(sample, np.int8)
        self.input = self._activation("input", x, input_scale, input_zp)

    # -- bookkeeping ----------------------------------------------------------------------

    def _activation(self, name: str, value: np.ndarray, scale: float, zp: int) -> str:
        self.tensors[name] = Tensor(name, tuple(value.shape), scale=scale, zero_point=zp)
        self.values[name] = value
        return name

    def _const(self, name: str, data: np.ndarray) -> str:
        dtype = str(data.dtype)
        self.tensors[name] = Tensor(name, tuple(data.shape), dtype, data=data)
        return name

    def _real(self, name: str) -> np.ndarray:
        t = self.tensors[name]
        return (self.values[name].astype(np.float64) - t.zero_point) * t.scale

    def _add_node(
        self,
        op: str,
        name: str,
        inputs: list[str],
        attrs: dict,
        scale: float,
        zp: int,
        shape: tuple[int, ...],
    ) -> str:
        out = f"{name}_out"
        self.tensors[out] = Tensor(out, shape, scale=scale, zero_point=zp)
        node = Node(op, name, inputs, [out], attrs)
        ins = [self.values[t] if t in self.values else self.tensors[t].const for t in inputs]
        graph = Graph(self.name, self.tensors, [node], [], [])
        self.values[out] = opdef(op).reference(node, graph, ins)[0]
        self.nodes.append(node)
        return out

    def _weighted(
        self,
        op: str,
        name: str,
        x: str,
        real: np.ndarray,
        w_scales: np.ndarray,
        bias: np.ndarray,
        extra: dict,
        act: str,
        wq: np.ndarray,
    ) -> str:
        tx = self.tensors[x]
        if act == "relu6":
            real = np.clip(real, 0.0, 6.0)
        elif act == "relu":
            real = np.maximum(real, 0.0)
        scale, zp = output_quant(real)
        acc_scales = tx.scale * w_scales
        mult, shift = quantize_multipliers(acc_scales / scale)
        lo, hi = activation_range(act, scale, zp)
        b = np.round(bias / acc_scales).astype(np.int32)
        attrs = {
            "input_zp": tx.zero_point,
            "output_zp": zp,
            "multiplier": mult,
            "shift": shift,
            "act_min": lo,
            "act_max": hi,
            **extra,
        }
        inputs = [x, self._const(f"{name}_w", wq), self._const(f"{name}_b", b)]
        return self._add_node(op, name, inputs, attrs, scale, zp, real.shape)

    def _init(self, shape: tuple[int, ...], fan_in: int, w: np.ndarray | None) -> np.ndarray:
        if w is not None:
            return np.asarray(w, np.float64)
        return self.rng.normal(0.0, math.sqrt(2.0 / fan_in), shape)

    # -- ops ------------------------------------------------------------------------------

    def conv2d(
        self,
        name: str,
        x: str,
        out_c: int,
        k: int,
        stride: int = 1,
        act: str = "relu6",
        weights: np.ndarray | None = None,
        bias: np.ndarray | None = None,
        padding: str = "same",
        block: int | None = None,
    ) -> str:
        """k x k conv, weights OHWI [out_c][k][k][in_c]; "same" or "valid" padding.

        ``block``: the block size the weights were pruned with (a hint for sparse storage).
        """
        h, w, c = self.tensors[x].shape
        wf = self._init((out_c, k, k, c), k * k * c, weights)
        pad = same_padding(h, w, k, k, stride) if padding == "same" else (0, 0, 0, 0)
        wq, ws = quantize_weights(wf)
        b = np.zeros(out_c) if bias is None else np.asarray(bias, np.float64)
        win = patches(self._real(x), k, k, stride, pad, 0.0)
        real = np.einsum("yxijc,oijc->yxo", win, wq * ws[:, None, None, None]) + b
        extra = {"stride": stride, "padding": list(pad)} | ({"block": block} if block else {})
        return self._weighted("conv2d", name, x, real, ws, b, extra, act, wq)

    def depthwise(
        self,
        name: str,
        x: str,
        k: int,
        stride: int = 1,
        act: str = "relu6",
        weights: np.ndarray | None = None,
        bias: np.ndarray | None = None,
    ) -> str:
        """k x k depthwise conv, weights [k][k][C], "same" padding."""
        h, w, c = self.tensors[x].shape
        wf = self._init((k, k, c), k * k, weights)
        wq_t, ws = quantize_weights(np.moveaxis(wf, 2, 0))
        wq = np.ascontiguousarray(np.moveaxis(wq_t, 0, 2))
        b = np.zeros(c) if bias is None else np.asarray(bias, np.float64)
        pad = same_padding(h, w, k, k, stride)
        win = patches(self._real(x), k, k, stride, pad, 0.0)
        real = np.einsum("yxijc,ijc->yxc", win, wq * ws) + b
        extra = {"stride": stride, "padding": list(pad)}
        return self._weighted("depthwise_conv2d", name, x, real, ws, b, extra, act, wq)

    def linear(
        self,
        name: str,
        x: str,
        out: int,
        act: str = "none",
        weights: np.ndarray | None = None,
        bias: np.ndarray | None = None,
        block: int | None = None,
    ) -> str:
        k = self.tensors[x].shape[-1]
        wf = self._init((out, k), k, weights)
        wq, ws = quantize_weights(wf)
        b = np.zeros(out) if bias is None else np.asarray(bias, np.float64)
        real = self._real(x) @ (wq * ws[:, None]).T + b
        extra = {"block": block} if block else {}
        return self._weighted("linear", name, x, real, ws, b, extra, act, wq)

    def add(self, name: str, x1: str, x2: str) -> str:
        t1, t2 = self.tensors[x1], self.tensors[x2]
        scale, zp = output_quant(self._real(x1) + self._real(x2))
        attrs = add_params(t1.scale, t1.zero_point, t2.scale, t2.zero_point, scale, zp)
        return self._add_node("add", name, [x1, x2], attrs, scale, zp, t1.shape)

    def layernorm(
        self,
        name: str,
        x: str,
        gamma: np.ndarray | None = None,
        beta: np.ndarray | None = None,
        eps: float = 1e-5,
    ) -> str:
        t = self.tensors[x]
        d = t.shape[-1]
        g = 1.0 + 0.1 * self.rng.standard_normal(d) if gamma is None else np.asarray(gamma)
        be = 0.1 * self.rng.standard_normal(d) if beta is None else np.asarray(beta)
        xr = self._real(x)
        mean, var = xr.mean(-1, keepdims=True), xr.var(-1, keepdims=True)
        scale, zp = output_quant((xr - mean) / np.sqrt(var + eps) * g + be)
        gq, bq, eps_q = layernorm_params(g, be, t.scale, scale, eps)
        inputs = [x, self._const(f"{name}_gamma", gq), self._const(f"{name}_beta", bq)]
        attrs = {"eps": eps_q, "output_zp": zp}
        return self._add_node("layernorm", name, inputs, attrs, scale, zp, t.shape)

    def gelu(self, name: str, x: str) -> str:
        t = self.tensors[x]
        xr = self._real(x)
        scale, zp = output_quant(0.5 * xr * (1.0 + _erf(xr / math.sqrt(2.0))))
        table = self._const(f"{name}_table", gelu_table(t.scale, t.zero_point, scale, zp))
        return self._add_node("lut", name, [x, table], {}, scale, zp, t.shape)

    def attention(self, name: str, x: str, heads: int, head_dim: int) -> str:
        """Multi-head self-attention on tokens [T][C]: q/k/v projections, softmax, proj."""
        c = self.tensors[x].shape[-1]
        q, k, v = (self.linear(f"{name}_{p}", x, heads * head_dim) for p in "qkv")
        return self.linear(f"{name}_proj", self.attention_core(name, q, k, v, heads, head_dim), c)

    def attention_core(self, name: str, q: str, k: str, v: str, heads: int, head_dim: int) -> str:
        """softmax(Q_h K_h^T / sqrt(d)) V_h per head, heads concatenated: [T][heads * d]."""
        t = self.tensors[q].shape[0]
        tq, tk, tv = self.tensors[q], self.tensors[k], self.tensors[v]
        qh = self._real(q).reshape(t, heads, head_dim).transpose(1, 0, 2)
        kh = self._real(k).reshape(t, heads, head_dim).transpose(1, 0, 2)
        s_scale, s_zp = output_quant(qh @ kh.transpose(0, 2, 1) / math.sqrt(head_dim))
        m, e = quantize_multiplier(tq.scale * tk.scale / math.sqrt(head_dim) / s_scale)
        attrs = {
            "heads": heads,
            "q_zp": tq.zero_point,
            "k_zp": tk.zero_point,
            "multiplier": m,
            "shift": e,
            "output_zp": s_zp,
        }
        scores = self._add_node(
            "matmul_qk", f"{name}_qk", [q, k], attrs, s_scale, s_zp, (heads, t, t)
        )
        table = self._const(f"{name}_exp", softmax_exp_table(s_scale))
        probs = self._add_node(
            "softmax",
            f"{name}_softmax",
            [scores, table],
            {},
            OUTPUT_SCALE,
            OUTPUT_ZP,
            (heads, t, t),
        )
        vh = self._real(v).reshape(t, heads, head_dim).transpose(1, 0, 2)
        ctx_real = (self._real(probs) @ vh).transpose(1, 0, 2).reshape(t, heads * head_dim)
        o_scale, o_zp = output_quant(ctx_real)
        m, e = quantize_multiplier(OUTPUT_SCALE * tv.scale / o_scale)
        attrs = {
            "heads": heads,
            "attn_zp": OUTPUT_ZP,
            "v_zp": tv.zero_point,
            "multiplier": m,
            "shift": e,
            "output_zp": o_zp,
        }
        return self._add_node(
            "matmul_av", f"{name}_av", [probs, v], attrs, o_scale, o_zp, (t, heads * head_dim)
        )

    def transformer_block(
        self, name: str, x: str, heads: int, head_dim: int, mlp_ratio: int = 2
    ) -> str:
        """Pre-norm block: x + attn(norm1(x)), then x + mlp(norm2(x))."""
        c = self.tensors[x].shape[-1]
        a = self.attention(f"{name}_attn", self.layernorm(f"{name}_norm1", x), heads, head_dim)
        x = self.add(f"{name}_add1", x, a)
        h = self.linear(f"{name}_fc1", self.layernorm(f"{name}_norm2", x), c * mlp_ratio)
        h = self.linear(f"{name}_fc2", self.gelu(f"{name}_gelu", h), c)
        return self.add(f"{name}_add2", x, h)

    def reshape(self, name: str, x: str, shape: tuple[int, ...]) -> str:
        t = self.tensors[x]
        return self._add_node("reshape", name, [x], {}, t.scale, t.zero_point, tuple(shape))

    def avgpool(self, name: str, x: str, k: int, stride: int, padding: str = "valid") -> str:
        t = self.tensors[x]
        h, w, c = t.shape
        pad = same_padding(h, w, k, k, stride) if padding == "same" else (0, 0, 0, 0)
        attrs = {"kernel": [k, k], "stride": stride, "padding": list(pad)}
        ho = output_size(h, k, stride, pad[0], pad[2])
        wo = output_size(w, k, stride, pad[1], pad[3])
        return self._add_node("avgpool", name, [x], attrs, t.scale, t.zero_point, (ho, wo, c))

    def transpose(self, name: str, x: str, perm: tuple[int, int, int]) -> str:
        """Permute the axes of a 3-D tensor (the last axis may stay as the byte block)."""
        t = self.tensors[x]
        shape, inner = (1, *t.shape), 1
        attrs = {"shape": list(shape), "perm": [0, *(p + 1 for p in perm)], "inner": inner}
        out_shape = tuple(t.shape[p] for p in perm)
        return self._add_node("transpose", name, [x], attrs, t.scale, t.zero_point, out_shape)

    def global_avgpool(self, name: str, x: str) -> str:
        t = self.tensors[x]
        shape = (t.shape[-1],)
        return self._add_node("global_avgpool", name, [x], {}, t.scale, t.zero_point, shape)

    def build(self, output: str, meta: dict | None = None) -> Graph:
        graph = Graph(self.name, self.tensors, self.nodes, [self.input], [output], meta or {})
        check_graph(graph)
        return graph


def random_hybrid_graph(
    seed: int = 0,
    size: int = 16,
    channels: int = 3,
    width: int = 16,
    dim: int = 32,
    heads: int = 2,
    blocks: int = 2,
    classes: int = 10,
) -> Graph:
    """Conv stem, an MBConv block, patch embedding, transformer blocks and a linear head."""
    rng = np.random.default_rng(seed)
    sample = rng.integers(-128, 128, (size, size, channels), dtype=np.int8)
    b = GraphBuilder(f"hybrid_s{seed}", sample, seed=seed)
    x = b.conv2d("stem", b.input, width, 3, stride=2)
    h = b.conv2d("mb_expand", x, width * 2, 1)
    h = b.depthwise("mb_dw", h, 3)
    h = b.conv2d("mb_project", h, width, 1, act="none")
    x = b.add("mb_add", x, h)
    x = b.conv2d("embed", x, dim, 2, stride=2, act="none", padding="valid")
    hh, ww, _ = b.tensors[x].shape
    t = b.reshape("to_tokens", x, (hh * ww, dim))
    for i in range(blocks):
        t = b.transformer_block(f"block{i}", t, heads, dim // heads)
    t = b.layernorm("norm", t)
    return b.build(b.linear("head", b.global_avgpool("pool", t), classes))
