"""BoardTarget without a board.

Mocked, because they cannot exist on this machine: the pyOCD debug probe and its session
(ConnectHelper's probe list and session, FileProgrammer, the target's resets) and the STM32 at
the far end of the serial port. Everything else is real: the serial port is a pseudo-terminal
that pyserial opens exactly like /dev/ttyACM0, a fake firmware on its master side sends the
BOOT frame when the (fake) target is reset and answers INFO, the firmware ELF is a real
stm32f746 build, and the "no probe" case asks the real pyOCD for a probe id that does not exist.
"""

from __future__ import annotations

import os
import select
import threading
import tty
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pyocd.core import exceptions as pyocd_errors
from pyocd.core.helpers import ConnectHelper
from pyocd.flash import file_programmer
from test_stm32f746_build import build_tiny_firmware, needs_gcc

from tinyformer.compiler.elfinfo import ElfInfo
from tinyformer.compiler.firmware import Firmware
from tinyformer.hil import protocol as p
from tinyformer.hil.errors import HilError, TargetTimeout, TargetUnavailable, WrongFirmware
from tinyformer.hil.targets.board import BoardTarget

pytestmark = needs_gcc

PROBE_ID = "066DFF343633464257254156"


class FakeDevice:
    """The firmware end of a pseudo-terminal: BOOT on reset, INFO_R for INFO, and it runs
    the model last flashed (unless ``flash_ignored``: another board on this port)."""

    def __init__(self) -> None:
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.path = os.ttyname(self._slave)
        self.boot_on_reset = True
        self.answer_info = True
        self.flash_ignored = False
        self.model_hash = "ab" * 32  # what ran before the session flashed its firmware
        self.requests: list[p.Frame] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def send(self, frame: p.Frame) -> None:
        os.write(self.master, p.encode_frame(frame))

    def reset(self) -> None:
        if self.boot_on_reset:
            self.send(p.Frame(p.Msg.BOOT, 0))

    def load(self, elf: str) -> None:
        if not self.flash_ignored:
            self.model_hash = ElfInfo(Path(elf)).model_hash

    def _info_payload(self) -> bytes:
        info = p.Info(p.PROTOCOL_VERSION, "cycles", 216_000_000, 32, 32, 64, 8192, 1,
                      p.MAX_PAYLOAD, self.model_hash, "stm32f746", "tiny", "test")  # fmt: skip
        return info.pack()

    def _serve(self) -> None:
        reader = p.FrameReader()
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.02)
            if not ready:
                continue
            try:
                data = os.read(self.master, 4096)
            except OSError:  # no reader on the slave side right now
                continue
            for item in reader.feed(data):
                if not isinstance(item, p.Frame):
                    continue
                self.requests.append(item)
                if item.type == p.Msg.INFO and self.answer_info:
                    self.send(p.Frame(p.Msg.INFO_R, item.seq, self._info_payload()))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        os.close(self.master)
        os.close(self._slave)


class FakeTarget:
    def __init__(self, device: FakeDevice, log: list[str]) -> None:
        self.device = device
        self.log = log

    def reset_and_halt(self) -> None:
        self.log.append("reset_and_halt")

    def reset(self) -> None:
        self.log.append("reset")
        self.device.reset()


class FakeSession:
    def __init__(self, device: FakeDevice, log: list[str], open_error: Exception | None) -> None:
        self.target = FakeTarget(device, log)
        self.log = log
        self.open_error = open_error
        self.is_open = False

    def open(self) -> None:
        self.log.append("open")
        if self.open_error is not None:
            raise self.open_error
        self.is_open = True

    def close(self) -> None:
        self.log.append("close")
        self.is_open = False


class FakeProbe:
    def __init__(self, unique_id: str) -> None:
        self.unique_id = unique_id
        self.description = "STM32 STLink"


class FakePyOCD:
    """Stands in for the probe side of pyOCD; records how BoardTarget drives it."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, device: FakeDevice) -> None:
        self.device = device
        self.probes = [FakeProbe(PROBE_ID)]
        self.open_error: Exception | None = None
        self.log: list[str] = []
        self.session_kwargs: dict[str, Any] = {}
        self.programmed: list[tuple[str, str | None]] = []
        self.session: FakeSession | None = None
        fake = self

        def get_all_connected_probes(
            blocking: bool = True, unique_id: str | None = None, print_wait_message: bool = True
        ) -> list[FakeProbe]:
            assert blocking is False, "must not wait for a probe to appear"
            return [pr for pr in fake.probes if unique_id is None or unique_id in pr.unique_id]

        def session_with_chosen_probe(**kwargs: Any) -> FakeSession:
            fake.session_kwargs = kwargs
            fake.session = FakeSession(device, fake.log, fake.open_error)
            return fake.session

        class FakeProgrammer:
            def __init__(self, session: FakeSession, **_: Any) -> None:
                assert session is fake.session and session.is_open
                self.session = session

            def program(self, path: str, file_format: str | None = None, **_: Any) -> None:
                fake.log.append("program")
                fake.programmed.append((path, file_format))
                fake.device.load(path)

        monkeypatch.setattr(
            ConnectHelper, "get_all_connected_probes", staticmethod(get_all_connected_probes)
        )
        monkeypatch.setattr(
            ConnectHelper, "session_with_chosen_probe", staticmethod(session_with_chosen_probe)
        )
        monkeypatch.setattr(file_programmer, "FileProgrammer", FakeProgrammer)


@pytest.fixture(scope="module")
def firmware(tmp_path_factory: pytest.TempPathFactory) -> Firmware:
    return build_tiny_firmware(tmp_path_factory.mktemp("board_fw"))


@pytest.fixture
def device() -> Iterator[FakeDevice]:
    dev = FakeDevice()
    yield dev
    dev.close()


@pytest.fixture
def pyocd(monkeypatch: pytest.MonkeyPatch, device: FakeDevice) -> FakePyOCD:
    return FakePyOCD(monkeypatch, device)


def _target(device: FakeDevice, **kwargs: Any) -> BoardTarget:
    opts: dict[str, Any] = {"port": device.path, "boot_timeout": 2.0, "reply_timeout": 0.3}
    opts.update(kwargs)
    return BoardTarget(**opts)


def _one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    text = str(exc.value)
    assert "\n" not in text and text.strip() == text and text
    return text


def test_session_flashes_the_elf_with_the_probe_options_and_opens_the_port(
    firmware: Firmware, device: FakeDevice, pyocd: FakePyOCD, tmp_path: Path
) -> None:
    pack = str(tmp_path / "Keil.STM32F7xx_DFP.2.16.0.pack")
    Path(pack).write_bytes(b"PK")
    target = _target(device, probe_id=PROBE_ID[-8:], pyocd_target="stm32f746zgtx", pack=pack,
                     frequency=4_000_000)  # fmt: skip
    with target.session(firmware) as client:
        assert client.booted
        assert client.port.port == device.path  # the very port that was asked for
        assert client.port.baudrate == 115200
        assert client.port.is_open
        # The client really talks through that port: INFO goes out and its reply comes back.
        assert client.info().board == "stm32f746"
        assert any(f.type == p.Msg.INFO for f in device.requests)
    assert not client.port.is_open
    kw = pyocd.session_kwargs
    assert kw["unique_id"] == PROBE_ID
    assert kw["target_override"] == "stm32f746zgtx"
    assert kw["options"]["pack"] == pack
    assert kw["options"]["frequency"] == 4_000_000
    assert kw["blocking"] is False and kw["return_first"] is True
    assert pyocd.programmed == [(str(firmware.elf), "elf")]
    # Flash a halted core, then reset and run, then close the probe at the end.
    assert pyocd.log == ["open", "reset_and_halt", "program", "reset", "close"]


def test_default_pyocd_target_is_stm32f767zi_without_a_pack(
    firmware: Firmware, device: FakeDevice, pyocd: FakePyOCD
) -> None:
    with _target(device).session(firmware) as client:
        assert client.booted
    assert pyocd.session_kwargs["target_override"] == "stm32f767zi"
    assert pyocd.session_kwargs["unique_id"] == PROBE_ID
    assert "pack" not in pyocd.session_kwargs["options"]


def test_missed_boot_falls_back_to_an_info_ping(
    firmware: Firmware, device: FakeDevice, pyocd: FakePyOCD
) -> None:
    device.boot_on_reset = False  # e.g. the port dropped the bytes sent right after reset
    with _target(device, boot_timeout=0.3).session(firmware) as client:
        assert client.booted
        assert [f.type for f in device.requests] == [p.Msg.INFO]


def test_another_board_on_the_port_is_refused(
    firmware: Firmware, device: FakeDevice, pyocd: FakePyOCD
) -> None:
    """The probe flashed one board, the port belongs to another: its results would be
    another model's, so the session refuses it, naming the port."""
    device.flash_ignored = True
    with pytest.raises(WrongFirmware) as exc, _target(device).session(firmware):
        pass
    text = _one_line(exc)
    assert device.path in text and "abababababab" in text and "check the port" in text
    assert pyocd.log[-1] == "close"


def test_silent_device_is_a_timeout_that_names_the_port(
    firmware: Firmware, device: FakeDevice, pyocd: FakePyOCD
) -> None:
    device.boot_on_reset = False
    device.answer_info = False
    with pytest.raises(TargetTimeout) as exc, _target(device, boot_timeout=0.2).session(firmware):
        pass
    text = _one_line(exc)
    assert "did not boot" in text and device.path in text
    assert pyocd.log[-1] == "close"


def test_missing_probe_is_unavailable_with_a_clear_message(
    firmware: Firmware, device: FakeDevice
) -> None:
    # The real pyOCD, asked for a probe id that matches nothing: no mock involved.
    target = _target(device, probe_id="no-such-probe-tinyformer-test")
    with pytest.raises(TargetUnavailable) as exc, target.session(firmware):
        pass
    text = _one_line(exc)
    assert text.startswith("no debug probe matches id 'no-such-probe-tinyformer-test'")
    assert exc.value.__context__ is None  # nothing chained: the message is the whole story


def test_no_probe_at_all(firmware: Firmware, device: FakeDevice, pyocd: FakePyOCD) -> None:
    pyocd.probes = []
    with pytest.raises(TargetUnavailable) as exc, _target(device).session(firmware):
        pass
    assert _one_line(exc).startswith("no debug probe is connected")
    assert pyocd.session is None


def test_several_probes_need_an_id(
    firmware: Firmware, device: FakeDevice, pyocd: FakePyOCD
) -> None:
    pyocd.probes = [FakeProbe("AAAA1111"), FakeProbe("BBBB2222")]
    with pytest.raises(TargetUnavailable) as exc, _target(device).session(firmware):
        pass
    text = _one_line(exc)
    assert "AAAA1111" in text and "BBBB2222" in text and "--probe" in text
    assert pyocd.session is None  # never connected to a probe it had to guess


def test_probe_that_cannot_connect_is_unavailable(
    firmware: Firmware, device: FakeDevice, pyocd: FakePyOCD
) -> None:
    pyocd.open_error = pyocd_errors.TargetSupportError("Target type stm32f999 not recognized.")
    with pytest.raises(TargetUnavailable) as exc, _target(device).session(firmware):
        pass
    text = _one_line(exc)
    assert "stm32f767zi" in text and PROBE_ID in text and "not recognized" in text
    assert pyocd.log == ["open", "close"]


def test_missing_port_is_unavailable_before_touching_the_probe(
    firmware: Firmware, tmp_path: Path, device: FakeDevice, pyocd: FakePyOCD
) -> None:
    port = str(tmp_path / "ttyACM9")
    with pytest.raises(TargetUnavailable) as exc, _target(device, port=port).session(firmware):
        pass
    text = _one_line(exc)
    assert text.startswith(f"cannot open serial port {port}")
    assert pyocd.session is None and pyocd.log == []


def test_missing_pack_is_one_line_before_touching_the_probe(
    firmware: Firmware, tmp_path: Path, device: FakeDevice, pyocd: FakePyOCD
) -> None:
    pack = tmp_path / "none.pack"
    with pytest.raises(TargetUnavailable) as exc, _target(device, pack=str(pack)).session(firmware):
        pass
    assert _one_line(exc) == f"CMSIS pack {pack} does not exist: give its path"
    assert pyocd.session is None


def test_wrong_board_build_is_refused(firmware: Firmware, device: FakeDevice) -> None:
    qemu_build = Firmware(firmware.elf, "mps2-an500", firmware.stack_size)
    with pytest.raises(HilError, match="mps2-an500"), _target(device).session(qemu_build):
        pass


def test_identity() -> None:
    target = BoardTarget()
    assert (target.name, target.board, target.count_source) == ("board", "stm32f746", "dwt-cycles")
    assert target.port == "/dev/ttyACM0" and target.pyocd_target == "stm32f767zi"
