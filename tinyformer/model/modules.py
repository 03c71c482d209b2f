"""Plain modules shared by the stem, the classifier head and the block types."""

from __future__ import annotations

import torch
from torch import nn


class ConvBNAct(nn.Module):
    """conv -> BatchNorm (folded into the conv at export) -> ReLU6 or Identity."""

    def __init__(self, conv: nn.Conv2d, bn: nn.BatchNorm2d, act: nn.Module) -> None:
        super().__init__()
        self.conv = conv
        self.bn = bn
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class GlobalAvgPool(nn.Module):
    """[N, C, H, W] -> [N, C] mean over the spatial positions (tokens)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))
