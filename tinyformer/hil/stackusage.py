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
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

# Exception entry with lazy FP state preservation: 8 core words + 18 FP words (S0-S15,
# FPSCR, reserved), and up to one word of alignment padding.
EXCEPTION_FRAME = 108
ROOT, RUN, TICK = "main", "tf_run_model", "SysTick_Handler"

_NODE = re.compile(r'node: \{ title: "([^"]+)" label: "([^"]*)"')
_FRAME = re.compile(r"(\d+) bytes")
_EDGE = re.compile(r'edge: \{ sourcename: "([^"]+)" targetname: "([^"]+)"')


class CallGraph:
    def __init__(self, frames: dict[str, int], calls: dict[str, set[str]]) -> None:
        self.frames = frames
        self.calls = calls

    @classmethod
    def from_build(cls, build_dir: Path) -> CallGraph:
        frames: dict[str, int] = {}
        calls: dict[str, set[str]] = {}
        files = sorted(Path(build_dir).glob("obj/*.ci"))
        if not files:
            raise FileNotFoundError(f"no call-graph files (*.ci) under {build_dir}/obj")
        for path in files:
            text = path.read_text()
            for name, label in _NODE.findall(text):
                if size := _FRAME.search(label):
                    frames[name] = int(size.group(1))
            for src, dst in _EDGE.findall(text):
                calls.setdefault(src, set()).add(dst)
        return cls(frames, calls)

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
