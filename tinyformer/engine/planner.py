"""Static memory planner: every activation tensor gets an offset in one arena.

Lifetimes come from the execution order: a tensor lives from the step that produces it to
the last step that reads it (graph inputs from step 0, outputs to the end). Ops that may
write their output over an input (elementwise ops, reshapes) share that input's buffer when
the input dies there. Buffers are then placed greedily, largest first, at the lowest offset
that overlaps no buffer alive at the same time (the TFLite Micro greedy strategy).

The lower bound is the largest total size of buffers alive at one step: no plan can use
less, so ``arena / lower_bound`` says how close the plan is to optimal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

ALIGN = 8  # LDRD needs word alignment; 8 keeps int64 scratch safe too


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


@dataclass(frozen=True)
class Step:
    """One op in execution order, as the planner sees it."""

    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    scratch_bytes: int = 0
    inplace: int | None = None  # index of the input the (single) output may overwrite


@dataclass
class Buffer:
    tensors: list[str]
    size: int
    first: int
    last: int
    offset: int = -1


@dataclass
class MemoryPlan:
    offsets: dict[str, int]  # tensor (or "<step>:scratch") -> arena offset
    sizes: dict[str, int]
    arena_bytes: int
    lower_bound: int
    buffers: list[Buffer] = field(repr=False)
    steps: list[Step] = field(repr=False)

    @property
    def ratio(self) -> float:
        return self.arena_bytes / self.lower_bound if self.lower_bound else 1.0

    def live_bytes(self, step: int) -> int:
        """Arena bytes in use during ``step``; the lower bound is the largest of these."""
        return _live_bytes(self.buffers, step)

    def report(self) -> dict[str, float]:
        return {
            "arena_bytes": self.arena_bytes,
            "lower_bound_bytes": self.lower_bound,
            "ratio": round(self.ratio, 4),
        }

    def plot(self, path: Path, title: str = "memory plan") -> Path:
        """Draw buffers as rectangles: steps across, arena offsets up."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(max(6, len(self.steps) * 0.35), 4.5))
        cmap = plt.get_cmap("tab20")
        for i, b in enumerate(self.buffers):
            ax.broken_barh(
                [(b.first - 0.45, b.last - b.first + 0.9)],
                (b.offset, b.size),
                facecolors=cmap(i % 20),
                edgecolor="black",
                linewidth=0.4,
            )
            if b.size > self.arena_bytes * 0.04:
                ax.text(b.first, b.offset + b.size / 2, b.tensors[0], fontsize=6, va="center")
        ax.axhline(self.lower_bound, color="red", linestyle="--", linewidth=1, label="lower bound")
        ax.set_xlabel("step")
        ax.set_ylabel("arena offset (bytes)")
        ax.set_title(f"{title}: arena {self.arena_bytes} B, {self.ratio:.3f}x lower bound")
        ax.set_xticks(range(len(self.steps)))
        ax.set_xticklabels([s.name for s in self.steps], rotation=90, fontsize=6)
        ax.legend(loc="upper right", fontsize=7)
        fig.tight_layout()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=130)
        plt.close(fig)
        return path


def _live_bytes(buffers: list[Buffer], step: int) -> int:
    """Bytes of the buffers alive at ``step``: its inputs, outputs and scratch, and every
    tensor made earlier that a later step still reads."""
    return sum(b.size for b in buffers if b.first <= step <= b.last)


def _buffers(
    steps: list[Step], sizes: dict[str, int], inputs: list[str], outputs: list[str]
) -> list[Buffer]:
    first: dict[str, int] = {t: 0 for t in inputs}
    last: dict[str, int] = {t: 0 for t in inputs}
    for i, step in enumerate(steps):
        for t in step.inputs:
            if t not in first:
                raise ValueError(f"step {step.name} reads {t!r} before anything produces it")
            last[t] = i
        for t in step.outputs:
            first[t] = i
            last[t] = max(last.get(t, i), i)
    end = max(len(steps) - 1, 0)
    for t in outputs:
        last[t] = end

    owner: dict[str, Buffer] = {}
    buffers: list[Buffer] = []
    for i, step in enumerate(steps):
        for t in step.outputs:
            if t in owner:
                continue
            shared = None
            if step.inplace is not None and len(step.outputs) == 1:
                src = step.inputs[step.inplace]
                b = owner.get(src)
                if b and last[src] == i and src not in outputs and sizes[src] >= sizes[t]:
                    shared = b
            if shared is not None:
                shared.tensors.append(t)
                shared.last = max(shared.last, last[t])
                owner[t] = shared
            else:
                owner[t] = Buffer([t], _align(sizes[t]), first[t], last[t])
                buffers.append(owner[t])
        if step.scratch_bytes:
            buffers.append(Buffer([f"{step.name}:scratch"], _align(step.scratch_bytes), i, i))
    for t in inputs:
        if t not in owner:
            owner[t] = Buffer([t], _align(sizes[t]), 0, last[t])
            buffers.append(owner[t])
    return buffers


def plan_memory(
    steps: list[Step], sizes: dict[str, int], inputs: list[str], outputs: list[str]
) -> MemoryPlan:
    """Place every activation tensor and scratch buffer of ``steps`` in one arena."""
    buffers = _buffers(steps, sizes, inputs, outputs)
    placed: list[Buffer] = []
    for b in sorted(buffers, key=lambda b: (-b.size, b.first)):
        live = sorted(
            (p for p in placed if p.first <= b.last and b.first <= p.last),
            key=lambda p: p.offset,
        )
        offset = 0
        for p in live:
            if offset + b.size <= p.offset:
                break
            offset = max(offset, p.offset + p.size)
        b.offset = offset
        placed.append(b)
    n = max(len(steps), 1)
    lower = max(_live_bytes(buffers, i) for i in range(n))
    offsets, out_sizes = {}, {}
    for b in buffers:
        for t in b.tensors:
            offsets[t] = b.offset
            out_sizes[t] = sizes.get(t, b.size)
    arena = max((b.offset + b.size for b in buffers), default=0)
    return MemoryPlan(offsets, out_sizes, arena, lower, buffers, steps)
