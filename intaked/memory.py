"""Giving memory back to the system after large messages (glibc's ``malloc_trim``).

CPython hands a message's buffers back to the C allocator once nothing refers to them, but glibc
keeps freed memory inside the process for reuse: a block above its mmap threshold goes back to
the kernel at once only until the first such block is freed, after which glibc raises the
threshold (up to 32 MiB) and serves the next large buffers from its heaps, where a free page
stays resident unless it lies at the very top. After a burst of 25 MB mails a process would stay
at its peak for good. ``malloc_trim(0)`` returns every whole free page of every arena to the
kernel; it costs a few milliseconds, so it runs after large work (``LARGE_WORK_BYTES`` of raw
mail handled), not after every message. Each process also fixes glibc's mmap threshold at
``MMAP_THRESHOLD_BYTES`` (:func:`tune_allocator`): every buffer that large gets a mapping of its
own, which goes back to the system the moment it is freed, so large mail never leaves holes in
the heaps that small objects then pin. Without glibc (musl, macOS) nothing happens.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
from collections.abc import Callable

#: Raw mail handled (in bytes) after which giving memory back is worth its cost.
LARGE_WORK_BYTES = 4 * 1024 * 1024
#: Buffers from this size up are mapped on their own (glibc's M_MMAP_THRESHOLD), never in a heap.
MMAP_THRESHOLD_BYTES = 1024 * 1024
_M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h)
#: How long the front waits after large mail before trimming: a message's buffers are freed only
#: after its reply is sent, and the messages of a burst are best trimmed once.
FRONT_RELEASE_DELAY_SECONDS = 1.0


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def tune_allocator() -> bool:
    """At a process's start: buffers of ``MMAP_THRESHOLD_BYTES`` and more each get their own
    mapping (glibc would otherwise raise that threshold to the size of the first large buffer
    freed, up to 32 MiB, and serve later ones from its heaps). False where that is not possible."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))


def release_free_memory() -> bool:
    """Return the allocator's free pages to the system; False where that is not possible."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


def release_after_large_work(handled_bytes: int) -> bool:
    """:func:`release_free_memory` if ``handled_bytes`` of mail were just handled and dropped."""
    return handled_bytes >= LARGE_WORK_BYTES and release_free_memory()


class DeferredRelease:
    """For an event loop: counts the raw bytes handled and, once they reach ``LARGE_WORK_BYTES``,
    gives memory back ``delay_seconds`` later (once, however many messages end meanwhile)."""

    def __init__(self, delay_seconds: float = FRONT_RELEASE_DELAY_SECONDS) -> None:
        self._delay = delay_seconds
        self._handled = 0
        self._pending: asyncio.TimerHandle | None = None

    def note(self, handled_bytes: int) -> None:
        """``handled_bytes`` of mail were handled (call on the event loop's thread)."""
        self._handled += handled_bytes
        if self._handled >= LARGE_WORK_BYTES and self._pending is None:
            self._pending = asyncio.get_running_loop().call_later(self._delay, self._release)

    def _release(self) -> None:
        self._pending, self._handled = None, 0
        release_free_memory()

    def cancel(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
