"""Run firmware on a target and turn what comes back into one measurement."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field

from tinyformer.compiler.firmware import Firmware, build_id
from tinyformer.hil.errors import HilError
from tinyformer.hil.targets.base import Target
from tinyformer.results import now_iso


@dataclass(frozen=True)
class Measurement:
    model_id: str
    target: str
    source: str  # how counts were taken: qemu-icount-instructions, dwt-cycles, ...
    count_unit: str  # instructions or cycles
    total: int
    layer_counts: list[int]
    flash_bytes: int
    static_ram_bytes: int
    stack_bytes: int  # high-water mark of the stack during the run
    arena_bytes: int
    output: bytes = field(repr=False)
    clock_hz: int = 0  # the core clock the device reported (INFO)

    @property
    def peak_sram_bytes(self) -> int:
        return self.static_ram_bytes + self.stack_bytes

    @property
    def output_sha256(self) -> str:
        return hashlib.sha256(self.output).hexdigest()

    def summary(self) -> dict[str, object]:
        """The JSON view: `cycles` or `instructions` keyed by the unit actually measured."""
        out: dict[str, object] = {
            "model_id": self.model_id,
            "target": self.target,
            "source": self.source,
            self.count_unit: self.total,
            "peak_sram_bytes": self.peak_sram_bytes,
            "flash_bytes": self.flash_bytes,
            "stack_bytes": self.stack_bytes,
            "static_ram_bytes": self.static_ram_bytes,
            "arena_bytes": self.arena_bytes,
            "layer_counts": self.layer_counts,
            "output_sha256": self.output_sha256,
        }
        return out

    def rows(self, git_rev: str | None = None, time: str | None = None) -> list[dict]:
        """Rows for the results table (results.COLUMNS)."""
        common = {
            "model_id": self.model_id,
            "target": self.target,
            "git_rev": git_rev or build_id(),
            "time": time or now_iso(),
        }
        metrics = [
            ("latency", self.total, self.count_unit, self.source),
            ("peak_sram", self.peak_sram_bytes, "bytes", "elf+stack-paint"),
            ("flash", self.flash_bytes, "bytes", "elf"),
            ("stack", self.stack_bytes, "bytes", "stack-paint"),
            ("static_ram", self.static_ram_bytes, "bytes", "elf"),
            ("arena", self.arena_bytes, "bytes", "plan"),
        ]
        metrics += [
            (f"layer{i}_latency", c, self.count_unit, self.source)
            for i, c in enumerate(self.layer_counts)
        ]
        return [
            {**common, "metric": m, "value": v, "unit": u, "source": s} for m, v, u, s in metrics
        ]

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d.pop("output")
        return d


def measure(target: Target, firmware: Firmware, input_data: bytes) -> Measurement:
    """Start the firmware on the target, run one inference on ``input_data``."""
    sizes = firmware.info.sizes
    with target.session(firmware) as dev:
        info = dev.info()
        if len(input_data) != info.input_bytes:
            raise HilError(f"input has {len(input_data)} bytes, the model takes {info.input_bytes}")
        result = dev.run(input_data)
    if result.stack_used >= result.stack_bytes:
        raise HilError(
            f"stack overflow: the run used all {result.stack_bytes} bytes of stack; "
            "rebuild with a larger stack"
        )
    return Measurement(
        model_id=info.model_name,
        target=target.name,
        source=target.count_source,
        count_unit=result.count_unit,
        total=result.total,
        layer_counts=result.layer_counts,
        flash_bytes=sizes.flash_bytes,
        static_ram_bytes=sizes.static_ram_bytes,
        stack_bytes=result.stack_used,
        arena_bytes=info.arena_bytes,
        output=result.output,
        clock_hz=info.clock_hz,
    )
