"""The stm32f746 firmware builds with the real arm-none-eabi-gcc and has a bootable layout.

It cannot run here (no STM32F7 emulator in QEMU, no board), so this checks what a bad build
would break first on silicon: the vector table at the start of flash, the reset vector and the
entry point, the one interrupt the board uses, and the memory regions.
"""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from tinyformer.boards import FLASH_BUDGET, RAM_BUDGET
from tinyformer.compiler.firmware import Firmware, build

FLASH_BASE = 0x0800_0000
RAM_BASE = 0x2000_0000
N_IRQS = 98  # STM32F746 interrupt lines (RM0385 table 40)
USART3_IRQ = 39

# A one-layer model written against tf_model.h alone, so the board build does not depend on
# the code generator: output[i] = input[i] + 1.
TINY_MODEL_C = """\
#include <stdint.h>

#include "tf_model.h"

static int8_t arena[64];
static uint32_t layer_counts[1];

const tf_model_info_t tf_model_info = {
    "tiny_add_one", {0x7f, 0x1d, 0x2b}, 32, 32, sizeof arena, 1, layer_counts,
};

int8_t *tf_model_input(void) { return arena; }
const int8_t *tf_model_output(void) { return arena + 32; }

void tf_model_run(void)
{
    for (int i = 0; i < 32; i++) {
        arena[32 + i] = (int8_t)(arena[i] + 1);
    }
    tf_layer_done(0);
}
"""

needs_gcc = pytest.mark.skipif(
    shutil.which("arm-none-eabi-gcc") is None, reason="arm-none-eabi-gcc is not installed"
)
pytestmark = needs_gcc


def build_tiny_firmware(root: Path) -> Firmware:
    """The stm32f746 firmware around TINY_MODEL_C, built in ``root`` (used by other tests)."""
    (root / "model").mkdir(parents=True, exist_ok=True)
    (root / "model" / "model.c").write_text(TINY_MODEL_C)
    return build(root / "model", root / "build", board="stm32f746")


@pytest.fixture(scope="module")
def firmware(tmp_path_factory: pytest.TempPathFactory) -> Firmware:
    return build_tiny_firmware(tmp_path_factory.mktemp("stm32f746"))


def _symbols(elf: ELFFile) -> dict[str, int]:
    return {s.name: s["st_value"] for s in elf.get_section_by_name(".symtab").iter_symbols()}


def _vectors(path: Path) -> tuple[int, list[int], dict[str, int], int]:
    with path.open("rb") as fh:
        elf = ELFFile(fh)
        sec = elf.get_section_by_name(".isr_vector")
        data = sec.data()
        words = list(struct.unpack(f"<{len(data) // 4}I", data))
        return sec["sh_addr"], words, _symbols(elf), elf.header["e_entry"]


def test_vector_table_sits_at_the_start_of_flash(firmware: Firmware) -> None:
    addr, words, syms, _ = _vectors(firmware.elf)
    assert addr == FLASH_BASE
    assert len(words) == 16 + N_IRQS
    assert syms["tf_vector_table"] == FLASH_BASE
    # VTOR needs the table aligned to the next power of two of its size (512 bytes here).
    assert FLASH_BASE % 512 == 0


def test_reset_vector_and_entry_point_are_reset_handler(firmware: Firmware) -> None:
    _, words, syms, entry = _vectors(firmware.elf)
    reset = syms["Reset_Handler"]
    assert entry == reset
    assert reset & 1, "Thumb bit must be set in a Cortex-M vector"
    assert words[1] == reset
    assert FLASH_BASE <= reset < FLASH_BASE + FLASH_BUDGET
    assert words[0] == syms["__stack_top"]
    assert words[0] % 8 == 0
    assert RAM_BASE < words[0] <= RAM_BASE + RAM_BUDGET


def test_usart3_is_the_only_live_interrupt(firmware: Firmware) -> None:
    _, words, syms, _ = _vectors(firmware.elf)
    irqs = words[16:]
    assert irqs[USART3_IRQ] == syms["USART3_IRQHandler"] | 1
    others = {w for i, w in enumerate(irqs) if i != USART3_IRQ}
    assert others == {syms["Default_Handler"] | 1}
    assert words[3] == syms["HardFault_Handler"] | 1
    assert words[15] == syms["SysTick_Handler"] | 1


def test_sections_fit_their_regions(firmware: Firmware) -> None:
    sizes = firmware.info.sizes
    assert 1024 < sizes.flash_bytes < FLASH_BUDGET
    assert 0 < sizes.static_ram_bytes + sizes.stack_reserved_bytes < RAM_BUDGET
    assert sizes.stack_reserved_bytes == firmware.stack_size
    with firmware.elf.open("rb") as fh:
        for seg in ELFFile(fh).iter_segments():
            if seg["p_type"] != "PT_LOAD" or seg["p_filesz"] == 0:
                continue
            # Everything that gets flashed lies in flash (.data's load image included).
            lma = seg["p_paddr"]
            assert FLASH_BASE <= lma <= lma + seg["p_filesz"] <= FLASH_BASE + FLASH_BUDGET


def test_board_identity_strings(firmware: Firmware) -> None:
    data = firmware.elf.read_bytes()
    assert b"stm32f746\x00" in data
    assert firmware.board == "stm32f746"


def test_the_elf_names_its_model_hash(firmware: Firmware) -> None:
    """The hash a session expects the device to report (tf_model_info.hash, in flash)."""
    assert firmware.info.model_hash == "7f1d2b" + "00" * 29


def test_kernels_use_no_double_precision(tmp_path: Path) -> None:
    """The STM32F746's FPU is single precision: a double instruction would fault there, and
    a double library routine would be slow. Every kernel, compiled as the firmware is."""
    import re
    import subprocess

    from tinyformer.compiler.firmware import FIRMWARE_DIR

    makefile = (FIRMWARE_DIR / "Makefile").read_text()
    arch = re.search(r"^ARCH := (.*)$", makefile, re.M).group(1).split()
    assert "-mfpu=fpv5-sp-d16" in arch
    kernels = FIRMWARE_DIR / "kernels"
    for src in sorted(kernels.glob("*.c")):
        obj = tmp_path / f"{src.stem}.o"
        subprocess.run(
            ["arm-none-eabi-gcc", *arch, "-O2", f"-I{kernels}", f"-I{FIRMWARE_DIR / 'common'}",
             "-c", str(src), "-o", str(obj)],
            check=True, capture_output=True,
        )  # fmt: skip
        code = subprocess.run(["arm-none-eabi-objdump", "-d", str(obj)], check=True,
                              capture_output=True, text=True).stdout  # fmt: skip
        undefined = subprocess.run(["arm-none-eabi-nm", "-u", str(obj)], check=True,
                                   capture_output=True, text=True).stdout  # fmt: skip
        assert ".f64" not in code, src.name
        assert not re.search(r"__aeabi_(d|[u]?l2f|[u]?ldivmod)|\bsqrt", undefined), (
            src.name,
            undefined,
        )
