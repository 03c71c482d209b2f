"""RenodeTarget without Renode.

Renode is not installed here (it is not on PyPI or in Debian), so the one thing mocked is the
`renode` program itself: a small executable put first on PATH that reads the generated .resc
the way the real one would, listens on the socket port the script names, sends the BOOT
frame and answers INFO as the firmware it loaded. The script text, the command line, the
socket link, the boot wait and the process-group kill are the real code paths.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import sys
import textwrap
import time
from pathlib import Path

import pytest
from test_stm32f746_build import build_tiny_firmware

from tinyformer.compiler.firmware import FIRMWARE_DIR, Firmware
from tinyformer.hil import protocol as p
from tinyformer.hil.errors import TargetUnavailable
from tinyformer.hil.targets.renode import RenodeTarget

RENODE_DIR = FIRMWARE_DIR.parent / "renode"
BOOT_FRAME = p.encode_frame(p.Frame(p.Msg.BOOT, 0))


@pytest.fixture(scope="module")
def firmware(tmp_path_factory: pytest.TempPathFactory) -> Firmware:
    # Only the session tests need it (the client reads the ELF's symbols); scripts need a path.
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("arm-none-eabi-gcc is not installed")
    return build_tiny_firmware(tmp_path_factory.mktemp("renode_fw"))


def test_without_renode_on_path_the_error_is_one_fixed_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, firmware: Firmware
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no renode anywhere
    target = RenodeTarget(script_dir=tmp_path / "generated")
    with pytest.raises(TargetUnavailable) as exc, target.session(firmware):
        pass
    assert str(exc.value) == (
        "Renode is not installed (no `renode` on PATH); install it from renode.io "
        "or use --target qemu"
    )
    assert not (tmp_path / "generated").exists()  # nothing written for a run that cannot start


def test_script_names_the_elf_the_port_and_usart3(tmp_path: Path) -> None:
    elf = tmp_path / "build" / "firmware.elf"
    target = RenodeTarget(script_dir=tmp_path / "generated")
    path = target.write_script(elf, 45678, "case")
    assert path == tmp_path / "generated" / "case.resc"
    lines = path.read_text().splitlines()
    assert f"sysbus LoadELF @{elf.resolve()}" in lines
    assert 'emulation CreateServerSocketTerminal 45678 "tf_uart" false' in lines
    assert "connector Connect sysbus.usart3 tf_uart" in lines
    assert "machine LoadPlatformDescription @platforms/cpus/stm32f746.repl" in lines
    assert lines.index("sysbus.cpu PerformanceInMips 216") < lines.index("start")
    assert any("Miscellaneous.DWT @ sysbus 0xE0001000 { frequency: 216000000 }" in ln
               for ln in lines)  # fmt: skip
    assert [ln for ln in lines if ln.strip()][-1] == "start"


def test_script_follows_the_performance_setting(tmp_path: Path) -> None:
    text = RenodeTarget(script_dir=tmp_path, performance_mips=100).script_text(
        tmp_path / "f.elf", 1234
    )
    assert "sysbus.cpu PerformanceInMips 100" in text
    assert "{ frequency: 100000000 }" in text


def test_command_line(tmp_path: Path) -> None:
    script = tmp_path / "s.resc"
    assert RenodeTarget(renode="/opt/renode/renode").command(script) == [
        "/opt/renode/renode", "--disable-xwt", "--console", "-e", f"include @{script.resolve()}",
    ]  # fmt: skip


def _fake_renode(bin_dir: Path, record: Path) -> None:
    """A `renode` that serves the .resc's socket port and sends BOOT, until it is killed."""
    bin_dir.mkdir()
    exe = bin_dir / "renode"
    exe.write_text(
        f"#!{sys.executable}\n"
        + textwrap.dedent(
            f"""\
            import re, socket, sys, time
            args = sys.argv[1:]
            assert args[:3] == ["--disable-xwt", "--console", "-e"], args
            script = re.fullmatch(r"include @(.+)", args[3]).group(1)
            text = open(script).read()
            port = int(re.search(r"CreateServerSocketTerminal (\\d+) ", text).group(1))
            elf = re.search(r"sysbus LoadELF @(\\S+)", text).group(1)
            with open({str(record)!r}, "a") as fh:
                fh.write(f"{{__import__('os').getpid()}} {{port}} {{script}} {{elf}}\\n")
            srv = socket.socket()
            srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            srv.bind(("127.0.0.1", port))
            srv.listen(1)
            conn, _ = srv.accept()
            conn.sendall(bytes.fromhex({BOOT_FRAME.hex()!r}))
            # then INFO, as the firmware it loaded (the client checks the model hash)
            from tinyformer.hil import protocol as p
            from tinyformer.compiler.elfinfo import ElfInfo
            info = p.Info(p.PROTOCOL_VERSION, "cycles", 216_000_000, 32, 32, 64, 8192, 1,
                          p.MAX_PAYLOAD, ElfInfo(elf).model_hash, "stm32f746", "tiny", "fake")
            reader = p.FrameReader()
            while data := conn.recv(4096):
                for f in reader.feed(data):
                    if isinstance(f, p.Frame) and f.type == p.Msg.INFO:
                        conn.sendall(p.encode_frame(p.Frame(p.Msg.INFO_R, f.seq, info.pack())))
            while True:
                time.sleep(1)
            """
        )
    )
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)


def test_session_runs_the_script_connects_and_kills_renode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, firmware: Firmware
) -> None:
    record = tmp_path / "calls.txt"
    _fake_renode(tmp_path / "bin", record)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    target = RenodeTarget(script_dir=tmp_path / "generated", start_timeout=20, boot_timeout=5)
    with target.session(firmware) as client:
        assert client.booted
        pid, port, script, elf = record.read_text().split()
        assert Path(elf) == firmware.elf.resolve()
        assert client.port.port == f"socket://127.0.0.1:{port}"
        assert Path(script).parent == tmp_path / "generated" and Path(script).is_file()
    assert not Path(script).exists()  # per-session script removed (keep_script=False)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the renode process outlived its session")


def test_robot_suite_expects_the_real_boot_frame() -> None:
    suite = (RENODE_DIR / "tinyformer.robot").read_text()
    match = re.search(r"^\$\{BOOT_FRAME\}\s+([0-9a-f ]+)$", suite, re.M)
    assert match, "tinyformer.robot lost its BOOT_FRAME variable"
    assert bytes.fromhex(match.group(1)) == BOOT_FRAME
    assert "sysbus.usart3" in suite and "binaryMode=true" in suite


def test_hand_written_script_matches_the_generated_one(tmp_path: Path) -> None:
    """The example .resc sets up the same machine as the one the harness writes."""
    example = (RENODE_DIR / "stm32f746.resc").read_text()
    generated = RenodeTarget(script_dir=tmp_path).script_text(tmp_path / "f.elf", 1)
    for key in ("LoadPlatformDescription @", "Miscellaneous.DWT", "PerformanceInMips",
                "connector Connect sysbus.usart3"):  # fmt: skip
        lines = {ln.strip() for ln in generated.splitlines() if key in ln}
        assert lines and lines <= {ln.strip() for ln in example.splitlines()}, key
