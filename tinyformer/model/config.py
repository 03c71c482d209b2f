"""Search space (``SupernetSpace``) and concrete architectures (``SubnetConfig``).

A network is: stem (k x k conv + BN + ReLU6) -> stages -> global average pool -> linear.
Stages are either

- ``mbconv``: ``depth`` inverted-residual blocks (1x1 expand, k x k depthwise with the stage
  stride on the first block, 1x1 project; residual when stride 1 and widths match), or
- ``transformer``: a ``patch_size`` x ``patch_size`` stride-``patch_size`` conv embedding to
  ``width`` channels, the feature map read as H*W tokens, ``depth`` pre-norm blocks (LayerNorm,
  multi-head self-attention, LayerNorm, GELU MLP, residual adds) and a final LayerNorm; the tokens
  are read back as a feature map.

Derived sizes (shared with the exporter and budget estimators; see the helper functions):
MBConv hidden = input width * expand_ratio; attention width = heads * head_dim;
MLP hidden = width * mlp_ratio.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, fields, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from tinyformer.atomic_write import write_atomic_text

CONFIG_VERSION = 1


class ConfigError(ValueError):
    """An architecture config is malformed or outside its search space."""


def mbconv_hidden(in_width: int, expand_ratio: int) -> int:
    return in_width * expand_ratio


def attention_width(heads: int, head_dim: int) -> int:
    return heads * head_dim


def mlp_hidden(width: int, mlp_ratio: int) -> int:
    return width * mlp_ratio


def _check_int(where: str, value: Any, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ConfigError(f"{where}: must be an int >= {minimum}, got {value!r}")


def _check_keys(where: str, data: Mapping, cls: type) -> None:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected an object, got {type(data).__name__}")
    names = {f.name for f in fields(cls)}
    required = {
        f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING
    }
    unknown = sorted(set(data) - names - {"kind"})
    missing = sorted(required - set(data))
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown} (expected {sorted(names)})")
    if missing:
        raise ConfigError(f"{where}: missing keys {missing}")


# ----------------------------------------------------------------------------- subnet configs


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
            _check_int(f"{where}.{name}", getattr(self, name))
        if self.kernel_size % 2 == 0:
            raise ConfigError(f"{where}.kernel_size: must be odd, got {self.kernel_size}")
        if self.stride not in (1, 2):
            raise ConfigError(f"{where}.stride: must be 1 or 2, got {self.stride!r}")

    def out_size(self, size: int) -> int:
        return (size - 1) // self.stride + 1  # k x k conv with padding k // 2

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **{f.name: int(getattr(self, f.name)) for f in fields(self)}}


@dataclass(frozen=True)
class TransformerStageConfig:
    """One transformer stage of a concrete subnet."""

    depth: int
    width: int
    heads: int
    mlp_ratio: int
    head_dim: int = 16
    patch_size: int = 1
    kind: ClassVar[str] = "transformer"

    def validate(self, where: str = "stage") -> None:
        for name in ("depth", "width", "heads", "mlp_ratio", "head_dim"):
            _check_int(f"{where}.{name}", getattr(self, name))
        if self.patch_size not in (1, 2):
            raise ConfigError(f"{where}.patch_size: must be 1 or 2, got {self.patch_size!r}")

    def out_size(self, size: int) -> int:
        return size // self.patch_size

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **{f.name: int(getattr(self, f.name)) for f in fields(self)}}


StageConfig = MBConvStageConfig | TransformerStageConfig
STAGE_KINDS: dict[str, type] = {"mbconv": MBConvStageConfig, "transformer": TransformerStageConfig}


def stage_from_dict(data: Mapping, where: str = "stage") -> StageConfig:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected an object, got {type(data).__name__}")
    kind = data.get("kind")
    if kind not in STAGE_KINDS:
        raise ConfigError(f"{where}.kind: must be one of {sorted(STAGE_KINDS)}, got {kind!r}")
    cls = STAGE_KINDS[kind]
    _check_keys(where, data, cls)
    stage = cls(**{k: v for k, v in data.items() if k != "kind"})
    stage.validate(where)
    return stage


@dataclass(frozen=True)
class SubnetConfig:
    """A complete, standalone architecture: enough to build the network without its space.

    Immutable and hashable (usable as a cache key); ``to_json`` / ``from_json`` round-trip
    exactly, and construction validates, raising ``ConfigError`` that names the bad field.
    """

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
            _check_int(name, getattr(self, name))
        _check_int("num_classes", self.num_classes, minimum=2)
        if self.stem_kernel % 2 == 0:
            raise ConfigError(f"stem_kernel: must be odd, got {self.stem_kernel}")
        if self.stem_stride not in (1, 2):
            raise ConfigError(f"stem_stride: must be 1 or 2, got {self.stem_stride!r}")
        if not self.stages:
            raise ConfigError("stages: need at least one stage")
        size = (self.image_size - 1) // self.stem_stride + 1
        for i, stage in enumerate(self.stages):
            where = f"stages[{i}]"
            if not isinstance(stage, MBConvStageConfig | TransformerStageConfig):
                raise ConfigError(f"{where}: not a stage config: {stage!r}")
            stage.validate(where)
            if isinstance(stage, TransformerStageConfig) and size % stage.patch_size:
                raise ConfigError(
                    f"{where}.patch_size: {stage.patch_size} does not divide the {size}x{size} "
                    "feature map"
                )
            size = stage.out_size(size)

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
        _check_keys("subnet config", data, cls)
        stages = data.pop("stages")
        if not isinstance(stages, Sequence) or isinstance(stages, str | bytes):
            raise ConfigError(f"stages: expected a list, got {type(stages).__name__}")
        parsed = tuple(stage_from_dict(s, f"stages[{i}]") for i, s in enumerate(stages))
        return cls(stages=parsed, **data)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text: str) -> SubnetConfig:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"subnet config is not valid JSON: {exc}") from exc
        return cls.from_dict(data)

    def save(self, path: str | Path) -> None:
        write_atomic_text(self.to_json() + "\n", Path(path))

    @classmethod
    def load(cls, path: str | Path) -> SubnetConfig:
        return cls.from_json(Path(path).read_text())


# ----------------------------------------------------------------------------- search space


def _choices(where: str, values: Sequence[int]) -> tuple[int, ...]:
    values = tuple(int(v) for v in values)
    if not values:
        raise ConfigError(f"{where}: needs at least one choice")
    for v in values:
        _check_int(where, v)
    return tuple(sorted(set(values)))


def _pick(rng: np.random.Generator, values: tuple[int, ...]) -> int:
    return values[int(rng.integers(len(values)))]


def _in(where: str, value: int, choices: tuple[int, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{where}: {value} is not one of the choices {list(choices)}")


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
            object.__setattr__(self, name, _choices(f"{self.kind}.{name}", getattr(self, name)))
        if any(k % 2 == 0 for k in self.kernel_sizes):
            raise ConfigError(f"kernel_sizes: must be odd, got {self.kernel_sizes}")

    def pick(self, choose: Any) -> MBConvStageConfig:
        return MBConvStageConfig(
            depth=choose(self.depths),
            width=choose(self.widths),
            kernel_size=choose(self.kernel_sizes),
            expand_ratio=choose(self.expand_ratios),
            stride=self.stride,
        )

    def check(self, stage: StageConfig, where: str) -> None:
        if not isinstance(stage, MBConvStageConfig):
            raise ConfigError(f"{where}.kind: the space has an mbconv stage here, got {stage.kind}")
        _in(f"{where}.depth", stage.depth, self.depths)
        _in(f"{where}.width", stage.width, self.widths)
        _in(f"{where}.kernel_size", stage.kernel_size, self.kernel_sizes)
        _in(f"{where}.expand_ratio", stage.expand_ratio, self.expand_ratios)
        if stage.stride != self.stride:
            raise ConfigError(f"{where}.stride: the space fixes it to {self.stride}")


@dataclass(frozen=True)
class TransformerStageSpace:
    """Elastic choices of one transformer stage (depth, width, heads, MLP ratio)."""

    depths: tuple[int, ...]
    widths: tuple[int, ...]
    heads: tuple[int, ...]
    mlp_ratios: tuple[int, ...]
    head_dim: int = 16
    patch_size: int = 1
    kind: ClassVar[str] = "transformer"
    elastic: ClassVar[tuple[str, ...]] = ("depths", "widths", "heads", "mlp_ratios")

    def __post_init__(self) -> None:
        for name in self.elastic:
            object.__setattr__(self, name, _choices(f"{self.kind}.{name}", getattr(self, name)))

    def pick(self, choose: Any) -> TransformerStageConfig:
        return TransformerStageConfig(
            depth=choose(self.depths),
            width=choose(self.widths),
            heads=choose(self.heads),
            mlp_ratio=choose(self.mlp_ratios),
            head_dim=self.head_dim,
            patch_size=self.patch_size,
        )

    def check(self, stage: StageConfig, where: str) -> None:
        if not isinstance(stage, TransformerStageConfig):
            raise ConfigError(
                f"{where}.kind: the space has a transformer stage here, got {stage.kind}"
            )
        _in(f"{where}.depth", stage.depth, self.depths)
        _in(f"{where}.width", stage.width, self.widths)
        _in(f"{where}.heads", stage.heads, self.heads)
        _in(f"{where}.mlp_ratio", stage.mlp_ratio, self.mlp_ratios)
        if stage.head_dim != self.head_dim or stage.patch_size != self.patch_size:
            raise ConfigError(
                f"{where}: head_dim/patch_size are fixed to {self.head_dim}/{self.patch_size}"
            )


StageSpace = MBConvStageSpace | TransformerStageSpace
STAGE_SPACES: dict[str, type] = {"mbconv": MBConvStageSpace, "transformer": TransformerStageSpace}


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
        object.__setattr__(self, "stem_widths", _choices("stem_widths", self.stem_widths))
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
        _in("stem_width", config.stem_width, self.stem_widths)
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
        _check_keys("space", data, cls)
        stages = []
        for i, s in enumerate(data.pop("stages")):
            kind = s.get("kind") if isinstance(s, Mapping) else None
            if kind not in STAGE_SPACES:
                raise ConfigError(f"stages[{i}].kind: must be one of {sorted(STAGE_SPACES)}")
            _check_keys(f"stages[{i}]", s, STAGE_SPACES[kind])
            stages.append(STAGE_SPACES[kind](**{k: v for k, v in s.items() if k != "kind"}))
        return cls(stages=tuple(stages), **data)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text: str) -> SupernetSpace:
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_subnet(cls, config: SubnetConfig, name: str = "single") -> SupernetSpace:
        """The space whose only member is ``config``."""
        stages: list[StageSpace] = []
        for s in config.stages:
            if isinstance(s, MBConvStageConfig):
                stages.append(
                    MBConvStageSpace(
                        (s.depth,), (s.width,), (s.kernel_size,), (s.expand_ratio,), s.stride
                    )
                )
            else:
                stages.append(
                    TransformerStageSpace(
                        (s.depth,), (s.width,), (s.heads,), (s.mlp_ratio,), s.head_dim, s.patch_size
                    )
                )
        return cls(
            name=name,
            image_size=config.image_size,
            in_channels=config.in_channels,
            num_classes=config.num_classes,
            stem_widths=(config.stem_width,),
            stages=tuple(stages),
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
        if isinstance(stage, TransformerStageSpace):
            if size % stage.patch_size:
                stage = replace(stage, patch_size=1)
            size //= stage.patch_size
        else:
            size = (size - 1) // stage.stride + 1
        stages.append(stage)
    return tuple(stages)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _digits_space() -> SupernetSpace:
    """8x8x1 digits: stem 8x8, one MBConv stage down to 4x4, one transformer stage on 16 tokens.

    Largest subnet 87 k parameters, smallest 6 k.
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

    Largest subnet 0.94 M parameters (fits 1 MB flash as int8), smallest 0.14 M.
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
