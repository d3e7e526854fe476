"""Giving memory back to the system after large messages (glibc's ``malloc_trim``).

CPython hands a message's buffers back to the C allocator once nothing refers to them, but glibc
keeps freed memory inside the process for reuse: a block above its mmap threshold goes back to
the kernel at once only until the first such block is freed, after which glibc raises the
threshold (up to 32 MiB) and serves the next large buffers from its heaps, where a free page
stays resident unless it lies at the very top. After a burst of 25 MB mails a process would stay
at its peak for good. ``malloc_trim(0)`` returns every whole free page of every arena to the
kernel; it costs a few milliseconds, so it runs after each ``LARGE_WORK_BYTES`` of mail handled
and when a burst ends, not after every message. Each process also tunes glibc at its start
(:func:`tune_allocator`): every buffer of ``MMAP_THRESHOLD_BYTES`` or more (a message, an
attachment, a statement SQLite prepared for a batch) gets a mapping of its own, which goes back
to the system the moment it is freed, so it never leaves holes in the heaps that small objects
then pin; and the threads share ``MALLOC_ARENAS`` heaps instead of up to eight per core, each
fragmenting on its own. Without glibc (musl, macOS) nothing happens.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import os
import threading
from collections.abc import Callable

#: Raw mail handled (in bytes) after which giving memory back is worth its cost.
LARGE_WORK_BYTES = 4 * 1024 * 1024
#: Buffers from this size up are mapped on their own (glibc's M_MMAP_THRESHOLD), never in a heap.
#: (1 MiB kept the burst's figures, but left 1-2 % more growth over 20,000 ordinary mails.)
MMAP_THRESHOLD_BYTES = 256 * 1024
#: Heaps (arenas) the threads of a process share; glibc's default is eight per core.
MALLOC_ARENAS = 2
_M_MMAP_THRESHOLD = -3  # mallopt's parameter numbers (malloc.h)
_M_ARENA_MAX = -8
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
    """At a process's start, before it starts threads: buffers of ``MMAP_THRESHOLD_BYTES`` and
    more each get their own mapping (glibc would otherwise raise that threshold to the size of the
    first large buffer freed, up to 32 MiB, and serve later ones from its heaps), and at most
    ``MALLOC_ARENAS`` heaps (an explicit ``MALLOC_ARENA_MAX`` in the environment wins). False
    where that is not possible."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    if "MALLOC_ARENA_MAX" not in os.environ:
        mallopt(_M_ARENA_MAX, MALLOC_ARENAS)
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))


def release_free_memory() -> bool:
    """Return the allocator's free pages to the system; False where that is not possible."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


class WorkMeter:
    """Counts the bytes of mail a process handled (from any thread) and gives memory back each
    time they add up to ``LARGE_WORK_BYTES``: after every large message, and every few hundred
    ordinary ones (whose freed memory is scattered across glibc's heaps just the same)."""

    def __init__(self) -> None:
        self._handled = 0
        self._lock = threading.Lock()

    def handled(self, size: int) -> bool:
        """``size`` bytes of mail were handled and dropped; True if memory was given back."""
        with self._lock:
            self._handled += size
            if self._handled < LARGE_WORK_BYTES:
                return False
            self._handled = 0
        return release_free_memory()

    def idle(self) -> bool:
        """The work ran out (a burst ended): give back what it left, if it handled anything."""
        with self._lock:
            if not self._handled:
                return False
            self._handled = 0
        return release_free_memory()


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
