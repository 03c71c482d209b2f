"""A serial port wrapper that damages host->device bytes, as a flaky real link would.

QEMU never drops bytes, so flow control and retries are tested by injecting the faults here.
"""

from __future__ import annotations

import random


class FaultyPort:
    def __init__(self, port, seed: int, p_corrupt: float = 0.0, p_drop: float = 0.0) -> None:
        self._port = port
        self._rng = random.Random(seed)
        self.p_corrupt = p_corrupt
        self.p_drop = p_drop
        self.damaged_writes = 0

    def write(self, data: bytes) -> int:
        out = bytearray(data)
        roll = self._rng.random()
        if roll < self.p_corrupt:
            i = self._rng.randrange(1, len(out) - 1)
            out[i] ^= 1 << self._rng.randrange(8)
            self.damaged_writes += 1
        elif roll < self.p_corrupt + self.p_drop:
            del out[self._rng.randrange(1, len(out))]
            self.damaged_writes += 1
        self._port.write(bytes(out))
        return len(data)

    def __getattr__(self, name: str):
        return getattr(self._port, name)

    def __setattr__(self, name: str, value) -> None:
        if name == "timeout":
            self._port.timeout = value
        else:
            super().__setattr__(name, value)
