"""The kernels' assembly files (firmware/kernels/*_arm.S): one switch, their frames declared.

GCC writes no call-graph file for assembly, so each entry point a kernel's C calls declares
its stack use on a "// stack: <function> <bytes>" line, which the firmware Makefile turns
into one for the static stack bound. A declaration that understated a frame would let the
bound (and the MPU guard check) miss bytes: here each one is held against what the code
pushes and reserves, and every global function must have one.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

KERNELS = Path(__file__).resolve().parents[1] / "firmware" / "kernels"
ARCH = ["-mcpu=cortex-m7", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-sp-d16"]
STACK_LINE = re.compile(r"^// stack: (\w+) (\d+)$", re.MULTILINE)
ASM_FILES = sorted(KERNELS.glob("*_arm.S"))

needs_arm = pytest.mark.skipif(
    shutil.which("arm-none-eabi-gcc") is None, reason="needs arm-none-eabi-gcc"
)


def _assemble(src: Path, out: Path, *flags: str) -> Path:
    obj = out / (src.stem + ".o")
    subprocess.run(
        ["arm-none-eabi-gcc", *ARCH, "-O2", "-Wall", "-Wextra", "-Werror", f"-I{KERNELS}",
         *flags, "-c", str(src), "-o", str(obj)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return obj


def _functions(obj: Path) -> dict[str, list[str]]:
    """Global functions -> their instructions (objdump's text, no addresses)."""
    syms = subprocess.run(["arm-none-eabi-nm", "-g", str(obj)], capture_output=True,
                          text=True, check=True).stdout  # fmt: skip
    names = {line.split()[-1] for line in syms.splitlines() if " T " in line}
    dump = subprocess.run(["arm-none-eabi-objdump", "-d", "--no-show-raw-insn", str(obj)],
                          capture_output=True, text=True, check=True).stdout  # fmt: skip
    funcs: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in dump.splitlines():
        if m := re.match(r"^[0-9a-f]+ <(\w+)>:$", line):
            current = funcs.setdefault(m.group(1), []) if m.group(1) in names else None
        elif current is not None and (m := re.match(r"^\s+[0-9a-f]+:\s+(.*)$", line)):
            current.append(m.group(1))
    return funcs


def _deepest(code: list[str]) -> int:
    """The most bytes the function's own pushes and SP subtractions hold at once, walking
    its code in order (the entry points push first and pop on each exit)."""
    depth = deepest = 0
    for ins in code:
        op, _, args = ins.partition("\t")
        regs = len(re.findall(r"\b(?:r\d+|sl|fp|ip|lr|pc)\b", args.split("{")[-1]))
        if op.startswith("push") or (op.startswith("stmdb") and args.startswith("sp!")):
            depth += 4 * regs
        elif op.startswith("pop") or (op.startswith("ldmia") and args.startswith("sp!")):
            depth -= 4 * regs
        elif m := re.match(r"sp, (?:sp, )?#(\d+)", args):
            depth += int(m.group(1)) if op.startswith("sub") else -int(m.group(1))
        deepest = max(deepest, depth)
    return deepest


@needs_arm
@pytest.mark.parametrize("src", ASM_FILES, ids=[p.name for p in ASM_FILES])
def test_every_entry_point_declares_its_frame(src: Path, tmp_path: Path) -> None:
    declared = {name: int(size) for name, size in STACK_LINE.findall(src.read_text())}
    funcs = _functions(_assemble(src, tmp_path))
    # the sparse tiles' probes are table-jump targets inside a tile routine, on its frame
    called = {name for name in funcs if not name.endswith("_probe")}
    assert set(declared) == called
    assert {name: _deepest(funcs[name]) for name in declared} == declared


@needs_arm
@pytest.mark.parametrize("src", ASM_FILES, ids=[p.name for p in ASM_FILES])
def test_the_switch_leaves_an_empty_object(src: Path, tmp_path: Path) -> None:
    """TF_ARM_DSP_ASM=0 (or a core without the DSP extension): the .S is empty, the C runs."""
    for flags in (["-DTF_ARM_DSP_ASM=0"], ["-mcpu=cortex-m3"]):
        assert _functions(_assemble(src, tmp_path, *flags)) == {}


def test_one_switch() -> None:
    """No kernel keeps a switch of its own between its assembly and its C."""
    for path in sorted(KERNELS.glob("*.[cS]")):
        text = path.read_text()
        assert not re.search(r"#\s*define\s+\w*_ASM\s", text), path.name
        if "__asm__" in text:
            assert "TF_ARM_DSP_ASM" in text, f"{path.name}: assembly outside the switch"
