"""Robot Framework library of tinyformer.robot: the protocol frames of one inference.

Every frame comes from tinyformer's own protocol module (tinyformer/hil/protocol.py) and the
expected output from the numpy reference, for the folder that `tinyformer compile MODEL -o OUT
--board stm32f746` writes: OUT/model.tfir (the model) and OUT/build/firmware.elf (its ELF).
The input is the one `tinyformer run OUT` sends (seed 0). Requests are lists of "0xNN" bytes
for Renode's `Send Key To Uart`; replies are hex strings for `Wait For Bytes On Uart`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from tinyformer.engine import ir
from tinyformer.engine.demo import demo_input
from tinyformer.engine.reference import outputs
from tinyformer.hil import protocol as p

CHUNK = p.MAX_PAYLOAD - 4  # INPUT and DATA carry a 4-byte offset before the bytes
INPUT_SEQ, RUN_SEQ, OUTPUT_SEQ, COUNTS_SEQ = 1, 100, 101, 150


def _bytes(frame: p.Frame) -> list[str]:
    return [f"0x{b:02x}" for b in p.encode_frame(frame)]


def _hex(frame: p.Frame) -> str:
    return p.encode_frame(frame).hex(" ")


def _input(out: str) -> bytes:
    graph = ir.load(Path(out) / "model.tfir")
    return demo_input(graph, 0).tobytes()


def _output(out: str) -> bytes:
    graph = ir.load(Path(out) / "model.tfir")
    return outputs(graph, demo_input(graph, 0)).tobytes()


def _exchange(request: p.Msg, reply: p.Msg, data: bytes, what: int | None, seq: int) -> list:
    """(request bytes, expected reply hex) for each piece of ``data``."""
    pairs = []
    for i, at in enumerate(range(0, len(data), CHUNK)):
        piece = data[at : at + CHUNK]
        if request == p.Msg.INPUT:
            req = p.Frame(request, seq + i, p.input_payload(at, piece))
            rep = p.Frame(reply, seq + i, (at + len(piece)).to_bytes(4, "little"))
        else:
            assert what is not None
            req = p.Frame(request, seq + i, p.read_payload(p.ReadWhat(what), at, len(piece)))
            rep = p.Frame(reply, seq + i, at.to_bytes(4, "little") + piece)
        pairs.append([_bytes(req), _hex(rep)])
    return pairs


def input_exchange(out: str) -> list:
    """INPUT requests for the model's input and the ACK each must get."""
    return _exchange(p.Msg.INPUT, p.Msg.ACK, _input(out), None, INPUT_SEQ)


def run_request(out: str) -> list[str]:
    """RUN on the input just sent (named by its CRC, as the firmware requires)."""
    return _bytes(p.Frame(p.Msg.RUN, RUN_SEQ, p.run_payload(_input(out))))


def output_exchange(out: str) -> list:
    """READ requests for the output and the DATA replies that carry the reference's output."""
    return _exchange(p.Msg.READ, p.Msg.DATA, _output(out), p.ReadWhat.OUTPUT, OUTPUT_SEQ)


def output_sha256(out: str) -> str:
    """sha256 of the reference output (what `tinyformer run` prints as output_sha256)."""
    return hashlib.sha256(_output(out)).hexdigest()


def layer_counts_address(out: str) -> list[int]:
    """[address, layers]: where the firmware keeps its per-layer counts (the model's
    ``layer_counts`` array, which RUN fills and READ LAYER_COUNTS sends)."""
    elf = Path(out) / "build" / "firmware.elf"
    with open(elf, "rb") as f:
        symtab = ELFFile(f).get_section_by_name(".symtab")
        assert isinstance(symtab, SymbolTableSection), f"{elf} has no symbol table"
        found = symtab.get_symbol_by_name("layer_counts")
        if not found:
            raise AssertionError(f"{elf} has no layer_counts symbol: not a TinyFormer model")
        symbol = found[0]
        return [int(symbol["st_value"]), int(symbol["st_size"]) // 4]


def layer_counts_exchange(*counts: int) -> list:
    """READ LAYER_COUNTS and the DATA reply that carries ``counts``."""
    data = b"".join(int(c).to_bytes(4, "little") for c in counts)
    return _exchange(p.Msg.READ, p.Msg.DATA, data, p.ReadWhat.LAYER_COUNTS, COUNTS_SEQ)
