"""Request/reply client for the firmware's serial protocol, over any pyserial-like port.

Nothing wrong is accepted. Every frame is CRC-checked, and an inference is accepted only when
the RUN reply names the CRC of the input we sent and what we READ back matches the CRCs of
the output and counts it reports (tf_protocol.h). A refused RUN (STALE_INPUT: the input was
consumed by an earlier run or wiped by a reset), a reset (BOOT) during a request or a CRC
mismatch restarts the inference from INPUT. Requests are idempotent (INPUT and READ name
their offsets, RUN is guarded as above), so any damaged or missing reply is simply resent.

Failures are told apart: a FAULT frame (TargetFault), a device that answers nothing for the
whole run timeout, pings included (TargetTimeout: it hangs, or the model is slower than the
timeout), replies that keep arriving damaged (LinkNoise) and repeated resets (BootLoop).
"""

from __future__ import annotations

import contextlib
import struct
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from tinyformer.hil import protocol as p
from tinyformer.hil.errors import (
    BootLoop,
    InputLost,
    LinkError,
    LinkNoise,
    TargetFault,
    TargetTimeout,
    WrongFirmware,
)

if TYPE_CHECKING:
    from tinyformer.compiler.elfinfo import StackLayout

# Errors that mean "our frame arrived damaged": resend it.
_RESEND = {p.ErrorCode.BAD_CRC, p.ErrorCode.BAD_FRAME, p.ErrorCode.OVERFLOW}
# Requests whose meaning a reset does not change: a BOOT while they wait is not a failure.
_STATELESS = {p.Msg.INFO, p.Msg.PING}
# Resets within one inference that make it a boot loop rather than bad luck.
BOOT_LOOP_RESETS = 3
# What a try came to when no reply did: a damaged frame, a PONG (the device is idle, so the
# request or its reply was lost), or silence until the deadline.
_DAMAGED, _IDLE, _SILENT = "damaged", "idle", "silent"
MAX_CHUNK, MIN_CHUNK = 512, 16
# How long a reply may trail a damaged frame (a 512-byte piece at 115,200 baud takes 46 ms).
DAMAGE_GRACE = 0.1


def _is_resend_error(frame: p.Frame) -> bool:
    return frame.type == p.Msg.ERROR and bool(frame.payload) and frame.payload[0] in _RESEND


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
        retries: int = 6,
        describe_pc: Callable[[int], str] | None = None,
        stack: StackLayout | None = None,
    ) -> None:
        self.port = port
        self.reply_timeout = reply_timeout
        self.first_ping = reply_timeout  # into a RUN, then at doubling intervals
        self.run_timeout = run_timeout
        self.retries = retries
        # INPUT/READ piece size: halved when pieces keep arriving damaged (a long frame on a
        # noisy line rarely gets through whole), doubled back after a run of clean ones.
        self.chunk = MAX_CHUNK
        self._clean = 0
        self.describe_pc = describe_pc or (lambda pc: f"0x{pc:08x}")
        self.stack = stack  # the ELF's stack and guard: a fault there is a stack overflow
        self._reader = p.FrameReader()
        self._pending: list[p.Frame | p.FrameError] = []
        self._seq = 0
        # link quality, for reports and tests
        self.resends = 0  # requests sent again
        self.damaged = 0  # frames that arrived damaged
        self.restarts = 0  # inferences started again from INPUT
        self.boots = 0  # BOOT frames seen after the first
        self.pings = 0  # PINGs sent while a RUN reply was due
        self.booted = False
        self._output_bytes = 0  # the model's, once a RUN reply told it

    # -- low level ---------------------------------------------------------------------

    def _next_seq(self) -> int:
        self._seq = self._seq % 255 + 1  # 0 is the BOOT frame's
        return self._seq

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
            self._pending += self._reader.feed(data)
        item = self._pending.pop(0)
        if isinstance(item, p.FrameError):
            self.damaged += 1
        return item

    def _raise_fault(self, frame: p.Frame) -> None:
        fault = p.FaultInfo.unpack(frame.payload)
        where = f" at {self.describe_pc(fault.pc)}" if fault.frame_pushed else ""
        raise TargetFault(f"firmware fault{where}: {fault.describe(self.stack)}", fault)

    def _saw_boot(self, during: p.Msg) -> None:
        if self.booted:
            self.boots += 1
        self.booted = True
        if during not in _STATELESS:
            raise InputLost(f"the device restarted (BOOT) during {during.name}")

    def _await(self, seq: int, ftype: p.Msg, timeout: float) -> p.Frame | str:
        """The reply to ``seq``, or what the try came to instead (_DAMAGED, _IDLE, _SILENT).

        While a RUN reply is due the device is silent, so silence proves nothing: a PING (at
        growing intervals, so a long run does not fill the device's receive buffer) tells a
        device that is still computing from one that finished or never got the request. The
        device answers in order, so a PONG before the RUN reply means that reply is lost.

        A damaged frame, or an error saying a request arrived damaged under another seq (the
        seq may be what was damaged), may concern this try or an earlier one: our reply is given
        a short grace to follow before the try counts as damaged.
        """
        now = time.monotonic()
        deadline = now + timeout
        interval = self.first_ping
        next_ping = now + interval if ftype == p.Msg.RUN else deadline
        pings: set[int] = set()
        damaged = False
        while True:
            item = self._next_frame(min(deadline, next_ping))
            if item is None:
                if time.monotonic() >= deadline:
                    return _DAMAGED if damaged else _SILENT
                ping = self._next_seq()
                pings.add(ping)
                self.pings += 1
                self._send(p.Msg.PING, ping, b"")
                interval = min(2 * interval, 30.0)
                next_ping = time.monotonic() + interval
                continue
            if isinstance(item, p.FrameError) or _is_resend_error(item):
                if isinstance(item, p.Frame) and item.seq == seq:
                    return _DAMAGED  # our request arrived damaged
                damaged = True
                deadline = next_ping = min(deadline, time.monotonic() + DAMAGE_GRACE)
                continue
            if item.type == p.Msg.FAULT:
                self._raise_fault(item)
            if item.type == p.Msg.BOOT:
                self._saw_boot(ftype)
                continue
            if item.type == p.Msg.PONG and item.seq in pings:
                return _IDLE
            if item.seq != seq or item.type == p.Msg.PONG:
                continue  # a late reply to an earlier request or try
            return item

    def request(
        self,
        ftype: p.Msg,
        payload: bytes = b"",
        timeout: float | None = None,
        tries: int | None = None,
    ) -> p.Frame:
        timeout = self.reply_timeout if timeout is None else timeout
        seq = self._next_seq()
        outcomes: list[str] = []
        for attempt in range(self.retries + 1 if tries is None else tries):
            if attempt:
                self.resends += 1
            self._send(ftype, seq, payload)
            reply = self._await(seq, ftype, timeout)
            if isinstance(reply, str):
                if reply == _SILENT and ftype == p.Msg.RUN:
                    self._raise_no_run_reply(timeout)
                outcomes.append(reply)
                continue
            if reply.type == p.Msg.ERROR:
                code = reply.payload[0] if reply.payload else 0
                if code == p.ErrorCode.STALE_INPUT:
                    raise InputLost("the device no longer holds our input (STALE_INPUT)")
                raise LinkError(f"device rejected {ftype.name}: {p.error_text(reply.payload)}")
            return reply
        raise self._gave_up(ftype, outcomes, timeout)

    def _piecewise(
        self, ftype: p.Msg, size: int, payload: Callable[[int, int], bytes]
    ) -> list[p.Frame]:
        """Send ``ftype`` for consecutive pieces of ``size`` bytes; the replies, in order.

        A piece that keeps coming back damaged is tried again at half the size, down to
        MIN_CHUNK, before the link is given up on.
        """
        out: list[p.Frame] = []
        offset = 0
        while offset < size:
            n = min(self.chunk, size - offset)
            small = self.chunk <= MIN_CHUNK
            # the smallest pieces get twice the tries before the link is given up
            tries = 2 * (self.retries + 1) if small else 3
            try:
                reply = self.request(ftype, payload(offset, n), tries=tries)
            except LinkNoise:
                if small:
                    raise
                self.chunk //= 2
                self._clean = 0
                continue
            self._clean += 1
            if self._clean >= 16 and self.chunk < MAX_CHUNK:
                self.chunk *= 2
                self._clean = 0
            out.append(reply)
            offset += n
        return out

    def _raise_no_run_reply(self, timeout: float) -> None:
        raise TargetTimeout(
            f"the firmware did not finish RUN within {timeout:g} s and answered no ping in "
            "that time: it hangs, or the model is slower than the run timeout (raise "
            "--run-timeout if it is just slow)"
        )

    def _gave_up(self, ftype: p.Msg, outcomes: list[str], timeout: float) -> LinkError:
        tries = len(outcomes)
        damaged = outcomes.count(_DAMAGED)
        if damaged:
            return LinkNoise(
                f"no valid reply to {ftype.name} after {tries} tries: {damaged} of them came "
                "back damaged (CRC or framing errors): the serial link is too noisy (check the "
                "cable and the baud rate)"
            )
        return LinkError(
            f"no reply to {ftype.name} after {tries} tries ({timeout:g} s each): nothing came "
            "back, the serial link is down or the device stopped answering"
        )

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

    def write_input(self, data: bytes) -> None:
        replies = self._piecewise(
            p.Msg.INPUT, len(data), lambda at, n: p.input_payload(at, data[at : at + n])
        )
        offset = 0
        for reply in replies:
            (end,) = struct.unpack_from("<I", self._expect(reply, p.Msg.ACK))
            if end <= offset or end > len(data):
                raise LinkError(f"INPUT acknowledged up to {end} of {len(data)} bytes")
            offset = end
        if offset != len(data):
            raise LinkError(f"INPUT acknowledged up to {offset}, sent {len(data)}")

    def read(self, what: p.ReadWhat, size: int) -> bytes:
        out = bytearray()
        replies = self._piecewise(p.Msg.READ, size, lambda at, n: p.read_payload(what, at, n))
        for reply in replies:
            data = self._expect(reply, p.Msg.DATA)
            (offset,) = struct.unpack_from("<I", data)
            if offset != len(out):
                raise LinkError(f"READ returned offset {offset}, expected {len(out)}")
            out += data[4:]
        if len(out) != size:
            raise LinkError(f"READ returned {len(out)} bytes, asked for {size}")
        return bytes(out)

    def load_input(self, index: int, size: int) -> None:
        """Have the device copy input ``index`` of its preload region (filled by the emulator
        before boot) to the model input: what write_input does, without the serial link."""
        reply = self.request(p.Msg.LOAD, p.load_payload(index))
        (n,) = struct.unpack_from("<I", self._expect(reply, p.Msg.ACK))
        if n != size:
            raise LinkError(f"LOAD copied {n} bytes, the input has {size}")

    def run(
        self, input_data: bytes, *, preloaded: int | None = None, layers: bool = True
    ) -> RunResult:
        """One inference on ``input_data``, exactly once: see the module docstring.

        ``preloaded``: the input's index in the device's preload region, which the device
        copies instead of receiving it (LOAD, not INPUT); RUN proves it is ``input_data`` all
        the same. ``layers=False`` skips reading the per-layer counts (``layer_counts`` is
        then empty): an evaluation needs only the output and the total.
        """
        boots = self.boots
        for _ in range(self.retries + 1):
            try:
                return self._run_once(input_data, preloaded, layers)
            except InputLost as exc:
                self.restarts += 1
                lost = exc
                if self.boots - boots >= BOOT_LOOP_RESETS:
                    raise BootLoop(
                        f"the firmware restarted {self.boots - boots} times during one "
                        "inference: a boot loop (a watchdog, a brown-out or a fault handler "
                        "that resets)"
                    ) from None
        raise LinkError(
            f"the inference was started {self.retries + 1} times and lost each time: {lost}"
        )

    def run_preloaded(self, inputs: Sequence[bytes]) -> Iterator[RunResult]:
        """One inference on each of ``inputs``, in order, which the device holds as inputs
        0, 1, ... of its preload region; each exactly once, proven as ``run`` proves it, and
        without the per-layer counts.

        Once the first run has told the output's size, LOAD, RUN and READ of an image go out
        in one write, and the next image's behind them: the device serves requests in order,
        so it goes from one image to the next without waiting for the host. Any reply that is
        not the clean one (damage, a reset, a refusal) makes that image run step by step, with
        all of ``run``'s retries; the requests queued behind it are sent again.
        """
        sent: deque[tuple[int, list[int]]] = deque()  # images in flight: index, seqs
        for i, data in enumerate(inputs):
            if not 0 < self._output_bytes <= MAX_CHUNK:
                yield self.run(data, preloaded=i, layers=False)
                continue
            ahead = sent[-1][0] + 1 if sent else i
            for j in range(ahead, min(i + 2, len(inputs))):
                sent.append((j, self._send_steps(inputs[j], j)))
            _, seqs = sent.popleft()
            result = self._await_steps(data, seqs)
            if result is None:
                self.restarts += 1
                sent.clear()  # their replies were passed over while this image's were awaited
                result = self.run(data, preloaded=i, layers=False)
            yield result

    def _send_steps(self, data: bytes, index: int) -> list[int]:
        """LOAD input ``index``, RUN on ``data``, READ the output: sent, not awaited."""
        seqs = []
        for ftype, payload in (
            (p.Msg.LOAD, p.load_payload(index)),
            (p.Msg.RUN, p.run_payload(data)),
            (p.Msg.READ, p.read_payload(p.ReadWhat.OUTPUT, 0, self._output_bytes)),
        ):
            seqs.append(self._next_seq())
            self._send(ftype, seqs[-1], payload)
        return seqs

    def _await_steps(self, data: bytes, seqs: list[int]) -> RunResult | None:
        """The proven result of _send_steps' requests; None unless every reply is clean."""
        replies: list[p.Frame] = []
        for seq, ftype, timeout in zip(
            seqs,
            (p.Msg.LOAD, p.Msg.RUN, p.Msg.READ),
            (self.reply_timeout, self.run_timeout, self.reply_timeout),
            strict=True,
        ):
            try:
                reply = self._await(seq, ftype, timeout)
            except InputLost:  # a BOOT: the device restarted under us
                return None
            if reply == _SILENT and ftype == p.Msg.RUN:
                self._raise_no_run_reply(timeout)
            if isinstance(reply, str) or reply.type == p.Msg.ERROR:
                return None
            replies.append(reply)
        ack, run, read = replies
        try:
            summary = p.RunSummary.unpack(self._expect(run, p.Msg.RUN_R))
            (end,) = struct.unpack_from("<I", self._expect(ack, p.Msg.ACK))
            payload = self._expect(read, p.Msg.DATA)
            size = self._output_bytes
            if end != len(data) or summary.output_bytes != size or payload[:4] != bytes(4):
                return None
            return self._proven(data, summary, payload[4:], None)
        except (InputLost, p.FrameError, struct.error):
            return None

    def _run_once(self, input_data: bytes, preloaded: int | None, layers: bool) -> RunResult:
        if preloaded is None:
            self.write_input(input_data)
        else:
            self.load_input(preloaded, len(input_data))
        reply = self.request(p.Msg.RUN, p.run_payload(input_data), timeout=self.run_timeout)
        summary = p.RunSummary.unpack(self._expect(reply, p.Msg.RUN_R))
        self._output_bytes = summary.output_bytes
        output = self.read(p.ReadWhat.OUTPUT, summary.output_bytes)
        raw = self.read(p.ReadWhat.LAYER_COUNTS, 4 * summary.n_layers) if layers else None
        return self._proven(input_data, summary, output, raw)

    @staticmethod
    def _proven(
        input_data: bytes, summary: p.RunSummary, output: bytes, raw: bytes | None
    ) -> RunResult:
        """The result, once the RUN reply names our input and READ returned what it computed
        (``raw``: the layer counts read, None when they were not)."""
        if summary.input_crc != zlib.crc32(input_data):
            raise InputLost("the RUN reply names another input")
        counts_ok = raw is None or zlib.crc32(raw) == summary.counts_crc
        if zlib.crc32(output) != summary.output_crc or not counts_ok:
            raise InputLost("what READ returned is not what the run computed (a reset?)")
        return RunResult(
            output=output,
            total=summary.total,
            count_unit=summary.count_unit,
            layer_counts=list(struct.unpack(f"<{summary.n_layers}I", raw)) if raw else [],
            stack_used=summary.stack_used,
            stack_bytes=summary.stack_bytes,
        )

    def reset(self, boot_timeout: float = 10.0) -> None:
        self.booted = False
        with contextlib.suppress(InputLost):  # the BOOT overtook a lost RESET_R: it happened
            self._expect(self.request(p.Msg.RESET), p.Msg.RESET_R)
        self.wait_boot(boot_timeout)
