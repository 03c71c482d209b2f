"""A lossy serial link on purpose: a TCP proxy that damages bytes in both directions.

Placed between the harness and an emulator's UART socket, it stands for a noisy USB serial
line: each byte is, with the direction's byte error rate, dropped or given one flipped bit
(half each), from a seeded generator so a run can be repeated. It is what the link bench and
the fault tests run the real firmware through; nothing else in the harness knows it is there.
"""

from __future__ import annotations

import contextlib
import random
import select
import socket
import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class LinkFaults:
    to_device: float = 0.0  # byte error rate, host -> device
    to_host: float = 0.0  # byte error rate, device -> host
    seed: int = 0


@dataclass
class Direction:
    rate: float
    rng: random.Random
    passed: int = 0  # bytes that went through (damaged or not)
    damaged: int = 0

    def damage(self, data: bytes) -> bytes:
        self.passed += len(data)
        if self.rate <= 0:
            return data
        out = bytearray()
        for byte in data:
            if self.rng.random() >= self.rate:
                out.append(byte)
                continue
            self.damaged += 1
            if self.rng.random() < 0.5:
                out.append(byte ^ 1 << self.rng.randrange(8))
        return bytes(out)


class LossyProxy:
    """Listens on a free local port; the first client is bridged to ``upstream_port``."""

    def __init__(self, upstream_port: int, faults: LinkFaults) -> None:
        self.upstream_port = upstream_port
        rng = random.Random(faults.seed)
        self.to_device = Direction(faults.to_device, random.Random(rng.getrandbits(64)))
        self.to_host = Direction(faults.to_host, random.Random(rng.getrandbits(64)))
        self._server = socket.socket()
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(1)
        self.port: int = self._server.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="lossy-link", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self._server.settimeout(0.1)
        while not self._stop.is_set():
            try:
                host, _ = self._server.accept()
                break
            except TimeoutError:
                continue
        else:
            return
        try:
            device = socket.create_connection(("127.0.0.1", self.upstream_port))
        except OSError:  # the emulator is gone: the harness sees the link close
            host.close()
            return
        with host, device:
            for s in (host, device):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            ends = {host: (device, self.to_device), device: (host, self.to_host)}
            while not self._stop.is_set():
                ready, _, _ = select.select(list(ends), [], [], 0.1)
                for src in ready:
                    dst, direction = ends[src]
                    try:
                        data = src.recv(4096)
                    except OSError:
                        data = b""
                    if not data:  # one end closed: close the other, as a cable pulled would
                        return
                    with contextlib.suppress(OSError):
                        dst.sendall(direction.damage(data))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._server.close()
