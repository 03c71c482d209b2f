"""QEMU's UART socket: the port is ours from bind to exit, and a QEMU that exits says why."""

from __future__ import annotations

import errno
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tinyformer.compiler.firmware import Firmware
from tinyformer.hil.errors import HilError
from tinyformer.hil.targets import qemu
from tinyformer.hil.targets.qemu import QemuTarget

pytestmark = pytest.mark.qemu_only("the QEMU target's own start-up")


def test_the_port_is_bound_before_qemu_starts(monkeypatch, demo_firmware: Firmware) -> None:
    """Another process cannot take the port between its choice and QEMU's start (a race
    that once connected us to another emulator's server): at launch it is already bound
    and listening, and the session runs on it."""
    real_popen = subprocess.Popen
    seen: list[int] = []

    def popen(cmd: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
        fd = int(re.search(r"fd=(\d+)", " ".join(cmd)).group(1))
        assert fd in kwargs["pass_fds"]
        with socket.socket(fileno=socket.dup(fd)) as inherited:
            port = inherited.getsockname()[1]
        with socket.socket() as interloper, pytest.raises(OSError) as taken:
            interloper.bind(("127.0.0.1", port))
        assert taken.value.errno == errno.EADDRINUSE
        seen.append(port)
        return real_popen(cmd, **kwargs)

    monkeypatch.setattr(qemu.subprocess, "Popen", popen)
    with QemuTarget().session(demo_firmware) as dut:
        assert dut.info().protocol_version > 0
    assert len(seen) == 1


@pytest.mark.parametrize("before", ["", "sleep 0.5"], ids=["at-once", "after-connect"])
def test_qemu_that_exits_is_reported_with_its_output(
    tmp_path: Path, demo_firmware: Firmware, before: str
) -> None:
    """A QEMU that dies at start, before or after we connect (a stand-in script: a real
    QEMU that fails this way is hard to make), is an error quoting it, not a BOOT timeout."""
    fake = tmp_path / "qemu-system-arm"
    fake.write_text(
        f"#!/bin/sh\n{before}\necho 'qemu-system-arm: could not load kernel' >&2\nexit 1\n"
    )
    fake.chmod(0o755)
    start = time.monotonic()
    with (
        pytest.raises(HilError, match="QEMU exited: qemu-system-arm: could not load kernel"),
        QemuTarget(qemu=str(fake)).session(demo_firmware),
    ):
        pass
    assert time.monotonic() - start < 8
