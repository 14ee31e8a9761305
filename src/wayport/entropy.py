"""Random ids for every request, without a system call for each.

Each request gets a trace id and a log id. ``uuid.uuid4()`` and ``os.urandom`` ask the kernel for
every one, and on a virtual machine that call can cost more than the rest of the id (about 20 µs
measured on the bench machine, twice per request). Here the kernel's randomness is read 4 KiB at a
time and handed out in slices: the ids are exactly as unpredictable, at one system call per ~250
of them. A forked child starts with an empty pool, so it never repeats its parent's ids.
"""

from __future__ import annotations

import os
import threading

__all__ = ["random_bytes", "uuid4"]

_POOL_BYTES = 4096


class _Pool:
    __slots__ = ("_data", "_lock", "_position")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self._data = b""
        self._position = 0

    def take(self, count: int) -> bytes:
        with self._lock:
            end = self._position + count
            if end > len(self._data):
                self._data = os.urandom(max(_POOL_BYTES, count))
                self._position, end = 0, count
            piece = self._data[self._position : end]
            self._position = end
            return piece


_pool = _Pool()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_pool.reset)


def random_bytes(count: int) -> bytes:
    """``count`` bytes from the operating system's CSPRNG (via the pool); never reused."""
    return _pool.take(count)


_VERSION_4 = (0xF000 << 64, 0x4000 << 64)  # (mask, value) of the version nibble
_VARIANT = (0xC000 << 48, 0x8000 << 48)  # (mask, value) of the RFC 4122 variant bits


def uuid4() -> str:
    """A random (version 4) UUID in its canonical string form, as ``str(uuid.uuid4())``."""
    value = int.from_bytes(random_bytes(16), "big")
    value = (value & ~_VERSION_4[0]) | _VERSION_4[1]
    value = (value & ~_VARIANT[0]) | _VARIANT[1]
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
