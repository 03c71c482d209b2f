"""The serial protocol: Python codec round trips, and the firmware's C codec agrees with it.

The C side (firmware/common/tf_protocol.c) is compiled for the host with a stub board_putc
that records bytes, so both directions are checked against the Python twin.
"""

from __future__ import annotations

import ctypes
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest

from tinyformer.hil import protocol as p

FIRMWARE = Path(__file__).resolve().parents[1] / "firmware"
STUB = r"""
#include <stdint.h>
#include "tf_board.h"
uint8_t tx[8192]; uint32_t tx_len;
void board_putc(uint8_t b) { if (tx_len < sizeof tx) tx[tx_len++] = b; }
"""


@pytest.fixture(scope="module")
def ccodec(tmp_path_factory: pytest.TempPathFactory) -> ctypes.CDLL:
    d = tmp_path_factory.mktemp("proto")
    (d / "stub.c").write_text(STUB)
    lib = d / "libproto.so"
    subprocess.run(
        ["gcc", "-O1", "-shared", "-fPIC", "-Wall", "-Wextra", "-Werror",
         f"-I{FIRMWARE / 'common'}", str(FIRMWARE / "common" / "tf_protocol.c"),
         str(d / "stub.c"), "-o", str(lib)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return ctypes.CDLL(str(lib))


def payloads() -> list[bytes]:
    rng = np.random.default_rng(0)
    out = [b"", b"\x00", b"\x00" * 300, b"\x01" * 254, b"\x01" * 253 + b"\x00", b"\xff" * 1024]
    out += [rng.integers(0, 256, int(n), dtype=np.uint8).tobytes() for n in (1, 253, 254, 255, 777)]
    out += [bytes(rng.choice([0, 1, 2], 600).astype(np.uint8))]
    # a full 254-byte group right before a zero: the group must not swallow that zero
    # (at several offsets, so that frames' 4-byte headers land the run on a group boundary)
    out += [b"\x07" * n + b"\x00" + b"\x05" * 3 for n in range(250, 259)]
    out += [b"\x07" * 254 + b"\x00", b"\x07" * 508 + b"\x00\x00"]
    return out


@pytest.mark.parametrize("payload", payloads())
def test_cobs_round_trip(payload: bytes) -> None:
    enc = p.cobs_encode(payload)
    assert 0 not in enc
    assert p.cobs_decode(enc) == payload


@pytest.mark.parametrize("payload", payloads())
def test_python_frame_round_trip(payload: bytes) -> None:
    frames = p.FrameReader().feed(p.encode_frame(p.Frame(p.Msg.INPUT, 9, payload)))
    assert frames == [p.Frame(p.Msg.INPUT, 9, payload)]


def test_info_pack_is_unpacks_inverse() -> None:
    model_hash = bytes(range(32)).hex()
    info = p.Info(p.PROTOCOL_VERSION, "instructions", 25_000_000, 40, 24, 4096, 8192, 7,
                  p.MAX_PAYLOAD, model_hash, "mps2-an500", "demo", "abc123")  # fmt: skip
    assert p.Info.unpack(info.pack()) == info


def test_damaged_frames_are_errors_not_crashes() -> None:
    enc = bytearray(p.encode_frame(p.Frame(p.Msg.RUN, 1, b"abc")))
    enc[3] ^= 0x40
    (item,) = p.FrameReader().feed(bytes(enc))
    assert isinstance(item, p.FrameError)
    items = p.FrameReader().feed(b"\x05\x01\x00" + p.encode_frame(p.Frame(p.Msg.RUN, 2)))
    assert isinstance(items[0], p.FrameError) and items[1] == p.Frame(p.Msg.RUN, 2)


def test_c_crc32_matches_zlib(ccodec: ctypes.CDLL) -> None:
    ccodec.tf_crc32.restype = ctypes.c_uint32
    for data in payloads():
        assert ccodec.tf_crc32(0, data, len(data)) == zlib.crc32(data)


@pytest.mark.parametrize("payload", payloads())
def test_c_sends_what_python_reads(ccodec: ctypes.CDLL, payload: bytes) -> None:
    length = ctypes.c_uint32.in_dll(ccodec, "tx_len")
    length.value = 0
    ccodec.tf_frame_send(0x84, 5, payload, len(payload))
    sent = bytes((ctypes.c_uint8 * length.value).in_dll(ccodec, "tx"))
    assert p.FrameReader().feed(sent) == [p.Frame(0x84, 5, payload)]


class CFrame(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_uint8),
        ("seq", ctypes.c_uint8),
        ("len", ctypes.c_uint16),
        ("payload", ctypes.c_uint8 * p.MAX_PAYLOAD),
    ]


def feed_c(ccodec: ctypes.CDLL, data: bytes) -> list[int | tuple[int, int, bytes]]:
    frame, out = CFrame(), []
    for byte in data:
        status = ccodec.tf_frame_feed(byte, ctypes.byref(frame))
        if status > 0:
            out.append((frame.type, frame.seq, bytes(frame.payload[: frame.len])))
        elif status < 0:
            out.append(status)
    return out


@pytest.mark.parametrize("payload", payloads())
def test_c_reads_what_python_sends(ccodec: ctypes.CDLL, payload: bytes) -> None:
    assert feed_c(ccodec, p.encode_frame(p.Frame(0x02, 200, payload))) == [(0x02, 200, payload)]


def test_c_reports_damage_and_resyncs(ccodec: ctypes.CDLL) -> None:
    good = p.encode_frame(p.Frame(0x01, 3, b"hi"))
    bad = bytearray(good)
    bad[2] ^= 0x01
    too_long = bytes([0xFF] * 1200) + b"\x00"
    got = feed_c(ccodec, bytes(bad) + too_long + b"\x00\x00" + good)
    assert got == [-p.ErrorCode.BAD_CRC, -p.ErrorCode.OVERFLOW, (0x01, 3, b"hi")]


def _oversized_frame(n: int) -> bytes:
    """A well-formed frame (valid length and CRC) whose payload is ``n`` bytes."""
    raw = struct.pack("<BBH", 0x84, 1, n & 0xFFFF) + bytes(range(1, 256)) * (n // 255 + 1)
    raw = raw[: 4 + n]
    return p.cobs_encode(raw + struct.pack("<I", zlib.crc32(raw))) + b"\x00"


@pytest.mark.parametrize("n", [p.MAX_PAYLOAD + 1, 2000, 4000])
def test_python_and_c_refuse_the_same_oversized_frames(ccodec: ctypes.CDLL, n: int) -> None:
    """The firmware keeps at most MAX_PAYLOAD bytes; the host accepted up to 4 KB."""
    frame = _oversized_frame(n)
    (item,) = p.FrameReader().feed(frame)
    assert isinstance(item, p.FrameError)
    assert feed_c(ccodec, frame) == [-p.ErrorCode.OVERFLOW]
    (ok,) = p.FrameReader().feed(_oversized_frame(p.MAX_PAYLOAD))
    assert isinstance(ok, p.Frame) and len(ok.payload) == p.MAX_PAYLOAD


def test_run_summary_pack_is_unpacks_inverse() -> None:
    s = p.RunSummary(2**40 + 5, "cycles", 12, 700, 8192, 10, 0xDEADBEEF, 1, 2**32 - 1)
    assert p.RunSummary.unpack(s.pack()) == s
    with pytest.raises(p.FrameError, match="expected 36"):
        p.RunSummary.unpack(s.pack()[:24])  # a protocol v1 reply
