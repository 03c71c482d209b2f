"""pyOCD's probe side, answered by the fake board (fake_board.py) instead of USB.

What BoardTarget calls is replaced, nothing else: listing probes (ConnectHelper's contains
match on the unique id, as pyOCD does), opening a session (the target name is checked in
pyOCD's own target registry; a CMSIS pack must exist, as pyOCD reads it), resets and
programming an ELF (the board builds it for the host and runs it after the next reset).
Errors are pyOCD's own exception types, so BoardTarget reports them as on a real probe.
"""

from __future__ import annotations

import json
import os
import socket
from typing import Any

from pyocd.core import exceptions as pyocd_errors
from pyocd.core.helpers import ConnectHelper
from pyocd.flash import file_programmer
from pyocd.target import TARGET


def _ask(sock_path: str, **request: Any) -> dict[str, Any]:
    with socket.socket(socket.AF_UNIX) as s:
        try:
            s.connect(sock_path)
        except OSError as exc:  # the board is unplugged: its probe is gone mid-session
            raise pyocd_errors.ProbeDisconnected(f"fake board at {sock_path}: {exc}") from None
        s.sendall(json.dumps(request).encode() + b"\n")
        reply: dict[str, Any] = json.loads(s.makefile().readline())
    if "error" in reply:
        raise pyocd_errors.TransferError(reply["error"])
    return reply


class FakeProbe:
    description = "STM32 STLink (fake board)"

    def __init__(self, unique_id: str) -> None:
        self.unique_id = unique_id


class FakeCoreTarget:
    def __init__(self, sock_path: str) -> None:
        self._sock = sock_path

    def reset_and_halt(self) -> None:
        _ask(self._sock, op="halt")

    def reset(self) -> None:
        _ask(self._sock, op="reset")


class FakeSession:
    def __init__(self, sock_path: str, probe: FakeProbe, target: str | None, options: Any):
        self._sock = sock_path
        self.probe = probe
        self.target_name = target
        self.options = dict(options or {})
        self.target = FakeCoreTarget(sock_path)
        self.is_open = False

    def open(self) -> None:
        pack = self.options.get("pack")
        if pack is not None and not os.path.isfile(pack):
            raise FileNotFoundError(2, "No such file or directory", pack)
        if pack is None and (self.target_name or "").lower() not in TARGET:
            raise pyocd_errors.TargetSupportError(
                f"Target type {self.target_name} not recognized. Use 'pyocd list --targets' to "
                "see currently available target types."
            )
        _ask(self._sock, op="open", target=self.target_name, pack=pack,
             unique_id=self.probe.unique_id)  # fmt: skip
        self.is_open = True

    def close(self) -> None:
        self.is_open = False


def install(sock_path: str) -> None:
    """Point pyOCD's probe side at the fake board whose control socket is ``sock_path``."""

    def get_all_connected_probes(
        blocking: bool = True, unique_id: str | None = None, print_wait_message: bool = True
    ) -> list[FakeProbe]:
        try:
            uid = _ask(sock_path, op="probe")["unique_id"]
        except pyocd_errors.ProbeDisconnected:
            return []  # no board plugged in
        if unique_id is not None and unique_id.lower() not in uid.lower():
            return []
        return [FakeProbe(uid)]

    def session_with_chosen_probe(
        unique_id: str | None = None,
        target_override: str | None = None,
        options: Any = None,
        **_: Any,
    ) -> FakeSession | None:
        probes = get_all_connected_probes(blocking=False, unique_id=unique_id)
        if not probes:
            return None
        return FakeSession(sock_path, probes[0], target_override, options)

    class FakeFileProgrammer:
        def __init__(self, session: FakeSession, **_: Any) -> None:
            if not session.is_open:
                raise pyocd_errors.Error("session is not open")
            self.session = session

        def program(self, path: str, file_format: str | None = None, **_: Any) -> None:
            if file_format not in (None, "elf"):
                raise pyocd_errors.Error(f"the fake board programs ELF files, not {file_format}")
            _ask(sock_path, op="program", elf=os.path.abspath(path))

    ConnectHelper.get_all_connected_probes = staticmethod(get_all_connected_probes)  # type: ignore[method-assign,assignment]
    ConnectHelper.session_with_chosen_probe = staticmethod(session_with_chosen_probe)  # type: ignore[method-assign,assignment]
    file_programmer.FileProgrammer = FakeFileProgrammer  # type: ignore[misc,assignment]
