"""Fold an eval-mode BatchNorm into the conv before it.

    BN(conv(x)) = gamma * (W x + b - mean) / sqrt(var + eps) + beta
                = (W * f) x + (b - mean) * f + beta,        f = gamma / sqrt(var + eps)

per output channel, so a pruned (all-zero) weight block stays zero after folding.
"""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def fold_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight, bias) of the conv with ``bn``'s running statistics and affine folded in."""
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("BatchNorm without running statistics cannot be folded")
    std = torch.sqrt(bn.running_var.double() + bn.eps)
    gamma = bn.weight.double() if bn.weight is not None else torch.ones_like(std)
    beta = bn.bias.double() if bn.bias is not None else torch.zeros_like(std)
    factor = gamma / std
    weight = conv.weight.double() * factor.reshape(-1, 1, 1, 1)
    bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(std)
    bias = (bias - bn.running_mean.double()) * factor + beta
    return weight.to(conv.weight.dtype), bias.to(conv.weight.dtype)


def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A new conv (with bias) computing ``bn(conv(x))`` of the eval-mode modules."""
    weight, bias = fold_bn(conv, bn)
    folded = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        conv.groups,
        bias=True,
        padding_mode=conv.padding_mode,
    ).to(conv.weight.device)
    with torch.no_grad():
        folded.weight.copy_(weight)
        folded.bias.copy_(bias)
    return folded
