"""QEMU target: mps2-an500 (Cortex-M7) with exact instruction counting.

QEMU runs with ``-icount shift=0`` (one instruction per virtual ns, so SysTick counts
instructions), ``-semihosting`` (the firmware exits QEMU after a fault) and its UART on a TCP
server socket (see ``emulator``). Inputs for many inferences can be loaded into the board's
16 MB PSRAM before boot (QEMU's generic loader), where LOAD copies them at memory speed.
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

from tinyformer.compiler.firmware import Firmware
from tinyformer.hil.client import DeviceClient
from tinyformer.hil.errors import HilError, LinkError, TargetTimeout, TargetUnavailable
from tinyformer.hil.lossy_link import LinkFaults, LossyProxy
from tinyformer.hil.targets import emulator
from tinyformer.hil.targets.base import Target

Preload = tuple[Path, int]  # a file and the guest address it is loaded at


class QemuTarget(Target):
    name = "qemu"
    board = "mps2-an500"
    count_source = "qemu-icount-instructions"
    counts_per_second = 20e6  # QEMU's TCG with -icount shift=0 on a busy CI core

    def __init__(
        self,
        qemu: str = "qemu-system-arm",
        boot_timeout: float = 10.0,
        run_timeout: float | None = None,
        reply_timeout: float = 2.0,
        link_faults: LinkFaults | None = None,
    ) -> None:
        self.qemu = qemu
        self.boot_timeout = boot_timeout
        self.run_timeout = run_timeout
        self.reply_timeout = reply_timeout
        # Damage the UART bytes on purpose (link bench, fault tests): the session's proxy,
        # with its byte counts, is `proxy` while the session lasts.
        self.link_faults = link_faults
        self.proxy: LossyProxy | None = None

    def command(self, elf: Path, server_fd: int) -> list[str]:
        """QEMU serving UART0 on the listening socket ``server_fd`` it inherits."""
        return [
            self.qemu, "-M", "mps2-an500", "-icount", "shift=0", "-semihosting",
            "-display", "none", "-monitor", "none", "-nodefaults",
            "-chardev", f"socket,id=uart0,fd={server_fd},server=on,wait=on,nodelay=on",
            "-serial", "chardev:uart0",
            "-kernel", str(elf),
        ]  # fmt: skip

    def check(self) -> None:
        if shutil.which(self.qemu) is None:
            raise TargetUnavailable(f"{self.qemu} is not installed: run `make setup`")

    @staticmethod
    def loader(preload: Preload) -> list[str]:
        """QEMU options that place a file at a guest address before boot (and on reset)."""
        file, address = preload
        return ["-device", f"loader,file={file},addr=0x{address:x},force-raw=on"]

    def preload_bytes(self, firmware: Firmware) -> int:
        return firmware.info.preload_region[1]

    @contextlib.contextmanager
    def preloaded_session(self, firmware: Firmware, data: bytes) -> Iterator[DeviceClient]:
        address, size = firmware.info.preload_region
        if len(data) > size:
            raise HilError(
                f"{len(data):,} bytes of inputs do not fit the firmware's preload region "
                f"({size:,} bytes)"
            )
        with tempfile.NamedTemporaryFile(prefix="tinyformer-preload-") as f:
            f.write(data)
            f.flush()
            with self._session(firmware, (Path(f.name), address)) as client:
                yield client

    @contextlib.contextmanager
    def session(self, firmware: Firmware) -> Iterator[DeviceClient]:
        with self._session(firmware, None) as client:
            yield client

    @contextlib.contextmanager
    def _session(self, firmware: Firmware, preload: Preload | None) -> Iterator[DeviceClient]:
        if firmware.board != self.board:
            raise HilError(f"QEMU runs {self.board} builds, this firmware is for {firmware.board}")
        self.check()
        with tempfile.TemporaryFile() as log:
            proc, link = self._start(firmware.elf, log, preload)
            try:
                try:
                    client = self.connect(link, firmware, "QEMU's UART socket")
                except HilError:
                    self._raise_if_exited(proc, log)
                    raise
                try:
                    yield client
                except (LinkError, TargetTimeout):
                    # A lockup or a semihosting exit ends QEMU: its own words say why, the
                    # broken socket does not.
                    self._raise_if_exited(proc, log)
                    raise
            finally:
                link.close()
                if self.proxy is not None:
                    self.proxy.close()
                emulator.stop(proc)

    @staticmethod
    def _raise_if_exited(proc: subprocess.Popen[bytes], log: BinaryIO) -> None:
        # a link broken by QEMU's exit can fail before the exit is visible
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=1.0)
        if proc.poll() is not None:
            raise HilError(f"QEMU exited: {emulator.describe_exit(log)}") from None

    def _start(
        self, elf: Path, log: BinaryIO, preload: Preload | None
    ) -> tuple[subprocess.Popen[bytes], serial.SerialBase]:
        """Launch QEMU on a socket we bound and connect to it.

        QEMU inherits the listening socket, so the port is held from bind to exit and no
        other process can take it in between (choosing a free port and letting QEMU bind it
        left that window open). Our connection waits in the backlog until QEMU accepts it,
        which starts the guest.
        """
        with emulator.listening_socket() as server:
            proc = emulator.spawn(
                self.command(elf, server.fileno()) + (self.loader(preload) if preload else []),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=(server.fileno(),),
            )
            port = server.getsockname()[1]
        if self.link_faults is not None:
            self.proxy = LossyProxy(port, self.link_faults)
            port = self.proxy.port
        link = emulator.connect(proc, port, 10.0, 0.02)
        if link is None:
            what = "QEMU exited" if proc.poll() is not None else "QEMU accepted no connection"
            if self.proxy is not None:
                self.proxy.close()
            emulator.stop(proc)
            raise HilError(f"{what}: {emulator.describe_log(log)}")
        return proc, link
