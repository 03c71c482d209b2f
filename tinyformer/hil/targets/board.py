"""Board target: an STM32F746 (Nucleo-F746ZG) flashed with pyOCD, spoken to over USB serial.

Order of a session: open the serial port first (a missing port fails before the probe is
touched, and the port is already listening when the firmware starts), connect pyOCD, flash the
ELF, drop whatever the old firmware sent, reset and run, then wait for the BOOT frame.

pyOCD has no built-in stm32f746 target; ``stm32f767zi`` (same core, same flash sectors at
0x0800_0000, larger flash) programs it, or give the ST CMSIS pack (``pack``) and
``pyocd_target="stm32f746zgtx"``. pyOCD is imported inside the methods: it takes seconds.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import serial

from tinyformer.compiler.firmware import Firmware
from tinyformer.hil.client import DeviceClient
from tinyformer.hil.errors import HilError, TargetUnavailable
from tinyformer.hil.targets.base import Target


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


class BoardTarget(Target):
    name = "board"
    board = "stm32f746"
    count_source = "dwt-cycles"
    counts_per_second = 216e6  # DWT cycles at the STM32F746's core clock

    def __init__(
        self,
        port: str = "/dev/ttyACM0",
        baud: int = 115200,
        probe_id: str | None = None,
        pyocd_target: str = "stm32f767zi",
        pack: str | None = None,
        frequency: int | None = None,
        boot_timeout: float = 10.0,
        run_timeout: float | None = None,
        reply_timeout: float = 2.0,
    ) -> None:
        self.port = port
        self.baud = baud
        self.probe_id = probe_id
        self.pyocd_target = pyocd_target
        self.pack = pack
        self.frequency = frequency  # SWD clock in Hz; None keeps pyOCD's default
        self.boot_timeout = boot_timeout
        self.run_timeout = run_timeout
        self.reply_timeout = reply_timeout

    def __repr__(self) -> str:
        return (
            f"BoardTarget(port={self.port!r}, probe_id={self.probe_id!r}, "
            f"pyocd_target={self.pyocd_target!r}, pack={self.pack!r})"
        )

    @contextlib.contextmanager
    def session(self, firmware: Firmware) -> Iterator[DeviceClient]:
        if firmware.board != self.board:
            raise HilError(
                f"the board runs {self.board} builds, this firmware is for {firmware.board}"
            )
        if not Path(firmware.elf).is_file():
            raise HilError(f"firmware ELF {firmware.elf} does not exist: build it first")
        self._check_pack()
        with contextlib.ExitStack() as stack:
            link = self._open_port()
            stack.callback(link.close)
            probe = self._open_probe()
            stack.callback(self._close_probe, probe)
            self._flash(probe, Path(firmware.elf))
            link.reset_input_buffer()  # what the old firmware sent before the probe halted it
            self._reset_and_run(probe)
            yield self.connect(link, firmware, f"{self.port} at {self.baud} baud")

    # -- serial --------------------------------------------------------------------------

    def _open_port(self) -> serial.SerialBase:
        # serial_for_url takes device paths and URLs alike (socket://, rfc2217:// for a board
        # on another machine); a local device is opened exclusively so two runs cannot share it.
        extra: dict[str, Any] = {} if "://" in self.port else {"exclusive": True}
        try:
            return serial.serial_for_url(self.port, baudrate=self.baud, timeout=0.05, **extra)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise TargetUnavailable(
                f"cannot open serial port {self.port} ({_one_line(exc)}): connect the board's"
                " ST-LINK USB and pass its port, e.g. --port /dev/ttyACM0"
            ) from None

    # -- pyOCD -------------------------------------------------------------------------------

    def _session_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "connect_mode": "halt",  # a running old firmware must not fight the flash loader
            "resume_on_disconnect": True,
        }
        if self.pack:
            options["pack"] = self.pack
        if self.frequency:
            options["frequency"] = self.frequency
        return options

    def check(self) -> None:
        """TargetUnavailable unless the port opens and exactly one probe matches; nothing is
        flashed, halted or reset."""
        self._check_pack()
        self._open_port().close()
        self._find_probe()

    def _check_pack(self) -> None:
        if self.pack and not Path(self.pack).is_file():
            raise TargetUnavailable(f"CMSIS pack {self.pack} does not exist: give its path")

    def _find_probe(self) -> str:
        """The unique id of the one probe that matches, or TargetUnavailable."""
        try:
            from pyocd.core.helpers import ConnectHelper
        except ImportError:
            raise TargetUnavailable("pyOCD is not installed: pip install pyocd") from None
        # Listing first: session_with_chosen_probe prompts on stdin when several probes match.
        try:
            probes = ConnectHelper.get_all_connected_probes(
                blocking=False, unique_id=self.probe_id, print_wait_message=False
            )
        except Exception as exc:  # USB access errors come in many types
            raise TargetUnavailable(f"pyOCD cannot list debug probes: {_one_line(exc)}") from None
        if not probes:
            which = f"matches id {self.probe_id!r}" if self.probe_id else "is connected"
            raise TargetUnavailable(
                f"no debug probe {which}: plug in the board's ST-LINK USB (on Linux, install "
                "the ST-LINK udev rules) or check `pyocd list`"
            )
        if len(probes) > 1:
            ids = ", ".join(pr.unique_id for pr in probes)
            raise TargetUnavailable(
                f"{len(probes)} debug probes found ({ids}): choose one with --probe <unique id>"
            )
        return str(probes[0].unique_id)

    def _open_probe(self) -> Any:
        """An open pyOCD session on exactly one probe, or TargetUnavailable."""
        from pyocd.core import exceptions as pyocd_errors
        from pyocd.core.helpers import ConnectHelper

        uid = self._find_probe()
        session = ConnectHelper.session_with_chosen_probe(
            blocking=False,
            return_first=True,
            unique_id=uid,
            target_override=self.pyocd_target,
            options=self._session_options(),
        )
        if session is None:
            raise TargetUnavailable(f"debug probe {uid} disappeared before pyOCD could open it")
        try:
            session.open()
        except (pyocd_errors.Error, OSError) as exc:
            with contextlib.suppress(Exception):
                session.close()
            raise TargetUnavailable(
                f"pyOCD cannot connect to target {self.pyocd_target!r} through probe {uid}: "
                f"{_one_line(exc)}"
            ) from None
        return session

    def _flash(self, session: Any, elf: Path) -> None:
        from pyocd.core import exceptions as pyocd_errors
        from pyocd.flash.file_programmer import FileProgrammer

        try:
            session.target.reset_and_halt()  # a known core state for the flash algorithm
            FileProgrammer(session).program(str(elf), file_format="elf")
        except (pyocd_errors.Error, OSError) as exc:
            raise HilError(f"flashing {elf} through pyOCD failed: {_one_line(exc)}") from None

    @staticmethod
    def _reset_and_run(session: Any) -> None:
        from pyocd.core import exceptions as pyocd_errors

        # A reset can drop debug access for a moment; the core runs regardless.
        with contextlib.suppress(pyocd_errors.TransferError):
            session.target.reset()

    @staticmethod
    def _close_probe(session: Any) -> None:
        # Closing resumes the core and clears DEMCR (which stops the DWT counter): the
        # firmware re-enables the counter before each run, so that is harmless mid-session.
        with contextlib.suppress(Exception):
            session.close()
