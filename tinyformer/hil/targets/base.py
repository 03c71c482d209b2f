"""The one interface every target (emulator or board) offers the harness."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager

from tinyformer.compiler.firmware import Firmware
from tinyformer.hil.client import DeviceClient, SerialPort
from tinyformer.hil.errors import HilError


class Target(ABC):
    name: str
    board: str  # which firmware board build it runs
    count_source: str  # the measurement 'source' column: how counts were taken
    # Pessimistic counts per second (emulators slow down on a loaded machine), and the
    # shortest run timeout: together they scale the run timeout to the model.
    counts_per_second: float
    min_run_timeout: float = 60.0
    run_timeout: float | None = None  # seconds; None: scaled from the firmware's expected count
    reply_timeout: float = 2.0
    boot_timeout: float = 10.0

    def run_timeout_for(self, firmware: Firmware) -> float:
        """The given run timeout, or 10x the firmware's expected time (at least the minimum),
        so a slow model is not called hung and a hung one is not waited on for ever."""
        if self.run_timeout is not None:
            return self.run_timeout
        if firmware.expected_count is None:
            return self.min_run_timeout
        return max(self.min_run_timeout, 10 * firmware.expected_count / self.counts_per_second)

    @abstractmethod
    def check(self) -> None:
        """Raise TargetUnavailable when this target cannot be used here, without starting
        anything (an emulator: its program; a board: its port and probe)."""

    @abstractmethod
    def session(self, firmware: Firmware) -> AbstractContextManager[DeviceClient]:
        """Start ``firmware`` and yield a client connected to it; stop it on exit."""

    def preload_bytes(self, firmware: Firmware) -> int:
        """How many bytes of inputs this target can place in the firmware's preload region
        before boot, for LOAD (tf_protocol.h); 0: inputs go over the serial link."""
        return 0

    def preloaded_session(
        self, firmware: Firmware, data: bytes
    ) -> AbstractContextManager[DeviceClient]:
        """``session`` with ``data`` in the firmware's preload region (preload_bytes)."""
        raise HilError(f"the {self.name} target cannot preload inputs: send them with INPUT")

    def connect(self, link: SerialPort, firmware: Firmware, where: str) -> DeviceClient:
        """A client for ``firmware`` on ``link`` (this target's timeouts, the ELF's symbols for
        fault reports), once the device has booted and proved it runs that firmware."""
        elf = firmware.info
        client = DeviceClient(
            link,
            reply_timeout=self.reply_timeout,
            run_timeout=self.run_timeout_for(firmware),
            describe_pc=elf.describe_pc,
            stack=elf.stack_layout,
        )
        client.handshake(self.boot_timeout, where, elf.model_hash)
        return client

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


SessionIterator = Iterator[DeviceClient]
