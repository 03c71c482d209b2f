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

    def command(self, elf: Path, server_fd: int) -> list[str]:
        """QEMU serving UART0 on the listening socket ``server_fd`` it inherits."""
        return [
            self.qemu, "-M", "mps2-an500", "-icount", "shift=0", "-semihosting",
            "-display", "none", "-monitor", "none", "-nodefaults",
            "-chardev", f"socket,id=uart0,fd={server_fd},server=on,wait=on,nodelay=on",
            "-serial", "chardev:uart0",
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
                elf = firmware.info
                client = DeviceClient(
                    link,
                    reply_timeout=self.reply_timeout,
                    run_timeout=self.run_timeout,
                    describe_pc=elf.describe_pc,
                )
                try:
                    client.handshake(self.boot_timeout, "QEMU's UART socket", elf.model_hash)
                except HilError:
                    # a link broken by QEMU's exit can fail before the exit is visible
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.wait(timeout=1.0)
                    if proc.poll() is None:
                        raise
                    raise HilError(f"QEMU exited: {emulator.describe_log(log)}") from None
                yield client
            finally:
                link.close()
                emulator.stop(proc)

    def _start(self, elf: Path, log: BinaryIO) -> tuple[subprocess.Popen[bytes], serial.SerialBase]:
        """Launch QEMU on a socket we bound and connect to it.

        QEMU inherits the listening socket, so the port is held from bind to exit and no
        other process can take it in between (choosing a free port and letting QEMU bind it
        left that window open). Our connection waits in the backlog until QEMU accepts it,
        which starts the guest.
        """
        with emulator.listening_socket() as server:
            proc = emulator.spawn(
                self.command(elf, server.fileno()),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=(server.fileno(),),
            )
            port = server.getsockname()[1]
        link = emulator.connect(proc, port, 10.0, 0.02)
        if link is None:
            what = "QEMU exited" if proc.poll() is not None else "QEMU accepted no connection"
            emulator.stop(proc)
            raise HilError(f"{what}: {emulator.describe_log(log)}")
        return proc, link
