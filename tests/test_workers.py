"""What keeps the suite's parallel workers apart (tests/support/workers.py): each worker its own
share of free ports, and the run's lock under which a machine-measuring test runs alone."""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from tests.support import workers
from tests.support.waiting import wait_until
from tests.support.workers import RunLock, free_port


@pytest.mark.parametrize("worker", ["gw0", "gw1", "gw2"])
def test_each_worker_gets_ports_of_its_own_share_only(worker: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "3")
    index = int(worker[2:])
    ports = [free_port() for _ in range(40)]
    assert {(port // 2) % 3 for port in ports} == {index}
    assert len(set(ports)) == len(ports), "no port handed out twice in a row"


def test_alone_pytest_takes_any_free_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    monkeypatch.delenv("PYTEST_XDIST_WORKER_COUNT", raising=False)
    assert workers.worker_share() == (0, 1)
    assert {(free_port() // 2) % 2 for _ in range(60)} == {0, 1}


def gate_taken(directory: Path) -> bool:
    """Whether someone holds the gate exclusively, i.e. a lone test waits (or runs)."""
    fd = os.open(directory / "gate.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


class Holder:
    """A thread that takes a lock, says so, and keeps it until released."""

    def __init__(self, name: str, take: Callable[[], AbstractContextManager[None]], order: list[str]) -> None:
        self.name = name
        self.holding = threading.Event()
        self.release = threading.Event()
        self._take = take
        self._order = order
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with self._take():
            self._order.append(self.name)
            self.holding.set()
            self.release.wait(30)

    def done(self) -> None:
        self.release.set()
        self._thread.join(30)


def test_a_test_that_runs_alone_waits_for_running_tests_and_new_ones_wait_for_it(tmp_path: Path) -> None:
    lock = RunLock(tmp_path)
    order: list[str] = []
    running = Holder("running", lock.shared, order)
    assert running.holding.wait(10)
    alone = Holder("alone", lock.exclusive, order)
    wait_until(lambda: gate_taken(tmp_path), timeout=10, what="the lone test to queue")
    later = Holder("later", lock.shared, order)
    assert not alone.holding.wait(0.5), "the lone test started beside a running test"
    assert not later.holding.wait(0.5), "a test started while the lone test waits: it could starve"
    running.done()
    assert alone.holding.wait(10)
    assert not later.holding.wait(0.5), "a test started beside the lone test"
    alone.done()
    assert later.holding.wait(10)
    later.done()
    assert order == ["running", "alone", "later"]


def test_tests_of_a_fixed_port_group_take_turns_and_others_run_beside_them(tmp_path: Path) -> None:
    lock = RunLock(tmp_path)
    order: list[str] = []
    first = Holder("first", lambda: lock.group("port-2525"), order)
    assert first.holding.wait(10)
    other = Holder("other", lock.shared, order)
    assert other.holding.wait(10), "a test outside the group waits for nothing"
    second = Holder("second", lambda: lock.group("port-2525"), order)
    assert not second.holding.wait(0.5), "two tests of the group at once"
    first.done()
    assert second.holding.wait(10)
    second.done()
    other.done()
    assert order == ["first", "other", "second"]
