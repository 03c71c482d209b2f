"""A fake STM32F746 board: a serial port whose far end runs the firmware, and its probe.

The serial port is a pseudo-terminal that pyserial opens like /dev/ttyACM0. Its far end is
the host build of the firmware last "flashed" (host_firmware.py: tf_app.c, the protocol,
the kernels and the model, from the ELF's own sources), started by a reset and stopped by a
halt, as the STM32 runs what its flash holds. The debug probe is what cannot exist here:
pyocd_standin.py replaces pyOCD's probe side in any process that sets TINYFORMER_FAKE_PROBE to
this board's control socket, and drives the board through it (halt, program an ELF, reset).

    PYTHONPATH=$PWD:$PWD/hil/fake_board python hil/fake_board/fake_board.py WORKDIR
prints one JSON line {"port": ..., "probe": ..., "socket": ...} and serves until killed:
    TINYFORMER_FAKE_PROBE=SOCKET PYTHONPATH=$PWD:$PWD/hil/fake_board \
        pytest hil --target board --port PORT --probe PROBE
"""

from __future__ import annotations

import json
import os
import signal
import socketserver
import subprocess
import sys
import termios
import tty
from pathlib import Path

from host_firmware import HostBuildError, build_host

from tinyformer.hil.targets.emulator import spawn

PROBE_ID = "0669FF504955857567215FAE"  # an ST-LINK/V2-1's 24 hex digits


class FakeBoard:
    def __init__(self, workdir: Path, probe_id: str = PROBE_ID) -> None:
        self.workdir = workdir
        self.probe_id = probe_id
        self.master, self._slave = os.openpty()  # the board keeps the slave open: no hangups
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        self.flashed: Path | None = None  # the host build of what the flash holds
        self.running: subprocess.Popen[bytes] | None = None
        self.log: list[dict[str, object]] = []  # what the probe was asked, for the tests

    def command(self, request: dict[str, object]) -> dict[str, object]:
        self.log.append(request)
        op = request["op"]
        if op == "probe":
            return {"unique_id": self.probe_id}
        if op == "log":
            return {"log": self.log}
        if op == "open":
            return {}
        if op == "halt":
            self.halt()
            return {}
        if op == "program":
            self.halt()
            try:
                self.flashed = build_host(Path(str(request["elf"])), self.workdir / "cache")
            except (HostBuildError, OSError) as exc:
                return {"error": str(exc)}
            return {}
        if op == "reset":
            self.halt()
            # bytes sent to a halted core are lost, as on the board's UART
            termios.tcflush(self.master, termios.TCIFLUSH)
            if self.flashed is not None:
                # dies with the board (spawn: it is started from the main thread)
                self.running = spawn([str(self.flashed)], stdin=self.master,
                                     stdout=self.master)  # fmt: skip
            return {}
        return {"error": f"unknown request {op!r}"}

    def halt(self) -> None:
        if self.running is not None:
            self.running.kill()
            self.running.wait()
            self.running = None

    def close(self) -> None:
        """Unplug: the firmware stops and the port goes away."""
        self.halt()
        os.close(self.master)
        os.close(self._slave)


def serve(workdir: Path) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    board = FakeBoard(workdir)
    sock = workdir / "probe.sock"
    sock.unlink(missing_ok=True)

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            for line in self.rfile:
                reply = board.command(json.loads(line))
                self.wfile.write(json.dumps(reply).encode() + b"\n")

    # One request at a time, on the main thread: the firmware it starts dies with it.
    server = socketserver.UnixStreamServer(str(sock), Handler)

    def stop(*_: object) -> None:
        raise SystemExit(0)  # the finally below unplugs the board

    signal.signal(signal.SIGTERM, stop)
    print(json.dumps({"port": board.port, "probe": board.probe_id, "socket": str(sock)}),
          flush=True)  # fmt: skip
    try:
        server.serve_forever()
    finally:
        board.close()


if __name__ == "__main__":
    serve(Path(sys.argv[1]))
