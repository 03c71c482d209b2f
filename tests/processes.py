"""Kill tests' process helpers, for tests/ and hil/ (whose conftest puts tests/ on sys.path):
wait for a child that must succeed, or SIGKILL its whole group at a chosen moment."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

Moment = Callable[[], bool]


def finish(proc: subprocess.Popen[bytes], log: Path) -> None:
    """``proc`` ends with status 0 within 300 s; else the tail of its log."""
    assert proc.wait(timeout=300) == 0, log.read_text()[-3000:]


def kill_when(
    proc: subprocess.Popen[bytes], moment: Moment, log: Path, seconds: float = 120
) -> None:
    """SIGKILL ``proc``'s process group (started with start_new_session) as soon as
    ``moment()`` holds; fails if ``proc`` ends first or the moment takes over ``seconds``."""
    deadline = time.monotonic() + seconds
    try:
        while not moment():
            assert proc.poll() is None, "ended before the moment:\n" + log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the moment never came"
            time.sleep(0.005)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
