"""What the test processes of one run share, and how they keep out of each other's way.

``scripts/test`` runs the suite on several pytest-xdist workers (``PYTEST_XDIST_WORKER`` is
``gw0``, ``gw1``…; absent when pytest runs alone). Everything a test starts is private to it
already (databases, schemas, directories under ``tmp_path``, Dovecot and Prism instances); what
is left is shared by the machine:

- **ports** handed to a child process before it binds them: :func:`free_port` gives each worker
  its own share of the kernel's free ports, so two workers never hold the same number;
- **fixed ports**: tests of one :data:`FIXED_PORT_GROUPS` group take turns (a lock of the group);
- **the machine itself**: a test that measures CPU time, memory, descriptors or latency runs
  alone. :class:`RunLock` is a readers-writer lock on a file every worker of the run sees: every
  test holds it shared, a test of :data:`RUNS_ALONE` holds it exclusively.

(xdist's own ``xdist_group``/``--dist loadgroup`` would do for the groups, but it silently stops
grouping with pytest 9.2: pytest-dev/pytest-xdist#1386. The locks hold whatever the scheduler.)
"""

from __future__ import annotations

import collections
import fcntl
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Modules (file names, wherever they live under tests/) whose tests run with no other test of
# the run beside them: each asserts how the machine behaves (CPU time, memory, descriptors, a
# latency bound, "within seconds") or loads it hard enough to disturb a test that does.
RUNS_ALONE: dict[str, str] = {
    "test_floods.py": "2,000 connections, CPU-time and latency bounds",
    "test_front_memory.py": "tracemalloc: memory let go within a bound",
    "test_memory.py": "the allocator's footprint",
    "test_startup.py": "the first 250 within a second of a start",
    "test_liveness.py": "dead workers' claims taken up within seconds",
    "test_kill_recovery.py": "kill -9, then filed within seconds",
    "test_pg_faults.py": "cut connections, settled within seconds",
    "test_disk_full.py": "room again: stored within seconds",
    "test_store_cuts.py": "cut connections during a page",
    "test_notify.py": "watchdog pings counted over windows of seconds, none while a child is stopped",
    "test_crash.py": "kill -9 within 0.15 s of connecting must land mid-drain",
}

# Tests that need a fixed port (``intaked run`` without a config listens on 127.0.0.1:2525): the
# tests of a group take turns, whichever workers run them.
FIXED_PORT_GROUPS: dict[str, str] = {
    "test_cli_daemon.py": "port-2525",
}

RECENT_PORTS = 256  # a worker does not hand out a port again until this many others went out


def worker_id() -> str | None:
    """``gw0``, ``gw1``… under pytest-xdist, None when pytest runs alone."""
    return os.environ.get("PYTEST_XDIST_WORKER")


def worker_share() -> tuple[int, int]:
    """(this worker's index, how many workers): (0, 1) when pytest runs alone."""
    worker = worker_id()
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if worker is None or count <= 1:
        return 0, 1
    return int(worker.removeprefix("gw")), count


_recent: collections.deque[int] = collections.deque(maxlen=RECENT_PORTS)


def free_port() -> int:
    """A loopback TCP port nobody listens on, for a server started later (a child process, a
    thread). The kernel picks it; a worker keeps only ports of its own share, so no two workers
    of a run are ever given the same port, and none is given twice in a row by one worker.
    (Linux gives ``bind(0)`` odd ports: the share is taken on ``port // 2``.)"""
    index, count = worker_share()
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if (port // 2) % count == index and port not in _recent:
            _recent.append(port)
            return port


def runs_alone(module_file: str) -> bool:
    return Path(module_file).name in RUNS_ALONE


def fixed_port_group(module_file: str) -> str | None:
    return FIXED_PORT_GROUPS.get(Path(module_file).name)


class RunLock:
    """The run's readers-writer lock and its group locks (``flock`` on files in a directory all
    workers share).

    A writer first takes the gate, so that readers arriving while it waits queue behind it
    instead of starving it; readers only pass through the gate."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._directory = directory
        self._gate = directory / "gate.lock"
        self._machine = directory / "machine.lock"

    @contextmanager
    def group(self, name: str) -> Iterator[None]:
        """One test of the group ``name`` at a time."""
        with _flocked(self._directory / f"group-{name}.lock", fcntl.LOCK_EX):
            yield

    @contextmanager
    def shared(self) -> Iterator[None]:
        with _flocked(self._gate, fcntl.LOCK_SH):
            pass
        with _flocked(self._machine, fcntl.LOCK_SH):
            yield

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with _flocked(self._gate, fcntl.LOCK_EX):
            machine = _open_locked(self._machine, fcntl.LOCK_EX)
        try:
            yield
        finally:
            os.close(machine)


def _open_locked(path: Path, operation: int) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, operation)
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextmanager
def _flocked(path: Path, operation: int) -> Iterator[None]:
    fd = _open_locked(path, operation)
    try:
        yield
    finally:
        os.close(fd)
