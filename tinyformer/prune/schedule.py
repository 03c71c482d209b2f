"""Gradual pruning (Zhu & Gupta 2017, "To prune, or not to prune"): the cubic schedule.

Sparsity grows from 0 at step ``start`` to the target at step ``end``:

    s(t) = s_final * (1 - (1 - (t - start) / (end - start))^3)     start <= t <= end

(0 before ``start``, ``s_final`` after ``end``): fast at first, while the network has many
redundant weights, slowly near the end. The masks are recomputed every ``every`` steps from
the current weights' block magnitudes and the network fine-tunes in between; after ``end``
training continues at the final sparsity (fine-tuning).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from tinyformer.prune.masks import prune
from tinyformer.prune.plan import SparsityPlan


def cubic_fraction(step: int, start: int, end: int) -> float:
    """Fraction of the final sparsity reached at ``step`` (0 .. 1)."""
    if step <= start:
        return 0.0 if end > start else 1.0
    if step >= end:
        return 1.0
    progress = (step - start) / (end - start)
    return 1.0 - (1.0 - progress) ** 3


def cubic_sparsity(step: int, start: int, end: int, final: float, initial: float = 0.0) -> float:
    """Zhu & Gupta's s(t): ``initial`` at ``start``, ``final`` from ``end`` on."""
    return initial + (final - initial) * cubic_fraction(step, start, end)


@dataclass(frozen=True)
class GradualSchedule:
    """Prune between steps ``start`` and ``end``, updating the masks every ``every`` steps."""

    start: int
    end: int
    every: int = 1

    def __post_init__(self) -> None:
        if self.start < 0 or self.end < self.start or self.every < 1:
            raise ValueError(f"bad pruning schedule {self}")

    def due(self, step: int) -> bool:
        """Whether the masks are updated at ``step`` (always at ``end``)."""
        if step < self.start or step > self.end:
            return False
        return step == self.end or (step - self.start) % self.every == 0

    def fraction(self, step: int) -> float:
        return cubic_fraction(step, self.start, self.end)


class GradualPruner:
    """Call :meth:`step` once per training step (before the forward pass)."""

    def __init__(self, model: nn.Module, plan: SparsityPlan, schedule: GradualSchedule) -> None:
        plan.check(model)
        self.model = model
        self.plan = plan
        self.schedule = schedule
        self.fraction = 0.0

    def step(self, step: int) -> bool:
        """Update the masks if due at ``step``; returns whether it did."""
        if not self.schedule.due(step):
            return False
        fraction = self.schedule.fraction(step)
        if fraction <= 0.0 and self.fraction <= 0.0:
            return False
        self.fraction = fraction
        prune(self.model, self.plan, fraction)
        return True

    def finish(self) -> None:
        """Jump to the final sparsity (if the schedule was cut short)."""
        self.fraction = 1.0
        prune(self.model, self.plan, 1.0)
