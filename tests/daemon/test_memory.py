"""Giving memory back: after every few MiB of mail and when a burst ends, never after each message."""

from __future__ import annotations

import sys

import pytest

from intaked.memory import LARGE_WORK_BYTES, WorkMeter, release_free_memory, tune_allocator

glibc_only = pytest.mark.skipif(sys.platform != "linux", reason="malloc_trim and mallopt are glibc's")


@glibc_only
def test_the_allocator_can_be_tuned_and_trimmed_here() -> None:
    assert tune_allocator(), "mallopt accepted the mmap threshold"
    assert release_free_memory(), "malloc_trim is there"


@glibc_only
def test_memory_goes_back_after_enough_mail_not_after_each_message() -> None:
    meter = WorkMeter()
    message = LARGE_WORK_BYTES // 4 + 1
    assert [meter.handled(message) for _ in range(4)] == [False, False, False, True]
    assert not meter.idle(), "nothing handled since: nothing to give back"
    assert not meter.handled(10_000)
    assert meter.idle(), "the end of a burst gives back what it left"
    assert meter.handled(LARGE_WORK_BYTES), "one large message is enough"
