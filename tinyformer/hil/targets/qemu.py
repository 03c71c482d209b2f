"""QEMU target: mps2-an500 (Cortex-M7) with exact instruction counting.

QEMU runs with ``-icount shift=0`` (one instruction per virtual ns, so SysTick counts
instructions), ``-semihosting`` (the firmware exits QEMU after a fault) and its UART on a TCP
server socket (see ``emulator``).
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import serial

from tinyformer.hil.client import DeviceClient
from tinyformer.hil.errors import HilError, TargetUnavailable
from tinyformer.hil.firmware import Firmware
from tinyformer.hil.targets import emulator
from tinyformer.hil.targets.base import Target


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
                client.handshake(self.boot_timeout, "QEMU's UART socket")
                yield client
            finally:
                link.close()
                emulator.stop(proc)

    def _start(self, elf: Path, log: BinaryIO) -> tuple[subprocess.Popen[bytes], serial.SerialBase]:
        def launch(port: int) -> subprocess.Popen[bytes]:
            return subprocess.Popen(
                self.command(elf, port),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

        # QEMU starts the guest on the first connection to its serial server
        proc, link, _ = emulator.start_on_free_port(
            launch, lambda proc, port: emulator.connect(proc, port, 10.0, 0.02), log,
            "QEMU did not start",
        )  # fmt: skip
        return proc, link
