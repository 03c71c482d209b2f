"""The MBConv block type: ``depth`` inverted-residual blocks (1x1 expand, k x k depthwise with
the stage stride on the first block, 1x1 project; residual when stride 1 and widths match).

Hidden width = input width * expand_ratio.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from tinyformer.model.blocks.base import BlockType
from tinyformer.model.fields import ConfigError, check_in, check_int, choices, int_fields
from tinyformer.model.layers import ElasticConvBNAct, ElasticDepthwiseBNAct
from tinyformer.model.modules import ConvBNAct
from tinyformer.quant.fakequant import QParams
from tinyformer.quant.qmodules import QAdd, QConvUnit, QModule
from tinyformer.quant.writer import GraphWriter


def mbconv_hidden(in_width: int, expand_ratio: int) -> int:
    return in_width * expand_ratio


# ----------------------------------------------------------------------------- config, space


@dataclass(frozen=True)
class MBConvStageConfig:
    """One MBConv stage of a concrete subnet."""

    depth: int
    width: int
    kernel_size: int
    expand_ratio: int
    stride: int = 1
    kind: ClassVar[str] = "mbconv"

    def validate(self, where: str = "stage") -> None:
        for name in ("depth", "width", "kernel_size", "expand_ratio"):
            check_int(f"{where}.{name}", getattr(self, name))
        if self.kernel_size % 2 == 0:
            raise ConfigError(f"{where}.kernel_size: must be odd, got {self.kernel_size}")
        if self.stride not in (1, 2):
            raise ConfigError(f"{where}.stride: must be 1 or 2, got {self.stride!r}")

    def out_size(self, size: int, where: str = "stage") -> int:
        return (size - 1) // self.stride + 1  # k x k conv with padding k // 2

    def to_dict(self) -> dict[str, Any]:
        return int_fields(self)


@dataclass(frozen=True)
class MBConvStageSpace:
    """Elastic choices of one MBConv stage (depth, width, kernel size, expansion ratio)."""

    depths: tuple[int, ...]
    widths: tuple[int, ...]
    kernel_sizes: tuple[int, ...]
    expand_ratios: tuple[int, ...]
    stride: int = 1
    kind: ClassVar[str] = "mbconv"
    elastic: ClassVar[tuple[str, ...]] = ("depths", "widths", "kernel_sizes", "expand_ratios")

    def __post_init__(self) -> None:
        for name in self.elastic:
            object.__setattr__(self, name, choices(f"{self.kind}.{name}", getattr(self, name)))
        if any(k % 2 == 0 for k in self.kernel_sizes):
            raise ConfigError(f"kernel_sizes: must be odd, got {self.kernel_sizes}")

    @classmethod
    def single(cls, stage: MBConvStageConfig) -> MBConvStageSpace:
        """The space whose only member is ``stage``."""
        return cls(
            (stage.depth,), (stage.width,), (stage.kernel_size,), (stage.expand_ratio,),
            stage.stride,
        )  # fmt: skip

    def fitted(self, size: int) -> MBConvStageSpace:
        """This space for a ``size`` x ``size`` input: any size fits."""
        return self

    def pick(self, choose: Any) -> MBConvStageConfig:
        return MBConvStageConfig(
            depth=choose(self.depths),
            width=choose(self.widths),
            kernel_size=choose(self.kernel_sizes),
            expand_ratio=choose(self.expand_ratios),
            stride=self.stride,
        )

    def check(self, stage: Any, where: str) -> None:
        if not isinstance(stage, MBConvStageConfig):
            raise ConfigError(f"{where}.kind: the space has an mbconv stage here, got {stage.kind}")
        check_in(f"{where}.depth", stage.depth, self.depths)
        check_in(f"{where}.width", stage.width, self.widths)
        check_in(f"{where}.kernel_size", stage.kernel_size, self.kernel_sizes)
        check_in(f"{where}.expand_ratio", stage.expand_ratio, self.expand_ratios)
        if stage.stride != self.stride:
            raise ConfigError(f"{where}.stride: the space fixes it to {self.stride}")


# ----------------------------------------------------------------------------- QAT layers


class QMBConvBlock(QModule):
    def __init__(self, block: MBConvBlock) -> None:
        super().__init__()
        self.expand = QConvUnit(block.expand)
        self.depthwise = QConvUnit(block.depthwise)
        self.project = QConvUnit(block.project)
        self.use_residual = bool(block.use_residual)
        self.add = QAdd() if self.use_residual else None

    def forward(self, x: torch.Tensor, qin: QParams, integer: bool = False):
        y, q = self.expand(x, qin, integer)
        y, q = self.depthwise(y, q, integer)
        y, q = self.project(y, q, integer)
        if self.add is None:
            return y, q
        return self.add(x, qin, y, q, integer)

    def export(self, g: GraphWriter, x: str, qin: QParams) -> tuple[str, QParams]:
        y, q = self.expand.export(g, x, qin)
        y, q = self.depthwise.export(g, y, q)
        y, q = self.project.export(g, y, q)
        if self.add is None:
            return y, q
        return self.add.export(g, x, qin, y, q)


class QMBConvStage(QModule):
    def __init__(self, stage: MBConvStage) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(QMBConvBlock(b) for b in stage.blocks)

    def forward(self, x: torch.Tensor, qin: QParams, integer: bool = False):
        for block in self.blocks:
            x, qin = block(x, qin, integer)
        return x, qin

    def export(self, g: GraphWriter, x: str, qin: QParams) -> tuple[str, QParams]:
        for block in self.blocks:
            x, qin = block.export(g, x, qin)
        return x, qin


# ----------------------------------------------------------------------------- subnet stage


class MBConvBlock(nn.Module):
    """Inverted residual: 1x1 expand, k x k depthwise, 1x1 project, optional residual add."""

    def __init__(
        self, expand: ConvBNAct, depthwise: ConvBNAct, project: ConvBNAct, use_residual: bool
    ) -> None:
        super().__init__()
        self.expand = expand
        self.depthwise = depthwise
        self.project = project
        self.use_residual = use_residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.depthwise(self.expand(x)))
        return x + y if self.use_residual else y


class MBConvStage(nn.Module):
    def __init__(self, blocks: list[MBConvBlock]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x

    def quantized(self) -> QMBConvStage:
        return QMBConvStage(self)


# ----------------------------------------------------------------------------- supernet stage


class ElasticMBConvBlock(nn.Module):
    def __init__(self, max_in: int, max_out: int, max_kernel: int, max_expand: int, stride: int):
        super().__init__()
        hidden = mbconv_hidden(max_in, max_expand)
        self.stride = stride
        self.expand = ElasticConvBNAct(max_in, hidden, 1)
        self.depthwise = ElasticDepthwiseBNAct(hidden, max_kernel, stride)
        self.project = ElasticConvBNAct(hidden, max_out, 1, relu6=False)

    def use_residual(self, in_ch: int, out_ch: int) -> bool:
        return self.stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor, width: int, k: int, expand_ratio: int) -> torch.Tensor:
        in_ch = x.shape[1]
        y = self.expand(x, mbconv_hidden(in_ch, expand_ratio))
        y = self.project(self.depthwise(y, k), width)
        return x + y if self.use_residual(in_ch, width) else y

    def export(self, in_ch: int, width: int, k: int, expand_ratio: int) -> MBConvBlock:
        hidden = mbconv_hidden(in_ch, expand_ratio)
        return MBConvBlock(
            self.expand.export(in_ch, hidden),
            self.depthwise.export(hidden, k),
            self.project.export(hidden, width),
            self.use_residual(in_ch, width),
        )


class ElasticMBConvStage(nn.Module):
    def __init__(self, max_in: int, space: MBConvStageSpace) -> None:
        super().__init__()
        max_w, max_k, max_e = max(space.widths), max(space.kernel_sizes), max(space.expand_ratios)
        self.blocks = nn.ModuleList(
            ElasticMBConvBlock(max_in if i == 0 else max_w, max_w, max_k, max_e, stride)
            for i, stride in enumerate([space.stride] + [1] * (max(space.depths) - 1))
        )

    def forward(self, x: torch.Tensor, cfg: MBConvStageConfig) -> torch.Tensor:
        for block in self.blocks[: cfg.depth]:
            x = block(x, cfg.width, cfg.kernel_size, cfg.expand_ratio)
        return x

    def export(self, in_ch: int, cfg: MBConvStageConfig) -> MBConvStage:
        blocks = []
        for i, block in enumerate(self.blocks[: cfg.depth]):
            blocks.append(
                block.export(
                    in_ch if i == 0 else cfg.width, cfg.width, cfg.kernel_size, cfg.expand_ratio
                )
            )
        return MBConvStage(blocks)


MBCONV = BlockType(MBConvStageConfig, MBConvStageSpace, ElasticMBConvStage)
