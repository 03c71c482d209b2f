"""The one interface every target (emulator or board) offers the harness."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager

from tinyformer.hil.client import DeviceClient
from tinyformer.hil.firmware import Firmware


class Target(ABC):
    name: str
    board: str  # which firmware board build it runs
    count_source: str  # the measurement 'source' column: how counts were taken

    @abstractmethod
    def session(self, firmware: Firmware) -> AbstractContextManager[DeviceClient]:
        """Start ``firmware`` and yield a client connected to it; stop it on exit."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


SessionIterator = Iterator[DeviceClient]
