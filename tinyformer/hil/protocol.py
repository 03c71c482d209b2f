"""The serial protocol, host side: frames, COBS, CRC-32 and message payloads.

C twin: firmware/common/tf_protocol.h (read it for the frame layout and for how RUN proves
its output is the output of the host's input). A frame is
``u8 type | u8 seq | u16 len | payload | u32 crc32``, COBS-encoded and ended by 0x00.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tinyformer.compiler.elfinfo import StackLayout

PROTOCOL_VERSION = 2
MAX_PAYLOAD = 1024
FRAME_OVERHEAD = 8  # type, seq, len, crc
# COBS adds one code byte per 254 data bytes (and one more): the longest frame on the wire.
MAX_ENCODED = MAX_PAYLOAD + FRAME_OVERHEAD + (MAX_PAYLOAD + FRAME_OVERHEAD) // 254 + 1
_HEADER = struct.Struct("<BBH")


class Msg(IntEnum):
    INFO = 0x01
    INPUT = 0x02
    RUN = 0x03
    READ = 0x04
    RESET = 0x05
    PING = 0x06
    LOAD = 0x07
    INFO_R = 0x81
    ACK = 0x82
    RUN_R = 0x83
    DATA = 0x84
    RESET_R = 0x85
    BOOT = 0x86
    PONG = 0x87
    ERROR = 0xE0
    FAULT = 0xEF


class ErrorCode(IntEnum):
    BAD_CRC = 1
    BAD_FRAME = 2
    UNKNOWN_TYPE = 3
    BAD_ARGS = 4
    OVERFLOW = 5
    STALE_INPUT = 6


class ReadWhat(IntEnum):
    OUTPUT = 0
    LAYER_COUNTS = 1


COUNT_UNITS = {0: "instructions", 1: "cycles"}
UNIT_CODES = {name: code for code, name in COUNT_UNITS.items()}


class FrameError(ValueError):
    """A received frame is damaged (bad COBS, length or CRC)."""


@dataclass(frozen=True)
class Frame:
    type: int
    seq: int
    payload: bytes = b""


def cobs_encode(data: bytes) -> bytes:
    out = bytearray()
    start = 0
    while True:
        end = start
        while end < len(data) and data[end] != 0 and end - start < 254:
            end += 1
        out.append(end - start + 1)
        out += data[start:end]
        if end == len(data):
            return bytes(out)
        # a group ended by a zero stands for it; a full one (code 0xFF) for no zero
        zero = end - start < 254 and data[end] == 0
        start = end + 1 if zero else end
        if zero and start == len(data):
            out.append(1)
            return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    out = bytearray()
    i = 0
    while i < len(data):
        code = data[i]
        if code == 0 or i + code > len(data):
            raise FrameError("bad COBS encoding")
        out += data[i + 1 : i + code]
        i += code
        if code != 0xFF and i < len(data):
            out.append(0)
    return bytes(out)


def encode_frame(frame: Frame) -> bytes:
    if len(frame.payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(frame.payload)} bytes exceeds {MAX_PAYLOAD}")
    raw = _HEADER.pack(frame.type, frame.seq & 0xFF, len(frame.payload)) + frame.payload
    raw += struct.pack("<I", zlib.crc32(raw))
    return cobs_encode(raw) + b"\x00"


def decode_frame(encoded: bytes) -> Frame:
    """Decode one frame (without its 0x00 delimiter)."""
    if len(encoded) > MAX_ENCODED:
        raise FrameError(f"frame of {len(encoded)} bytes is longer than the protocol allows")
    raw = cobs_decode(encoded)
    if len(raw) < FRAME_OVERHEAD:
        raise FrameError(f"frame of {len(raw)} bytes is shorter than its header and CRC")
    ftype, seq, length = _HEADER.unpack_from(raw)
    if length + FRAME_OVERHEAD != len(raw):
        carried = len(raw) - FRAME_OVERHEAD
        raise FrameError(f"frame length field says {length}, frame carries {carried}")
    if length > MAX_PAYLOAD:
        raise FrameError(f"frame payload of {length} bytes exceeds {MAX_PAYLOAD}")
    (crc,) = struct.unpack_from("<I", raw, len(raw) - 4)
    if zlib.crc32(raw[:-4]) != crc:
        raise FrameError("frame CRC mismatch")
    return Frame(ftype, seq, bytes(raw[4:-4]))


class FrameReader:
    """Splits a byte stream on 0x00 delimiters; yields frames or FrameError per chunk.

    Like the firmware's receiver, it keeps at most one maximal frame: a longer chunk (a lost
    delimiter joined two frames) is one FrameError, not a frame cut to size.
    """

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Frame | FrameError]:
        out: list[Frame | FrameError] = []
        for byte in data:
            if byte != 0:
                if len(self._buf) <= MAX_ENCODED:
                    self._buf.append(byte)
                continue
            chunk, self._buf = bytes(self._buf), bytearray()
            if not chunk:
                continue
            try:
                out.append(decode_frame(chunk))
            except FrameError as exc:
                out.append(exc)
        return out


@dataclass(frozen=True)
class Info:
    protocol_version: int
    count_unit: str
    clock_hz: int
    input_bytes: int
    output_bytes: int
    arena_bytes: int
    stack_bytes: int
    n_layers: int
    max_payload: int
    model_hash: str
    board: str
    model_name: str
    build: str

    def pack(self) -> bytes:
        """The INFO_R payload, as the firmware writes it (tf_app.c); the inverse of unpack."""
        unit = UNIT_CODES[self.count_unit]
        head = struct.pack(
            "<HBBIIIIIHH", self.protocol_version, unit, 0, self.clock_hz, self.input_bytes,
            self.output_bytes, self.arena_bytes, self.stack_bytes, self.n_layers,
            self.max_payload,
        )  # fmt: skip
        board = self.board.encode()[:23].ljust(24, b"\0")
        texts = self.model_name.encode() + b"\0" + self.build.encode() + b"\0"
        return head + bytes.fromhex(self.model_hash) + board + texts

    @classmethod
    def unpack(cls, p: bytes) -> Info:
        if len(p) < 84:
            raise FrameError(f"INFO reply of {len(p)} bytes is too short")
        version, unit, _, clock, inp, outp, arena, stack, layers, maxp = struct.unpack_from(
            "<HBBIIIIIHH", p
        )
        texts = p[84:].split(b"\x00")
        return cls(
            protocol_version=version,
            count_unit=COUNT_UNITS.get(unit, f"unit{unit}"),
            clock_hz=clock,
            input_bytes=inp,
            output_bytes=outp,
            arena_bytes=arena,
            stack_bytes=stack,
            n_layers=layers,
            max_payload=maxp,
            model_hash=p[28:60].hex(),
            board=p[60:84].split(b"\x00")[0].decode(errors="replace"),
            model_name=texts[0].decode(errors="replace") if texts else "",
            build=texts[1].decode(errors="replace") if len(texts) > 1 else "",
        )


@dataclass(frozen=True)
class RunSummary:
    total: int
    count_unit: str
    n_layers: int
    stack_used: int
    stack_bytes: int
    output_bytes: int
    input_crc: int  # the input the device ran on
    output_crc: int  # what READ OUTPUT must return
    counts_crc: int  # what READ LAYER_COUNTS must return

    @classmethod
    def unpack(cls, p: bytes) -> RunSummary:
        if len(p) != 36:
            raise FrameError(f"RUN reply of {len(p)} bytes, expected 36")
        lo, hi, unit, _, layers, *rest = struct.unpack("<IIBBHIIIIII", p)
        return cls(lo | hi << 32, COUNT_UNITS.get(unit, f"unit{unit}"), layers, *rest)

    def pack(self) -> bytes:
        """The RUN_R payload, as the firmware writes it (tf_app.c); the inverse of unpack."""
        unit = UNIT_CODES[self.count_unit]
        return struct.pack(
            "<IIBBHIIIIII", self.total & 0xFFFFFFFF, self.total >> 32, unit, 0, self.n_layers,
            self.stack_used, self.stack_bytes, self.output_bytes, self.input_crc,
            self.output_crc, self.counts_crc,
        )  # fmt: skip


# CFSR (ARMv7-M ARM B3.2.15): MemManage status in bits 7:0, BusFault 15:8, UsageFault 31:16.
CFSR_FLAGS = {
    0: "IACCVIOL", 1: "DACCVIOL", 3: "MUNSTKERR", 4: "MSTKERR", 5: "MLSPERR", 7: "MMARVALID",
    8: "IBUSERR", 9: "PRECISERR", 10: "IMPRECISERR", 11: "UNSTKERR", 12: "STKERR",
    13: "LSPERR", 15: "BFARVALID", 16: "UNDEFINSTR", 17: "INVSTATE", 18: "INVPC", 19: "NOCP",
    24: "UNALIGNED", 25: "DIVBYZERO",
}  # fmt: skip
CFSR_MSTKERR, CFSR_MMARVALID, CFSR_STKERR, CFSR_BFARVALID = 1 << 4, 1 << 7, 1 << 12, 1 << 15


@dataclass(frozen=True)
class FaultInfo:
    """A FAULT frame (firmware/common/tf_fault.c).

    When the core could not push the exception frame (MSTKERR / STKERR: SP was in the stack
    guard or otherwise unusable), pc, lr and xpsr are unknown and sent as 0, and sp is where
    the push was tried; otherwise sp is the SP before the exception.
    """

    pc: int
    lr: int
    sp: int
    xpsr: int
    cfsr: int
    hfsr: int
    mmfar: int
    bfar: int

    @classmethod
    def unpack(cls, p: bytes) -> FaultInfo:
        if len(p) < 32:
            raise FrameError(f"FAULT frame of {len(p)} bytes is too short")
        return cls(*struct.unpack_from("<8I", p))

    @property
    def frame_pushed(self) -> bool:
        """Whether pc, lr and xpsr are known (the exception frame was pushed)."""
        return not self.cfsr & (CFSR_MSTKERR | CFSR_STKERR)

    def overflow_address(self, stack: StackLayout | None) -> int | None:
        """The address in the stack's MPU guard this fault touched, None if it is no stack
        overflow: the faulting access (MMFAR) or the SP the core pushed at lies there."""
        if stack is None:
            return None
        if self.cfsr & CFSR_MMARVALID and stack.guard_start <= self.mmfar < stack.guard_end:
            return self.mmfar
        if stack.guard_start <= self.sp < stack.guard_end:
            return self.sp
        return None

    def describe(self, stack: StackLayout | None = None) -> str:
        """The registers in words; a stack overflow (``stack``: the ELF's layout) says so first."""
        flags = [name for bit, name in CFSR_FLAGS.items() if self.cfsr >> bit & 1]
        regs = (
            f"PC=0x{self.pc:08x} LR=0x{self.lr:08x} "
            if self.frame_pushed
            else "PC unknown (the core could not push the exception frame) "
        )
        regs += f"SP=0x{self.sp:08x} CFSR=0x{self.cfsr:08x} ({' '.join(flags) or 'no CFSR flags'})"
        if self.cfsr & CFSR_MMARVALID:
            regs += f" MMFAR=0x{self.mmfar:08x}"
        if self.cfsr & CFSR_BFARVALID:
            regs += f" BFAR=0x{self.bfar:08x}"
        regs += f" HFSR=0x{self.hfsr:08x}"
        address = self.overflow_address(stack)
        if stack is None or address is None:
            return regs
        needed = stack.stack_top - address
        return (
            f"stack overflow: the stack ({stack.stack_bytes:,} B at 0x{stack.stack_limit:08x}.."
            f"0x{stack.stack_top:08x}) ran into its MPU guard (0x{stack.guard_start:08x}.."
            f"0x{stack.guard_end:08x}) at 0x{address:08x}: the run needed more than {needed:,} B. "
            "Raise the stack size (firmware.build(stack_size=...), make STACK_SIZE=...) or "
            f"shrink the deepest frames. {regs}"
        )


def input_payload(offset: int, data: bytes) -> bytes:
    return struct.pack("<I", offset) + data


def load_payload(index: int) -> bytes:
    return struct.pack("<I", index)


def run_payload(input_data: bytes) -> bytes:
    return struct.pack("<I", zlib.crc32(input_data))


def read_payload(what: ReadWhat, offset: int, length: int) -> bytes:
    return struct.pack("<BBHI", what, 0, length, offset)


def error_text(payload: bytes) -> str:
    code = payload[0] if payload else 0
    try:
        name = ErrorCode(code).name
    except ValueError:
        name = f"code {code}"
    req = f" (request type 0x{payload[1]:02x})" if len(payload) > 1 else ""
    return f"{name}{req}"
