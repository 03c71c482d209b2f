"""Programs that the kill tests (test_resume.py) run in a process of their own and SIGKILL:

    python hil/driver.py search TARGET OUT RESULTS [--resume]   a small SparseNAS run
    python hil/driver.py session TARGET ELF BOARD [--thread]    an emulator session, held
    python hil/driver.py build MODEL_DIR BUILD_DIR              one firmware build

The search is test_search.py's: real candidates, compiles and measurements, with a cheap
stand-in fitness (a deterministic function of the candidate).
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import ray

from tinyformer.compiler.firmware import DEFAULT_STACK, Firmware, build
from tinyformer.hil.targets.registry import make_target
from tinyformer.model import SupernetSpace
from tinyformer.nas.genome import Candidate
from tinyformer.nas.search import SearchSettings, SparseNAS

GENERATIONS = 2  # the kill tests' search: the second generation has a latency model


def fitness(c: Candidate) -> float:
    return round(0.5 + 0.4 * (1 - c.weight_sparsity()) * c.config.stem_width / 16, 4)


class CountedFitness:
    """``fitness``, writing each candidate it scores to ``log`` (it runs in Ray workers)."""

    def __init__(self, log: Path) -> None:
        self.log = log

    def __call__(self, c: Candidate) -> float:
        with open(self.log, "a") as out:
            out.write(f"{c.key} {ray.get_runtime_context().get_node_id()}\n")
        return fitness(c)

    def _lines(self) -> list[list[str]]:
        return [line.split() for line in self.log.read_text().splitlines()]

    def calls(self) -> list[str]:
        """The candidates scored, in order."""
        return [key for key, _ in self._lines()] if self.log.exists() else []

    def nodes(self) -> set[str]:
        """The Ray nodes that scored them."""
        return {node for _, node in self._lines()}


# Ray workers do not have hil/ on their path: this module's functions travel by value.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


def settings(generations: int) -> SearchSettings:
    space = SupernetSpace.for_dataset("digits")
    return SearchSettings(space=space.to_dict(), population=4, generations=generations, top_k=4)


def hold_session(target: str, elf: Path, board: str) -> None:
    with make_target(target).session(Firmware(elf, board, DEFAULT_STACK)) as dut:
        dut.info()
        print("ready", flush=True)
        time.sleep(600)


def main(argv: list[str]) -> None:
    what, *args = argv
    if what == "search":
        target, out, results, *resume = args
        nas = SparseNAS(
            settings(GENERATIONS), fitness, make_target(target), Path(out), Path(results)
        )
        nas.run(resume=resume == ["--resume"])
    elif what == "session":
        target, elf, board, *thread = args
        if thread == ["--thread"]:  # the emulator's parent is a worker thread
            worker = threading.Thread(target=hold_session, args=(target, Path(elf), board))
            worker.start()
            worker.join()
        else:
            hold_session(target, Path(elf), board)
    elif what == "build":
        build(Path(args[0]), Path(args[1]))
    else:
        raise SystemExit(f"unknown program {what!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
