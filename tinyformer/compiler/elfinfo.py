"""What an ELF tells without running it: flash and static RAM use, symbols for addresses."""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from tinyformer.compiler.errors import FirmwareBuildError

SHF_ALLOC = 0x2
SHT_NOBITS = "SHT_NOBITS"


@dataclass(frozen=True)
class StackLayout:
    """Where the stack and its MPU guard lie (firmware/common/sections.ld symbols).

    The stack is ``stack_limit..stack_top`` and grows down; the guard, a no-access MPU region,
    is ``guard_start..guard_end`` right below it. ``fault_stack_bytes``: the fault handler's
    own stack (tf_fault.c), 0 when the firmware has none.
    """

    guard_start: int
    guard_end: int
    stack_limit: int
    stack_top: int
    fault_stack_bytes: int = 0

    @property
    def guard_bytes(self) -> int:
        return self.guard_end - self.guard_start

    @property
    def stack_bytes(self) -> int:
        return self.stack_top - self.stack_limit


@dataclass(frozen=True)
class ElfSizes:
    flash_bytes: int  # everything stored in flash: code, constants, .data's initial values
    static_ram_bytes: int  # .data + .bss (the stack is measured separately)
    stack_reserved_bytes: int


def _symbols(elf: ELFFile) -> SymbolTableSection | None:
    table = elf.get_section_by_name(".symtab")
    return table if isinstance(table, SymbolTableSection) else None


class ElfInfo:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            with self.path.open("rb") as fh:
                elf = ELFFile(fh)
                self.sizes = self._sizes(elf)
                self._symbols = self._function_symbols(elf)
                self.model_hash = self._model_hash(elf)
                self.stack_layout = self._stack_layout(elf)
                self.preload_region = self._preload_region(elf)
        except (OSError, ELFError) as exc:
            raise FirmwareBuildError(f"cannot read firmware ELF {self.path}: {exc}") from exc
        self._starts = [s[0] for s in self._symbols]

    @staticmethod
    def _sizes(elf: ELFFile) -> ElfSizes:
        flash = ram = stack = 0
        for sec in elf.iter_sections():
            if not sec["sh_flags"] & SHF_ALLOC or sec["sh_size"] == 0:
                continue
            if sec.name == ".stack":
                stack = sec["sh_size"]
            elif sec.name in (".data", ".bss"):
                ram += sec["sh_size"]
            if sec["sh_type"] != SHT_NOBITS:
                flash += sec["sh_size"]  # .data counts too: its initial values live in flash
        return ElfSizes(flash, ram, stack)

    @staticmethod
    def _function_symbols(elf: ELFFile) -> list[tuple[int, int, str]]:
        table = _symbols(elf)
        if table is None:
            return []
        syms = [
            (s["st_value"] & ~1, s["st_size"], s.name)
            for s in table.iter_symbols()
            if s["st_info"]["type"] == "STT_FUNC" and s.name
        ]
        return sorted(syms)

    @staticmethod
    def _model_hash(elf: ELFFile) -> str | None:
        """tf_model_info.hash (tf_model.h: after the name pointer), hex; None without it."""
        table = _symbols(elf)
        syms = table.get_symbol_by_name("tf_model_info") if table is not None else None
        if not syms or not isinstance(syms[0]["st_shndx"], int):
            return None
        section = elf.get_section(syms[0]["st_shndx"])
        if section["sh_type"] == SHT_NOBITS:
            return None
        start = syms[0]["st_value"] - section["sh_addr"] + elf.elfclass // 8
        digest = section.data()[start : start + 32]
        return digest.hex() if len(digest) == 32 else None

    @staticmethod
    def _stack_layout(elf: ELFFile) -> StackLayout | None:
        """The stack and its guard; None for a firmware built without a guard."""
        table = _symbols(elf)
        if table is None:
            return None
        names = ("__stack_guard_start", "__stack_guard_end", "__stack_limit", "__stack_top")
        found = [table.get_symbol_by_name(n) for n in names]
        if not all(found):
            return None
        fault_stack = table.get_symbol_by_name("tf_fault_stack")
        guard_start, guard_end, limit, top = (syms[0]["st_value"] for syms in found if syms)
        return StackLayout(
            guard_start,
            guard_end,
            limit,
            top,
            fault_stack_bytes=fault_stack[0]["st_size"] if fault_stack else 0,
        )

    @staticmethod
    def _preload_region(elf: ELFFile) -> tuple[int, int]:
        """(address, bytes) of the memory an emulator may fill with inputs before boot
        (TF_MSG_LOAD, sections.ld); 0 bytes on silicon or in a firmware without it."""
        table = _symbols(elf)
        if table is None:
            return 0, 0
        found = [table.get_symbol_by_name(n) for n in ("__tf_preload_start", "__tf_preload_end")]
        if not all(found):
            return 0, 0
        start, end = (syms[0]["st_value"] for syms in found if syms)
        return start, max(end - start, 0)

    def describe_pc(self, pc: int) -> str:
        """'0x00000abc (tf_model_run+0x12)' when a function contains pc."""
        i = bisect.bisect_right(self._starts, pc) - 1
        if i >= 0:
            start, size, name = self._symbols[i]
            if start <= pc < start + max(size, 1):
                return f"0x{pc:08x} ({name}+0x{pc - start:x})"
        return f"0x{pc:08x}"
