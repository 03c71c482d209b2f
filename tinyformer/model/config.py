"""Search space (``SupernetSpace``) and concrete architectures (``SubnetConfig``).

A network is: stem (k x k conv + BN + ReLU6) -> stages -> global average pool -> linear.
Each stage is one of the block types of :mod:`tinyformer.model.blocks` (``mbconv``,
``transformer``), which define the stage's config fields and elastic choices; this module
holds what surrounds them and the default spaces.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from tinyformer.json_document import JsonDocument
from tinyformer.model.blocks.mbconv import MBConvStageSpace
from tinyformer.model.blocks.registry import (
    BLOCK_TYPES,
    STAGE_CONFIGS,
    StageConfig,
    StageSpace,
    block_type,
)
from tinyformer.model.blocks.transformer import TransformerStageSpace
from tinyformer.model.fields import ConfigError, check_in, check_int, check_keys, choices

CONFIG_VERSION = 1


# ----------------------------------------------------------------------------- subnet configs


def stage_from_dict(data: Mapping, where: str = "stage") -> StageConfig:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected an object, got {type(data).__name__}")
    kind = data.get("kind")
    if kind not in BLOCK_TYPES:
        raise ConfigError(f"{where}.kind: must be one of {sorted(BLOCK_TYPES)}, got {kind!r}")
    cls = BLOCK_TYPES[kind].config
    check_keys(where, data, cls)
    stage = cls(**{k: v for k, v in data.items() if k != "kind"})
    stage.validate(where)
    return stage


@dataclass(frozen=True)
class SubnetConfig(JsonDocument):
    """A complete, standalone architecture: enough to build the network without its space.

    Immutable and hashable (usable as a cache key); ``to_json`` / ``from_json`` round-trip
    exactly, and construction validates, raising ``ConfigError`` that names the bad field.
    """

    json_what = "subnet config"
    json_error = ConfigError

    image_size: int
    in_channels: int
    num_classes: int
    stem_width: int
    stages: tuple[StageConfig, ...]
    stem_kernel: int = 3
    stem_stride: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "stages", tuple(self.stages))
        self.validate()

    def validate(self) -> None:
        for name in ("image_size", "in_channels", "stem_width", "stem_kernel"):
            check_int(name, getattr(self, name))
        check_int("num_classes", self.num_classes, minimum=2)
        if self.stem_kernel % 2 == 0:
            raise ConfigError(f"stem_kernel: must be odd, got {self.stem_kernel}")
        if self.stem_stride not in (1, 2):
            raise ConfigError(f"stem_stride: must be 1 or 2, got {self.stem_stride!r}")
        if not self.stages:
            raise ConfigError("stages: need at least one stage")
        size = (self.image_size - 1) // self.stem_stride + 1
        for i, stage in enumerate(self.stages):
            where = f"stages[{i}]"
            if not isinstance(stage, STAGE_CONFIGS):
                raise ConfigError(f"{where}: not a stage config: {stage!r}")
            stage.validate(where)
            size = stage.out_size(size, where)

    def feature_sizes(self) -> list[int]:
        """Spatial size after the stem and after each stage."""
        sizes = [(self.image_size - 1) // self.stem_stride + 1]
        for stage in self.stages:
            sizes.append(stage.out_size(sizes[-1]))
        return sizes

    @property
    def out_width(self) -> int:
        return self.stages[-1].width

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": CONFIG_VERSION,
            "image_size": int(self.image_size),
            "in_channels": int(self.in_channels),
            "num_classes": int(self.num_classes),
            "stem_width": int(self.stem_width),
            "stem_kernel": int(self.stem_kernel),
            "stem_stride": int(self.stem_stride),
            "stages": [s.to_dict() for s in self.stages],
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> SubnetConfig:
        if not isinstance(data, Mapping):
            raise ConfigError(f"subnet config: expected an object, got {type(data).__name__}")
        data = dict(data)
        version = data.pop("version", CONFIG_VERSION)
        if version != CONFIG_VERSION:
            raise ConfigError(f"version: {version!r} is not supported (expected {CONFIG_VERSION})")
        check_keys("subnet config", data, cls)
        stages = data.pop("stages")
        if not isinstance(stages, Sequence) or isinstance(stages, str | bytes):
            raise ConfigError(f"stages: expected a list, got {type(stages).__name__}")
        parsed = tuple(stage_from_dict(s, f"stages[{i}]") for i, s in enumerate(stages))
        return cls(stages=parsed, **data)


# ----------------------------------------------------------------------------- search space


def _pick(rng: np.random.Generator, values: tuple[int, ...]) -> int:
    return values[int(rng.integers(len(values)))]


@dataclass(frozen=True)
class SupernetSpace:
    """The elastic choices of a weight-sharing supernet; every subnet is a ``SubnetConfig``."""

    name: str
    image_size: int
    in_channels: int
    num_classes: int
    stem_widths: tuple[int, ...]
    stages: tuple[StageSpace, ...]
    stem_kernel: int = 3
    stem_stride: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "stem_widths", choices("stem_widths", self.stem_widths))
        object.__setattr__(self, "stages", tuple(self.stages))
        self.largest()  # validates the fixed structure (sizes, patches) through SubnetConfig

    def _build(self, choose: Any) -> SubnetConfig:
        return SubnetConfig(
            image_size=self.image_size,
            in_channels=self.in_channels,
            num_classes=self.num_classes,
            stem_width=choose(self.stem_widths),
            stages=tuple(s.pick(choose) for s in self.stages),
            stem_kernel=self.stem_kernel,
            stem_stride=self.stem_stride,
        )

    def largest(self) -> SubnetConfig:
        return self._build(max)

    def smallest(self) -> SubnetConfig:
        return self._build(min)

    def median(self) -> SubnetConfig:
        """Every choice's median (the upper one of an even count: 5 of kernels 3 and 5)."""
        return self._build(lambda values: sorted(values)[len(values) // 2])

    def sample(self, rng: np.random.Generator) -> SubnetConfig:
        """A uniformly random subnet (each choice drawn independently) from ``rng``."""
        return self._build(lambda values: _pick(rng, values))

    def validate(self, config: SubnetConfig) -> None:
        """Raise ``ConfigError`` naming the first field of ``config`` outside this space."""
        fixed = ("image_size", "in_channels", "num_classes", "stem_kernel", "stem_stride")
        for name in fixed:
            if getattr(config, name) != getattr(self, name):
                raise ConfigError(
                    f"{name}: {getattr(config, name)} does not match the space's "
                    f"{getattr(self, name)} ({self.name})"
                )
        check_in("stem_width", config.stem_width, self.stem_widths)
        if len(config.stages) != len(self.stages):
            raise ConfigError(
                f"stages: the space has {len(self.stages)} stages, config has {len(config.stages)}"
            )
        for i, (space, stage) in enumerate(zip(self.stages, config.stages, strict=True)):
            space.check(stage, f"stages[{i}]")

    def contains(self, config: SubnetConfig) -> bool:
        try:
            self.validate(config)
        except ConfigError:
            return False
        return True

    def num_subnets(self) -> int:
        """Number of distinct subnets (product of all choice counts)."""
        counts = [len(self.stem_widths)]
        for s in self.stages:
            counts += [len(getattr(s, name)) for name in s.elastic]
        return math.prod(counts)

    def to_dict(self) -> dict[str, Any]:
        stages = []
        for s in self.stages:
            stages.append(
                {"kind": s.kind, **{f.name: _plain(getattr(s, f.name)) for f in fields(s)}}
            )
        return {
            "version": CONFIG_VERSION,
            "name": self.name,
            "image_size": self.image_size,
            "in_channels": self.in_channels,
            "num_classes": self.num_classes,
            "stem_widths": list(self.stem_widths),
            "stem_kernel": self.stem_kernel,
            "stem_stride": self.stem_stride,
            "stages": stages,
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> SupernetSpace:
        data = dict(data)
        if data.pop("version", CONFIG_VERSION) != CONFIG_VERSION:
            raise ConfigError("space: unsupported version")
        check_keys("space", data, cls)
        stages = []
        for i, s in enumerate(data.pop("stages")):
            kind = s.get("kind") if isinstance(s, Mapping) else None
            if kind not in BLOCK_TYPES:
                raise ConfigError(f"stages[{i}].kind: must be one of {sorted(BLOCK_TYPES)}")
            space = BLOCK_TYPES[kind].space
            check_keys(f"stages[{i}]", s, space)
            stages.append(space(**{k: v for k, v in s.items() if k != "kind"}))
        return cls(stages=tuple(stages), **data)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text: str) -> SupernetSpace:
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_subnet(cls, config: SubnetConfig, name: str = "single") -> SupernetSpace:
        """The space whose only member is ``config``."""
        stages = tuple(block_type(s).space.single(s) for s in config.stages)
        return cls(
            name=name,
            image_size=config.image_size,
            in_channels=config.in_channels,
            num_classes=config.num_classes,
            stem_widths=(config.stem_width,),
            stages=stages,
            stem_kernel=config.stem_kernel,
            stem_stride=config.stem_stride,
        )

    @classmethod
    def for_dataset(
        cls,
        name: str,
        image_size: int | None = None,
        in_channels: int | None = None,
        num_classes: int | None = None,
    ) -> SupernetSpace:
        """Default space for ``digits`` or ``cifar10``; other names get one by input size.

        The given sizes override the defaults (an image folder's size and classes).
        """
        if name in DEFAULT_SPACES:
            base = DEFAULT_SPACES[name]()
        else:
            small = image_size is not None and image_size <= 16
            base = replace(_digits_space() if small else _cifar10_space(), name=name)
        overrides = {
            k: v
            for k, v in (
                ("image_size", image_size),
                ("in_channels", in_channels),
                ("num_classes", num_classes),
            )
            if v is not None
        }
        if not overrides:
            return base
        size = overrides.get("image_size", base.image_size)
        return replace(base, stages=_fit_patches(base, size), **overrides)


def _fit_patches(space: SupernetSpace, image_size: int) -> tuple[StageSpace, ...]:
    """The space's stages with patch size 1 wherever 2 does not divide the feature map."""
    size = (image_size - 1) // space.stem_stride + 1
    stages: list[StageSpace] = []
    for stage in space.stages:
        stage = stage.fitted(size)
        size = stage.pick(max).out_size(size)
        stages.append(stage)
    return tuple(stages)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _digits_space() -> SupernetSpace:
    """8x8x1 digits: stem 8x8, one MBConv stage down to 4x4, one transformer stage on 16 tokens.

    Largest subnet 87 k parameters, smallest 6 k (tests/test_space_claims.py counts them).
    """
    return SupernetSpace(
        name="digits",
        image_size=8,
        in_channels=1,
        num_classes=10,
        stem_widths=(8, 16),
        stages=(
            MBConvStageSpace(
                depths=(1, 2), widths=(16, 24, 32), kernel_sizes=(3, 5), expand_ratios=(2, 3, 4),
                stride=2,
            ),
            TransformerStageSpace(
                depths=(1, 2), widths=(32, 48, 64), heads=(1, 2, 4), mlp_ratios=(1, 2),
                head_dim=16, patch_size=1,
            ),
        ),
    )  # fmt: skip


def _cifar10_space() -> SupernetSpace:
    """32x32x3 CIFAR-10: three MBConv stages (32 -> 16 -> 8), transformers on 64 and 16 tokens.

    Largest subnet 0.94 M parameters: dense it does not fit 1 MB of flash (its int8 weights
    and tables alone are 1,060 KB); at 75 % block sparsity (B = 4) it takes about 503 KB of
    flash and 223 KB of peak SRAM. Smallest subnet 0.14 M parameters, about 185 KB of flash
    dense.
    (tests/test_space_claims.py recomputes these figures.)
    """
    return SupernetSpace(
        name="cifar10",
        image_size=32,
        in_channels=3,
        num_classes=10,
        stem_widths=(16, 24),
        stages=(
            MBConvStageSpace(
                depths=(1, 2), widths=(16, 24), kernel_sizes=(3, 5), expand_ratios=(2, 3, 4),
                stride=1,
            ),
            MBConvStageSpace(
                depths=(1, 2, 3), widths=(24, 32), kernel_sizes=(3, 5), expand_ratios=(2, 3, 4),
                stride=2,
            ),
            MBConvStageSpace(
                depths=(1, 2, 3), widths=(48, 64), kernel_sizes=(3, 5), expand_ratios=(2, 3, 4),
                stride=2,
            ),
            TransformerStageSpace(
                depths=(1, 2, 3), widths=(64, 96, 128), heads=(2, 4), mlp_ratios=(1, 2),
                head_dim=32, patch_size=1,
            ),
            TransformerStageSpace(
                depths=(1, 2), widths=(128, 144), heads=(2, 4), mlp_ratios=(1, 2),
                head_dim=32, patch_size=2,
            ),
        ),
    )  # fmt: skip


DEFAULT_SPACES = {"digits": _digits_space, "cifar10": _cifar10_space}
