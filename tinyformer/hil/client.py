"""Request/reply client for the firmware's serial protocol, over any pyserial-like port.

Each request is retried when the device reports a damaged frame or when the reply does not
come; stale replies (an old sequence number) are dropped. A FAULT frame from the device
becomes a :class:`TargetFault` at once.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from tinyformer.hil import protocol as p
from tinyformer.hil.errors import LinkError, TargetFault, TargetTimeout, WrongFirmware

if TYPE_CHECKING:
    from tinyformer.hil.elfinfo import StackLayout

# Errors that mean "your frame arrived damaged": resend it.
_RESEND = {p.ErrorCode.BAD_CRC, p.ErrorCode.BAD_FRAME, p.ErrorCode.OVERFLOW}


class SerialPort(Protocol):
    timeout: float | None

    def read(self, size: int = 1) -> bytes: ...
    def write(self, data: bytes) -> int | None: ...
    @property
    def in_waiting(self) -> int: ...


@dataclass(frozen=True)
class RunResult:
    output: bytes
    total: int
    count_unit: str
    layer_counts: list[int]
    stack_used: int
    stack_bytes: int


class DeviceClient:
    def __init__(
        self,
        port: SerialPort,
        *,
        reply_timeout: float = 2.0,
        run_timeout: float = 60.0,
        retries: int = 4,
        describe_pc: Callable[[int], str] | None = None,
        stack: StackLayout | None = None,
    ) -> None:
        self.port = port
        self.reply_timeout = reply_timeout
        self.run_timeout = run_timeout
        self.retries = retries
        self.describe_pc = describe_pc or (lambda pc: f"0x{pc:08x}")
        self.stack = stack  # the ELF's stack and guard: a fault there is a stack overflow
        self._reader = p.FrameReader()
        self._pending: list[p.Frame] = []
        self._seq = 0
        self.resends = 0  # how many requests had to be sent again (link quality)
        self.booted = False

    # -- low level ---------------------------------------------------------------------

    def _send(self, ftype: int, seq: int, payload: bytes) -> None:
        # A leading delimiter flushes whatever partial frame damaged bytes left behind.
        try:
            self.port.write(b"\x00" + p.encode_frame(p.Frame(ftype, seq, payload)))
        except OSError as exc:  # pyserial's SerialException included
            raise LinkError(f"the serial link failed: {exc}") from None

    def _next_frame(self, deadline: float) -> p.Frame | p.FrameError | None:
        while not self._pending:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.port.timeout = min(left, 0.05)
            try:
                data = self.port.read(max(1, self.port.in_waiting))
            except OSError as exc:  # a board unplugged, an emulator gone
                raise LinkError(f"the serial link failed: {exc}") from None
            for item in self._reader.feed(data):
                if isinstance(item, p.FrameError):
                    return item
                self._pending.append(item)
        return self._pending.pop(0)

    def _raise_fault(self, frame: p.Frame) -> None:
        fault = p.FaultInfo.unpack(frame.payload)
        where = f" at {self.describe_pc(fault.pc)}" if fault.frame_pushed else ""
        raise TargetFault(f"firmware fault{where}: {fault.describe(self.stack)}", fault)

    def _await(self, seq: int, timeout: float) -> p.Frame | None:
        """The reply to ``seq``; None when it did not come or came damaged."""
        deadline = time.monotonic() + timeout
        while True:
            item = self._next_frame(deadline)
            if item is None or isinstance(item, p.FrameError):
                return None
            if item.type == p.Msg.FAULT:
                self._raise_fault(item)
            if item.type == p.Msg.BOOT:
                self.booted = True
                continue
            if item.seq != seq:
                continue  # a late reply to an earlier try
            if item.type == p.Msg.ERROR and item.payload and item.payload[0] in _RESEND:
                return None
            return item

    def request(self, ftype: p.Msg, payload: bytes = b"", timeout: float | None = None) -> p.Frame:
        timeout = self.reply_timeout if timeout is None else timeout
        self._seq = self._seq % 255 + 1  # 0 is the BOOT frame's
        seq = self._seq
        for attempt in range(self.retries + 1):
            if attempt:
                self.resends += 1
            self._send(ftype, seq, payload)
            reply = self._await(seq, timeout)
            if reply is None and ftype == p.Msg.RUN:
                reply = self._probe_after_run_timeout(seq)
            if reply is None:
                continue
            if reply.type == p.Msg.ERROR:
                raise LinkError(f"device rejected {ftype.name}: {p.error_text(reply.payload)}")
            return reply
        raise LinkError(
            f"no valid reply to {ftype.name} after {self.retries + 1} tries "
            f"({timeout:g} s each): the serial link is down or too noisy"
        )

    def _probe_after_run_timeout(self, run_seq: int) -> p.Frame | None:
        """A RUN got no reply: tell a lost request (device answers a ping) from a hang."""
        self._seq = self._seq % 255 + 1
        ping = self._seq
        self._send(p.Msg.INFO, ping, b"")
        deadline = time.monotonic() + self.reply_timeout
        while True:
            item = self._next_frame(deadline)
            if item is None:
                raise TargetTimeout(
                    f"the firmware did not finish RUN within {self.run_timeout:g} s and "
                    "no longer answers: it hangs"
                )
            if isinstance(item, p.FrameError):
                continue
            if item.type == p.Msg.FAULT:
                self._raise_fault(item)
            if item.seq == run_seq and item.type == p.Msg.RUN_R:
                return item  # the run was just slow
            if item.seq == ping:
                return None  # alive: the RUN request was lost, so send it again

    def _expect(self, frame: p.Frame, ftype: p.Msg) -> bytes:
        if frame.type != ftype:
            raise LinkError(f"expected {ftype.name}, got message type 0x{frame.type:02x}")
        return frame.payload

    # -- requests ----------------------------------------------------------------------

    def wait_boot(self, timeout: float) -> None:
        """Wait for the BOOT frame a freshly started firmware sends."""
        deadline = time.monotonic() + timeout
        while not self.booted:
            item = self._next_frame(deadline)
            if item is None:
                raise TargetTimeout(f"the firmware did not boot within {timeout:g} s")
            if isinstance(item, p.Frame) and item.type == p.Msg.FAULT:
                self._raise_fault(item)
            if isinstance(item, p.Frame) and item.type == p.Msg.BOOT:
                self.booted = True

    def handshake(self, boot_timeout: float, where: str, model_hash: str | None = None) -> None:
        """Wait for BOOT, then check that the device runs ``model_hash`` (when given).

        BOOT is sent once, so a port that opened late or dropped the first bytes misses it
        while the firmware runs fine. When it does not come, an INFO request tells the two
        apart without changing the device's state (a RESET request would also work, but
        reboots a firmware just started and fails the same way when nothing listens).
        """
        try:
            self.wait_boot(boot_timeout)
            reply = None
        except TargetTimeout:
            try:
                reply = self.request(p.Msg.INFO)
            except LinkError:
                raise TargetTimeout(
                    f"the firmware did not boot: no BOOT frame within {boot_timeout:g} s and no "
                    f"reply to INFO on {where}"
                ) from None
            self.booted = True
        if model_hash is None:
            return
        info = self._info(reply) if reply is not None else self.info()
        if info.model_hash != model_hash:
            raise WrongFirmware(
                f"the device on {where} runs model '{info.model_name}' ({info.model_hash[:12]}), "
                f"not the one we started ({model_hash[:12]}): another board or emulator "
                "answers there; check the port"
            )

    def info(self) -> p.Info:
        return self._info(self.request(p.Msg.INFO))

    def _info(self, reply: p.Frame) -> p.Info:
        info = p.Info.unpack(self._expect(reply, p.Msg.INFO_R))
        if info.protocol_version != p.PROTOCOL_VERSION:
            raise LinkError(
                f"firmware speaks protocol v{info.protocol_version}, host v{p.PROTOCOL_VERSION}:"
                " rebuild the firmware"
            )
        return info

    def write_input(self, data: bytes, chunk: int = 512) -> None:
        for offset in range(0, len(data), chunk):
            piece = data[offset : offset + chunk]
            reply = self._expect(
                self.request(p.Msg.INPUT, p.input_payload(offset, piece)), p.Msg.ACK
            )
            (end,) = struct.unpack_from("<I", reply)
            if end != offset + len(piece):
                raise LinkError(f"INPUT acknowledged up to {end}, sent {offset + len(piece)}")

    def read(self, what: p.ReadWhat, size: int, chunk: int = 512) -> bytes:
        out = bytearray()
        while len(out) < size:
            n = min(chunk, size - len(out))
            reply = self.request(p.Msg.READ, p.read_payload(what, len(out), n))
            data = self._expect(reply, p.Msg.DATA)
            (offset,) = struct.unpack_from("<I", data)
            if offset != len(out) or len(data) - 4 != n:
                raise LinkError(f"READ returned offset {offset}, {len(data) - 4} bytes")
            out += data[4:]
        return bytes(out)

    def run(self, input_data: bytes | None = None) -> RunResult:
        if input_data is not None:
            self.write_input(input_data)
        reply = self.request(p.Msg.RUN, timeout=self.run_timeout)
        summary = p.RunSummary.unpack(self._expect(reply, p.Msg.RUN_R))
        output = self.read(p.ReadWhat.OUTPUT, summary.output_bytes)
        raw = self.read(p.ReadWhat.LAYER_COUNTS, 4 * summary.n_layers)
        counts = list(struct.unpack(f"<{summary.n_layers}I", raw))
        return RunResult(
            output=output,
            total=summary.total,
            count_unit=summary.count_unit,
            layer_counts=counts,
            stack_used=summary.stack_used,
            stack_bytes=summary.stack_bytes,
        )

    def reset(self, boot_timeout: float = 10.0) -> None:
        self._expect(self.request(p.Msg.RESET), p.Msg.RESET_R)
        self.booted = False
        self.wait_boot(boot_timeout)
