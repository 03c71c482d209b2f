"""QAT: BN folding, fake quantization, and each QAT layer's integer path against the engine's
numpy reference ops on the same int8 input (bit for bit)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from tinyformer.engine.builder import output_quant
from tinyformer.engine.intmath import quantize_multiplier
from tinyformer.engine.ops.conv import conv2d, depthwise_conv2d
from tinyformer.engine.ops.elementwise import add
from tinyformer.engine.ops.gelu import gelu_table, lut
from tinyformer.engine.ops.linear import fully_connected
from tinyformer.engine.ops.matmul import batch_matmul_av, batch_matmul_qk
from tinyformer.engine.ops.norm import layernorm
from tinyformer.engine.ops.softmax import softmax, softmax_exp_table
from tinyformer.model.blocks.transformer import MultiHeadSelfAttention, QAttention
from tinyformer.model.modules import ConvBNAct
from tinyformer.prune import LayerSparsity, SparsityPlan, get_mask
from tinyformer.quant import ActQuant, QuantSubnet, fake_quant, fold_conv_bn, qparams_from_range
from tinyformer.quant.qmodules import QAdd, QConv2d, QGelu, QLayerNorm, QLinear

GEN = torch.Generator().manual_seed(0)


def _codes(shape, lo=-128, hi=128) -> torch.Tensor:
    return torch.randint(lo, hi, shape, generator=GEN)


def _calibrate(module: nn.Module, *args) -> None:
    """Observe ranges on one float batch, then stop observing."""
    module.train()
    with torch.no_grad():
        module(*args)
    for m in module.modules():
        if isinstance(m, ActQuant):
            m.observing = False
    module.eval()


def _real(codes: torch.Tensor, qp) -> torch.Tensor:
    return (codes.float() - qp[1]) * qp[0]


def _i8(x: torch.Tensor) -> np.ndarray:
    return x.numpy().astype(np.int8)


# ----------------------------------------------------------------------------- basics


def test_qparams_match_the_graph_builder():
    for lo, hi in [(-1.5, 2.0), (0.0, 6.0), (0.3, 0.9), (-4.0, -1.0), (0.0, 0.0)]:
        assert qparams_from_range(lo, hi) == output_quant(np.array([lo, hi]))


def test_fake_quant_rounds_clamps_and_passes_gradients_inside():
    x = torch.tensor([-3.0, -0.26, 0.0, 0.24, 0.76, 3.0], requires_grad=True)
    y = fake_quant(x, 0.5, 0, -2, 2)
    assert y.tolist() == [-1.0, -0.5, 0.0, 0.0, 1.0, 1.0]
    y.sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 1.0, 0.0]


def test_act_quant_observes_with_ema_then_freezes():
    q = ActQuant(momentum=0.5).train()
    q(torch.tensor([-1.0, 3.0]))
    q(torch.tensor([-3.0, 1.0]))
    assert (float(q.lo), float(q.hi)) == (-2.0, 2.0)
    q.observing = False
    q(torch.tensor([-100.0, 100.0]))
    assert q.qparams() == qparams_from_range(-2.0, 2.0)
    fixed = ActQuant(fixed=(1 / 255, -128)).train()
    _, qp = fixed(torch.rand(4))
    assert qp == (1 / 255, -128) and not bool(fixed.initialized)
    with pytest.raises(RuntimeError, match="calibrate"):
        ActQuant().eval()(torch.zeros(2))


def test_bn_folding():
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 6, 3, 2, 1, bias=False)
    bn = nn.BatchNorm2d(6)
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(6))
        bn.running_var.copy_(torch.rand(6) + 0.5)
        bn.weight.copy_(torch.randn(6))
        bn.bias.copy_(torch.randn(6))
    unit = ConvBNAct(conv, bn, nn.ReLU6()).eval()
    folded = fold_conv_bn(conv, bn)
    x = torch.randn(2, 4, 7, 7)
    torch.testing.assert_close(nn.functional.relu6(folded(x)), unit(x), atol=1e-5, rtol=1e-5)


# ----------------------------------------------------------------------------- op by op


@pytest.mark.parametrize(
    ("cin", "cout", "k", "stride", "act"),
    [(3, 8, 3, 1, "relu6"), (5, 7, 3, 2, "relu6"), (8, 16, 1, 1, "none"), (4, 6, 2, 2, "none")],
)
def test_conv_integer_path_is_the_reference_conv(cin, cout, k, stride, act):
    torch.manual_seed(1)
    pad = k // 2 if k % 2 else 0
    layer = QConv2d.from_conv(nn.Conv2d(cin, cout, k, stride, pad, bias=True), act)
    qin = (0.03, 5)
    _calibrate(layer, _real(_codes((4, cin, 7, 7)), qin), qin)
    x = _codes((3, cin, 7, 7))
    y, qout = layer(x, qin, integer=True)
    p = layer.int_params(qin)
    a = p["attrs"]
    for i in range(3):
        ref = conv2d(
            _i8(x[i].permute(1, 2, 0)), p["w"].transpose(0, 2, 3, 1), p["b"], a["input_zp"],
            a["output_zp"], np.array(a["multiplier"]), np.array(a["shift"]), stride, (pad,) * 4,
            a["act_min"], a["act_max"],
        )  # fmt: skip
        np.testing.assert_array_equal(y[i].permute(1, 2, 0).numpy(), ref)
    assert qout == layer.out.qparams()
    # the float (training) path rounds at the same point: codes agree up to one LSB
    sim, _ = layer(_real(x, qin), qin)
    diff = (torch.round(sim / qout[0]) + qout[1] - y).abs()
    assert diff.max() <= 1 and (diff == 0).float().mean() > 0.97


def test_depthwise_integer_path_is_the_reference_depthwise():
    torch.manual_seed(2)
    layer = QConv2d.from_conv(nn.Conv2d(6, 6, 5, 2, 2, groups=6, bias=True), "relu6")
    assert not layer.prunable
    qin = (0.02, -128)
    _calibrate(layer, _real(_codes((4, 6, 8, 8)), qin), qin)
    x = _codes((2, 6, 8, 8))
    y, _ = layer(x, qin, integer=True)
    p = layer.int_params(qin)
    a = p["attrs"]
    for i in range(2):
        ref = depthwise_conv2d(
            _i8(x[i].permute(1, 2, 0)), p["w"][:, 0].transpose(1, 2, 0), p["b"], a["input_zp"],
            a["output_zp"], np.array(a["multiplier"]), np.array(a["shift"]), 2, (2, 2, 2, 2),
            a["act_min"], a["act_max"],
        )  # fmt: skip
        np.testing.assert_array_equal(y[i].permute(1, 2, 0).numpy(), ref)


def test_linear_integer_path_is_the_reference_linear_with_a_pruned_row():
    torch.manual_seed(3)
    layer = QLinear(nn.Linear(24, 10))
    with torch.no_grad():
        layer.weight[2] = 0  # an output channel pruned away entirely
    qin = (0.05, -7)
    _calibrate(layer, _real(_codes((16, 5, 24)), qin), qin)
    x = _codes((4, 5, 24))
    y, _ = layer(x, qin, integer=True)
    p = layer.int_params(qin)
    a = p["attrs"]
    ref = fully_connected(
        _i8(x.reshape(-1, 24)), p["w"], p["b"], a["input_zp"], a["output_zp"],
        np.array(a["multiplier"]), np.array(a["shift"]), a["act_min"], a["act_max"],
    )  # fmt: skip
    np.testing.assert_array_equal(y.reshape(-1, 10).numpy(), ref)
    sim, qout = layer(_real(x, qin), qin)
    diff = (torch.round(sim / qout[0]) + qout[1] - y).abs()
    assert diff.max() <= 1


def test_layernorm_integer_path_is_the_reference_layernorm():
    torch.manual_seed(4)
    norm = nn.LayerNorm(16)
    with torch.no_grad():
        norm.weight.copy_(torch.rand(16) + 0.5)
        norm.bias.copy_(torch.randn(16) * 0.2)
    layer = QLayerNorm(norm)
    qin = (0.04, 10)
    _calibrate(layer, _real(_codes((8, 9, 16)), qin), qin)
    x = _codes((3, 9, 16))
    y, qout = layer(x, qin, integer=True)
    p = layer.int_params(qin)
    for i in range(3):
        ref = layernorm(_i8(x[i]), p["gamma"], p["beta"], p["eps"], qout[1])
        np.testing.assert_array_equal(y[i].numpy(), ref)
    sim, _ = layer(_real(x, qin), qin)
    diff = (torch.round(sim / qout[0]) + qout[1] - y).abs()
    assert diff.max() <= 1 and (diff == 0).float().mean() > 0.97


def test_gelu_float_path_is_the_engine_table_exactly():
    layer = QGelu()
    qin = (0.06, 20)
    _calibrate(layer, _real(_codes((4, 64)), qin), qin)
    x = _codes((3, 50))
    y, qout = layer(x, qin, integer=True)
    table = gelu_table(qin[0], qin[1], qout[0], qout[1])
    np.testing.assert_array_equal(y.numpy(), lut(_i8(x), table))
    xf = _real(x, qin).requires_grad_(True)
    sim, _ = layer(xf, qin)
    np.testing.assert_array_equal((torch.round(sim / qout[0]) + qout[1]).detach().numpy(), y)
    sim.sum().backward()  # gradient of the exact GELU
    assert torch.isfinite(xf.grad).all() and xf.grad.abs().sum() > 0


def test_add_integer_path_is_the_reference_add():
    layer = QAdd()
    q1, q2 = (0.05, 3), (0.02, -60)
    _calibrate(layer, _real(_codes((4, 32)), q1), q1, _real(_codes((4, 32)), q2), q2)
    x1, x2 = _codes((2, 16)), _codes((2, 16))
    y, _ = layer(x1, q1, x2, q2, integer=True)
    np.testing.assert_array_equal(
        y.numpy(), add(_i8(x1), _i8(x2), **layer.int_params(q1, q2)["attrs"])
    )


def test_attention_integer_path_is_the_reference_qk_softmax_av():
    torch.manual_seed(5)
    heads, hd, dim, t = 2, 8, 12, 9
    attn = MultiHeadSelfAttention(
        nn.Linear(dim, heads * hd), nn.Linear(dim, heads * hd), nn.Linear(dim, heads * hd),
        nn.Linear(heads * hd, dim), heads, hd,
    )  # fmt: skip
    layer = QAttention(attn)
    qin = (0.05, 0)
    _calibrate(layer, _real(_codes((8, t, dim)), qin), qin)
    x = _codes((2, t, dim))
    y, _ = layer(x, qin, integer=True)
    for i in range(2):
        xi = x[i : i + 1]
        q, qq = layer.q(xi, qin, integer=True)
        k, qk = layer.k(xi, qin, integer=True)
        v, qv = layer.v(xi, qin, integer=True)
        p = layer.core_params(qq, qk, qv)
        m, e = quantize_multiplier(qq[0] * qk[0] / math.sqrt(hd) / p["q_scores"][0])
        assert (p["qk"]["multiplier"], p["qk"]["shift"]) == (m, e)
        a = p["qk"]
        scores = batch_matmul_qk(_i8(q[0]), _i8(k[0]), a["q_zp"], a["k_zp"], heads,
                                 a["multiplier"], a["shift"], a["output_zp"])  # fmt: skip
        probs = softmax(scores, softmax_exp_table(p["q_scores"][0]))
        b = p["av"]
        ctx = batch_matmul_av(probs, _i8(v[0]), b["attn_zp"], b["v_zp"], b["multiplier"],
                              b["shift"], b["output_zp"])  # fmt: skip
        out, _ = layer.proj(torch.from_numpy(ctx.astype(np.int64))[None], p["q_ctx"], True)
        np.testing.assert_array_equal(y[i].numpy(), out[0].numpy())
    # the float path agrees closely with the integer one
    sim, qout = layer(_real(x, qin), qin)
    diff = (torch.round(sim / qout[0]) + qout[1] - y).abs()
    assert (diff <= 1).float().mean() > 0.95


def test_quant_subnet_keeps_masks_and_names(tiny_subnet):
    plan = SparsityPlan({"stages.1.blocks.0.mlp.fc1": LayerSparsity(4, 0.5)})
    from tinyformer.prune import prune

    prune(tiny_subnet, plan)
    model = QuantSubnet.from_subnet(tiny_subnet, plan)
    names = dict(model.named_modules())
    fc1 = names["stages.1.blocks.0.mlp.fc1"]
    assert get_mask(fc1) is not None and fc1.block == 4
    assert torch.all(fc1.weight[get_mask(fc1) == 0] == 0)
    assert "stem.conv" in names and "stages.0.blocks.0.depthwise.conv" in names
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    with pytest.raises(RuntimeError, match="calibrate"):
        model.eval()(torch.rand(2, 1, 8, 8))


@pytest.fixture
def tiny_subnet():
    from test_prune import tiny_config  # tests/ is on sys.path (conftest.py)

    from tinyformer.model import Subnet

    torch.manual_seed(0)
    return Subnet.from_config(tiny_config()).eval()


def test_weight_scales_torch_follows_the_engine_rule_for_dead_rows() -> None:
    from tinyformer.engine.intmath import weight_scales
    from tinyformer.quant.fakequant import weight_scales_torch

    w = torch.randn(6, 3, 3, 4)
    w[[0, 4]] = 0.0
    amax = w.abs().reshape(6, -1).amax(dim=1).double().numpy()
    np.testing.assert_allclose(weight_scales_torch(w).numpy(), weight_scales(amax), rtol=1e-6)
    assert torch.equal(weight_scales_torch(torch.zeros(2, 5)), torch.ones(2))
