"""What the emulator targets (QEMU, Renode) share: a process in its own group serving the
firmware's UART on a local TCP port, reached with pyserial's ``socket://``."""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any, BinaryIO

import serial

from tinyformer.hil.errors import HilError

PR_SET_PDEATHSIG = 1
# looked up here, not in the forked child, where only the call itself should run
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None


def spawn(cmd: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """Start an emulator in its own session, and (on Linux) have it die with this process.

    Its own session: the terminal's Ctrl-C reaches only us, and ``stop`` ends the emulator.
    A driver killed outright (SIGKILL, the OOM killer) runs no ``stop``, and the orphaned
    emulator would keep spinning a core forever; PR_SET_PDEATHSIG has the kernel SIGKILL it
    when its parent goes. The kernel means the parent *thread*: the signal comes when the
    thread that started the emulator ends. That is right for a session, whose ``with`` block
    starts and stops its emulator in one thread (TinyFormer's sessions run on the main
    thread; one opened in a worker thread lives no longer than that thread either).
    """
    parent, prctl = os.getpid(), _prctl

    def die_with_parent() -> None:
        if prctl is None:  # not Linux: no such signal
            return
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before prctl: no signal will come
            os.kill(os.getpid(), signal.SIGKILL)

    return subprocess.Popen(cmd, start_new_session=True, preexec_fn=die_with_parent, **kwargs)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening_socket() -> socket.socket:
    """A socket listening on a free local port, for an emulator that can inherit it."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    return server


def log_tail(log: BinaryIO) -> bytes:
    """The last 2000 bytes of what the emulator printed."""
    log.seek(0)
    return log.read().strip()[-2000:]


def describe_log(log: BinaryIO) -> str:
    return log_tail(log).decode(errors="replace") or "no output"


def describe_exit(log: BinaryIO) -> str:
    """Why the emulator stopped, in its own words: QEMU's fatal line and the guest's PC are
    kept from a register dump of dozens of lines."""
    text = describe_log(log)
    fatal = [line for line in text.splitlines() if "fatal" in line.lower()]
    if not fatal:
        return text
    pc = re.search(r"R15=([0-9a-f]{8})", text)
    return " ".join(fatal) + (f" (PC=0x{pc.group(1)})" if pc else "")


def connect(
    proc: subprocess.Popen[bytes], port: int, timeout: float, poll: float
) -> serial.SerialBase | None:
    """Connect to the emulator's UART server; None when the emulator exits or never listens.

    TCP_NODELAY: without it every small reply waits ~40 ms for Nagle.
    """
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            link = serial.serial_for_url(f"socket://127.0.0.1:{port}", timeout=0.05)
        except (serial.SerialException, OSError):
            time.sleep(poll)
            continue
        link._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return link
    return None


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL, to the emulator's whole process group."""
    if proc.stdin is not None:
        with contextlib.suppress(OSError):
            proc.stdin.close()
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=3)


def start_on_free_port(
    launch: Callable[[int], subprocess.Popen[bytes]],
    attach: Callable[[subprocess.Popen[bytes], int], serial.SerialBase | None],
    log: BinaryIO,
    what: str,
    tries: int = 5,
) -> tuple[subprocess.Popen[bytes], serial.SerialBase, int]:
    """Launch the emulator on a free port and attach to its UART.

    The port may be taken between choosing it and the emulator binding it: the emulator
    then exits saying so, and another port is tried. Any other failure is reported with the
    emulator's own output.
    """
    for _ in range(tries):
        port = free_port()
        proc = launch(port)
        link = attach(proc, port)
        if link is not None:
            return proc, link, port
        stop(proc)
        if b"in use" not in log_tail(log):
            break
    raise HilError(f"{what}: {describe_log(log)}")
