"""Elastic layers: one full-size weight, sliced to the active subnet's sizes (weight sharing).

Slicing rules (the same in ``forward`` and ``export``, which is what makes an extracted subnet
compute exactly what the supernet computed for its config):

- channels / features: the first ``n`` (input sizes come from the incoming tensor);
- kernel size: the centred ``k x k`` window of the largest kernel.

``export`` returns a plain ``nn`` module holding copies of the sliced parameters and buffers.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from tinyformer.model.modules import ConvBNAct


def _centre(kernel: torch.Tensor, k: int) -> torch.Tensor:
    full = kernel.shape[-1]
    if k > full or (full - k) % 2:
        raise ValueError(f"kernel size {k} cannot be cut from {full}x{full}")
    lo = (full - k) // 2
    return kernel[..., lo : lo + k, lo : lo + k]


def _copy_into(module: nn.Module, **tensors: torch.Tensor | None) -> nn.Module:
    with torch.no_grad():
        for name, value in tensors.items():
            if value is not None:
                getattr(module, name).copy_(value)
    return module


class ElasticConv2d(nn.Module):
    """Dense k x k conv; weight [max_out, max_in, K, K], padding k // 2 unless ``padding`` given."""

    def __init__(
        self,
        max_in: int,
        max_out: int,
        max_kernel: int,
        stride: int = 1,
        padding: int | None = None,
        bias: bool = False,
    ) -> None:
        super().__init__()
        self.stride = stride
        self.padding = padding
        self.weight = nn.Parameter(torch.empty(max_out, max_in, max_kernel, max_kernel))
        self.bias = nn.Parameter(torch.zeros(max_out)) if bias else None
        nn.init.kaiming_normal_(self.weight, mode="fan_out", nonlinearity="relu")

    def _pad(self, k: int) -> int:
        return k // 2 if self.padding is None else self.padding

    def sliced(self, in_ch: int, out_ch: int, k: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        weight = _centre(self.weight[:out_ch, :in_ch], k)
        return weight, None if self.bias is None else self.bias[:out_ch]

    def forward(self, x: torch.Tensor, out_ch: int, k: int | None = None) -> torch.Tensor:
        k = self.weight.shape[-1] if k is None else k
        weight, bias = self.sliced(x.shape[1], out_ch, k)
        return F.conv2d(x, weight, bias, self.stride, self._pad(k))

    def export(self, in_ch: int, out_ch: int, k: int | None = None) -> nn.Conv2d:
        k = self.weight.shape[-1] if k is None else k
        weight, bias = self.sliced(in_ch, out_ch, k)
        conv = nn.Conv2d(in_ch, out_ch, k, self.stride, self._pad(k), bias=bias is not None)
        return _copy_into(conv, weight=weight, bias=bias)


class ElasticDepthwiseConv2d(nn.Module):
    """Depthwise k x k conv (groups = channels); weight [max_ch, 1, K, K], padding k // 2."""

    def __init__(self, max_ch: int, max_kernel: int, stride: int = 1) -> None:
        super().__init__()
        self.stride = stride
        self.weight = nn.Parameter(torch.empty(max_ch, 1, max_kernel, max_kernel))
        nn.init.kaiming_normal_(self.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor, k: int) -> torch.Tensor:
        ch = x.shape[1]
        weight = _centre(self.weight[:ch], k)
        return F.conv2d(x, weight, None, self.stride, k // 2, groups=ch)

    def export(self, ch: int, k: int) -> nn.Conv2d:
        conv = nn.Conv2d(ch, ch, k, self.stride, k // 2, groups=ch, bias=False)
        return _copy_into(conv, weight=_centre(self.weight[:ch], k))


class ElasticBatchNorm2d(nn.Module):
    """BatchNorm over the first C channels (C from the input); shared running statistics.

    ``momentum=None`` gives a cumulative average, used to recalibrate statistics for one subnet.
    """

    def __init__(self, max_ch: int, eps: float = 1e-5, momentum: float | None = 0.1) -> None:
        super().__init__()
        self.eps = eps
        self.momentum = momentum
        self.weight = nn.Parameter(torch.ones(max_ch))
        self.bias = nn.Parameter(torch.zeros(max_ch))
        self.register_buffer("running_mean", torch.zeros(max_ch))
        self.register_buffer("running_var", torch.ones(max_ch))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def reset_running_stats(self) -> None:
        self.running_mean.zero_()
        self.running_var.fill_(1.0)
        self.num_batches_tracked.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ch = x.shape[1]
        factor: float | None = 0.0
        if self.training:
            self.num_batches_tracked.add_(1)
            factor = self.momentum
            if factor is None:
                factor = 1.0 / float(self.num_batches_tracked)
        # Slices of the buffers are views, so F.batch_norm updates the shared statistics in place.
        return F.batch_norm(
            x,
            self.running_mean[:ch],
            self.running_var[:ch],
            self.weight[:ch],
            self.bias[:ch],
            self.training,
            factor,
            self.eps,
        )

    def export(self, ch: int) -> nn.BatchNorm2d:
        bn = nn.BatchNorm2d(
            ch, eps=self.eps, momentum=0.1 if self.momentum is None else self.momentum
        )
        return _copy_into(
            bn,
            weight=self.weight[:ch],
            bias=self.bias[:ch],
            running_mean=self.running_mean[:ch],
            running_var=self.running_var[:ch],
        )


class ElasticLinear(nn.Module):
    """Linear over the last axis; weight [max_out, max_in], input features from the input."""

    def __init__(self, max_in: int, max_out: int, bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(max_out, max_in))
        self.bias = nn.Parameter(torch.zeros(max_out)) if bias else None
        nn.init.trunc_normal_(self.weight, std=0.02)

    def forward(self, x: torch.Tensor, out_features: int) -> torch.Tensor:
        weight = self.weight[:out_features, : x.shape[-1]]
        return F.linear(x, weight, None if self.bias is None else self.bias[:out_features])

    def export(self, in_features: int, out_features: int) -> nn.Linear:
        linear = nn.Linear(in_features, out_features, bias=self.bias is not None)
        return _copy_into(
            linear,
            weight=self.weight[:out_features, :in_features],
            bias=None if self.bias is None else self.bias[:out_features],
        )


class ElasticLayerNorm(nn.Module):
    """LayerNorm over the first D features of the last axis (D from the input)."""

    def __init__(self, max_dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(max_dim))
        self.bias = nn.Parameter(torch.zeros(max_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dim = x.shape[-1]
        return F.layer_norm(x, (dim,), self.weight[:dim], self.bias[:dim], self.eps)

    def export(self, dim: int) -> nn.LayerNorm:
        norm = nn.LayerNorm(dim, eps=self.eps)
        return _copy_into(norm, weight=self.weight[:dim], bias=self.bias[:dim])


def _act(relu6: bool) -> nn.Module:
    return nn.ReLU6() if relu6 else nn.Identity()


class ElasticConvBNAct(nn.Module):
    """Elastic dense conv (elastic out channels and kernel) + BN + ReLU6/Identity."""

    def __init__(
        self, max_in: int, max_out: int, max_kernel: int, stride: int = 1, relu6: bool = True
    ) -> None:
        super().__init__()
        self.relu6 = relu6
        self.conv = ElasticConv2d(max_in, max_out, max_kernel, stride)
        self.bn = ElasticBatchNorm2d(max_out)
        self.act = _act(relu6)

    def forward(self, x: torch.Tensor, out_ch: int, k: int | None = None) -> torch.Tensor:
        return self.act(self.bn(self.conv(x, out_ch, k)))

    def export(self, in_ch: int, out_ch: int, k: int | None = None) -> ConvBNAct:
        return ConvBNAct(
            self.conv.export(in_ch, out_ch, k), self.bn.export(out_ch), _act(self.relu6)
        )


class ElasticDepthwiseBNAct(nn.Module):
    """Elastic depthwise conv (channels from the input, elastic kernel) + BN + ReLU6."""

    def __init__(self, max_ch: int, max_kernel: int, stride: int) -> None:
        super().__init__()
        self.conv = ElasticDepthwiseConv2d(max_ch, max_kernel, stride)
        self.bn = ElasticBatchNorm2d(max_ch)
        self.act = nn.ReLU6()

    def forward(self, x: torch.Tensor, k: int) -> torch.Tensor:
        return self.act(self.bn(self.conv(x, k)))

    def export(self, ch: int, k: int) -> ConvBNAct:
        return ConvBNAct(self.conv.export(ch, k), self.bn.export(ch), nn.ReLU6())


@contextmanager
def batchnorm_recalibration(model: nn.Module) -> Iterator[None]:
    """Recompute every BatchNorm's statistics as exact averages over the forward passes run
    inside the block (train mode, cumulative momentum); eval mode afterwards.

    For a subnet taken from the supernet (shared statistics mix many subnets) and for one
    whose blocks were just pruned (its activations' statistics moved).
    """
    norms = [
        m
        for m in model.modules()
        if isinstance(m, ElasticBatchNorm2d | nn.modules.batchnorm._BatchNorm)
    ]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    try:
        yield
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        model.eval()
