"""Worst-case stack depth of a firmware build, from GCC's call-graph files.

The firmware is compiled with ``-fcallgraph-info=su``: every object gets a ``.ci`` file (VCG
text) listing its functions with their static frame sizes and the calls they make. The
deepest stack during a RUN is the chain main -> tf_run_model -> tf_model_run -> kernel ->
helpers, plus one interrupt (the board's counter tick) on top of it:

    predicted = max over call paths from main through tf_run_model of the frames' sum
              + EXCEPTION_FRAME + worst(SysTick_Handler)

Calls to functions without a ``.ci`` (newlib's memset/memmove: leaves with no frame worth
counting) add nothing. Recursion would make the bound infinite; the firmware has none, and a
cycle raises ValueError rather than returning a wrong number.

The same files bound single frames, which :func:`check_stack_guard` holds against the MPU
guard below the stack (firmware/common/sections.ld): a function moves SP down by its whole
frame at once and may first write at the new bottom, so a frame bigger than the guard could
step over it without touching it.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from tinyformer.compiler.errors import FirmwareBuildError

if TYPE_CHECKING:
    from tinyformer.compiler.elfinfo import StackLayout

# Exception entry with lazy FP state preservation: 8 core words + 18 FP words (S0-S15,
# FPSCR, reserved), and up to one word of alignment padding.
EXCEPTION_FRAME = 108
ROOT, RUN, TICK = "main", "tf_run_model", "SysTick_Handler"
FAULT_REPORT = "tf_fault_report"  # runs on the fault handler's own stack (tf_fault.c)

_NODE = re.compile(r'node: \{ title: "([^"]+)" label: "([^"]*)"')
_FRAME = re.compile(r"(\d+) bytes \(([^)]*)\)")
_EDGE = re.compile(r'edge: \{ sourcename: "([^"]+)" targetname: "([^"]+)"')


class CallGraph:
    def __init__(
        self,
        frames: dict[str, int],
        calls: dict[str, set[str]],
        unbounded: set[str] | None = None,
    ) -> None:
        self.frames = frames
        self.calls = calls
        # frames GCC could not bound (a variable-length array, alloca): "N bytes (dynamic)"
        self.unbounded = unbounded or set()

    @classmethod
    def from_build(cls, build_dir: Path) -> CallGraph:
        frames: dict[str, int] = {}
        calls: dict[str, set[str]] = {}
        unbounded: set[str] = set()
        files = sorted(Path(build_dir).glob("obj/*.ci"))
        if not files:
            raise FileNotFoundError(f"no call-graph files (*.ci) under {build_dir}/obj")
        for path in files:
            text = path.read_text()
            for name, label in _NODE.findall(text):
                if size := _FRAME.search(label):
                    frames[name] = int(size.group(1))
                    if size.group(2) == "dynamic":  # "dynamic,bounded" gives the bound
                        unbounded.add(name)
            for src, dst in _EDGE.findall(text):
                calls.setdefault(src, set()).add(dst)
        return cls(frames, calls, unbounded)

    def worst(self, fn: str) -> int:
        """Deepest stack from entering ``fn`` (its frame included) down its call tree."""

        @cache
        def depth(name: str, path: frozenset[str]) -> int:
            if name in path:
                raise ValueError(f"recursive call through {name}: no static stack bound")
            below = [depth(c, path | {name}) for c in self.calls.get(name, ())]
            return self.frames.get(name, 0) + max(below, default=0)

        return depth(fn, frozenset())

    def deepest_path_to(self, root: str, target: str) -> int:
        """Largest sum of frames on a call path from ``root`` down to ``target`` (excluded)."""

        @cache
        def reach(name: str) -> int | None:
            if name == target:
                return 0
            found = (reach(c) for c in self.calls.get(name, ()) if c != name)
            best = [r for r in found if r is not None]
            return self.frames.get(name, 0) + max(best) if best else None

        found = reach(root)
        if found is None:
            raise ValueError(f"{root} never calls {target}")
        return found

    def run_stack_bytes(self) -> int:
        """Predicted stack high-water mark of a RUN request (module docstring)."""
        return (
            self.deepest_path_to(ROOT, RUN) + self.worst(RUN) + EXCEPTION_FRAME + self.worst(TICK)
        )


def predicted_stack_bytes(build_dir: Path) -> int:
    return CallGraph.from_build(build_dir).run_stack_bytes()


def check_stack_guard(build_dir: Path, stack: StackLayout | None) -> None:
    """Refuse a build whose stack overflow could go unseen or unreported.

    Every frame must fit in the MPU guard below the stack (else one function could jump
    over it), frames must have a static bound, and the fault reporter's deepest chain must
    fit in the fault handler's stack. A firmware without a guard (``stack`` None) is not
    checked.
    """
    if stack is None:
        return
    graph = CallGraph.from_build(build_dir)
    if graph.unbounded:
        names = ", ".join(sorted(_display(n) for n in graph.unbounded))
        raise FirmwareBuildError(
            f"stack frames without a static size ({names}): a variable-length array or alloca "
            f"can jump over the {stack.guard_bytes:,} B stack guard; give them a fixed size"
        )
    name, largest = max(graph.frames.items(), key=lambda item: item[1], default=("", 0))
    if largest > stack.guard_bytes:
        raise FirmwareBuildError(
            f"the stack frame of {_display(name)} is {largest:,} B, bigger than the "
            f"{stack.guard_bytes:,} B MPU guard below the stack: an overflow in it could jump "
            "over the guard unseen. Make the frame smaller (large locals to static storage) or "
            "raise TF_STACK_GUARD_SIZE in firmware/common/sections.ld"
        )
    report = graph.worst(FAULT_REPORT) if FAULT_REPORT in graph.frames else 0
    if report > stack.fault_stack_bytes:
        raise FirmwareBuildError(
            f"the fault reporter needs {report:,} B of stack, its stack (tf_fault_stack in "
            f"firmware/common/tf_fault.c) has {stack.fault_stack_bytes:,} B: make it bigger"
        )


def _display(node: str) -> str:
    """A call-graph node as people know it: 'file.c:static_fn' loses its directory."""
    return node.rsplit("/", 1)[-1]
