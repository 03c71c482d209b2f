"""The model's own share of the firmware's flash, from the linker map: the code of its
kernels and of the generated model.c, and its constants (weights, bias, tables). The rest
(startup, protocol, UART, fault handler) is the test firmware's, which an application
linking the C library would not carry."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

# An input section in GNU ld's map: " .text.name  0xADDR  0xSIZE  obj/file.o", the name alone
# on the line before when it is long.
_SECTION = re.compile(r"^ (\.\S+)?\s+0x[0-9a-f]+\s+0x([0-9a-f]+)\s+(\S+\.o)$")
_NAME_ALONE = re.compile(r"^ (\.\S+)$")
_FLASH = (".text", ".rodata", ".data")  # .data's initial values are stored in flash too


@dataclass(frozen=True)
class ModelFlash:
    code_bytes: int  # the kernels' and model.c's code
    data_bytes: int  # model.c's constants: weights, bias, requantization tables


def model_flash(map_file: Path) -> ModelFlash:
    """Sum the kept input sections of the kernel objects (``kernels_*.o``) and of the model
    (``model_model.o``) that live in flash."""
    code = data = 0
    name = ""
    in_map = False
    for line in Path(map_file).read_text().splitlines():
        if not in_map:
            in_map = line.startswith("Linker script and memory map")
            continue
        alone = _NAME_ALONE.match(line)
        if alone:
            name = alone.group(1)
            continue
        m = _SECTION.match(line)
        if not m:
            name = ""
            continue
        section, size, obj = m.group(1) or name, int(m.group(2), 16), Path(m.group(3)).name
        name = ""
        if not section.startswith(_FLASH) or not obj.startswith(("kernels_", "model_")):
            continue
        if section.startswith(".text") or obj.startswith("kernels_"):
            code += size  # a kernel's own tables count with its code
        else:
            data += size
    return ModelFlash(code, data)
