"""QEMU target: mps2-an500 (Cortex-M7) with exact instruction counting.

QEMU runs with ``-icount shift=0`` (one instruction per virtual ns, so SysTick counts
instructions), ``-semihosting`` (the firmware exits QEMU after a fault) and its UART on a TCP
server socket with TCP_NODELAY (without it every reply waits ~40 ms for Nagle).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import serial

from tinyformer.hil.client import DeviceClient
from tinyformer.hil.errors import HilError, TargetUnavailable
from tinyformer.hil.firmware import Firmware
from tinyformer.hil.targets.base import Target


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class QemuTarget(Target):
    name = "qemu"
    board = "mps2-an500"
    count_source = "qemu-icount-instructions"

    def __init__(
        self,
        qemu: str = "qemu-system-arm",
        boot_timeout: float = 10.0,
        run_timeout: float = 60.0,
        reply_timeout: float = 2.0,
    ) -> None:
        self.qemu = qemu
        self.boot_timeout = boot_timeout
        self.run_timeout = run_timeout
        self.reply_timeout = reply_timeout

    def command(self, elf: Path, port: int) -> list[str]:
        return [
            self.qemu, "-M", "mps2-an500", "-icount", "shift=0", "-semihosting",
            "-display", "none", "-monitor", "none", "-nodefaults",
            "-serial", f"tcp:127.0.0.1:{port},server=on,wait=on,nodelay=on",
            "-kernel", str(elf),
        ]  # fmt: skip

    @contextlib.contextmanager
    def session(self, firmware: Firmware) -> Iterator[DeviceClient]:
        if firmware.board != self.board:
            raise HilError(f"QEMU runs {self.board} builds, this firmware is for {firmware.board}")
        if shutil.which(self.qemu) is None:
            raise TargetUnavailable(f"{self.qemu} is not installed: run `make setup`")
        with tempfile.TemporaryFile() as log:
            proc, link = self._start(firmware.elf, log)
            try:
                client = DeviceClient(
                    link,
                    reply_timeout=self.reply_timeout,
                    run_timeout=self.run_timeout,
                    describe_pc=firmware.info.describe_pc,
                )
                client.wait_boot(self.boot_timeout)
                yield client
            finally:
                link.close()
                self._stop(proc)

    def _start(self, elf: Path, log: BinaryIO) -> tuple[subprocess.Popen[bytes], serial.Serial]:
        # The chosen port may be taken before QEMU binds it: then QEMU exits, try another.
        for _ in range(5):
            port = _free_port()
            proc = subprocess.Popen(
                self.command(elf, port),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            link = self._connect(proc, port)
            if link is not None:
                return proc, link
            self._stop(proc)
            if b"in use" not in self._log_bytes(log):
                break
        raise HilError(f"QEMU did not start: {self._log_bytes(log).decode(errors='replace')}")

    @staticmethod
    def _connect(proc: subprocess.Popen[bytes], port: int) -> serial.Serial | None:
        """Connect to QEMU's serial server (QEMU starts the guest on this first connection)."""
        deadline = time.monotonic() + 10.0
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                link = serial.serial_for_url(f"socket://127.0.0.1:{port}", timeout=0.05)
            except (serial.SerialException, OSError):
                time.sleep(0.02)
                continue
            link._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return link
        return None

    @staticmethod
    def _stop(proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=3)

    @staticmethod
    def _log_bytes(log: BinaryIO) -> bytes:
        log.seek(0)
        return log.read().strip()[-2000:]
