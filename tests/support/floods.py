"""Connection floods for tests: many idle or slow TCP connections to a loopback port, the daemon
run as a real process under a low descriptor limit, and what its log and /proc say.

Bounded by construction: connections only to 127.0.0.1, at most the count asked for, every
socket closed by :class:`Flood`'s ``close()``; the daemon is stopped (SIGTERM, then SIGKILL to its
process group) when the block ends.
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import selectors
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.processes import DaemonProcess

LOOPBACK = "127.0.0.1"
#: The start of a webhook request whose head never ends.
PARTIAL_HEAD = b"POST /twilio/voice/incoming HTTP/1.1\r\nHost: intaked.example.com\r\n"
CONNECT_SECONDS = 15.0  # for the whole batch of connects; SYNs dropped on a full queue are resent at 1 s, 3 s


def raise_own_descriptor_limit(needed: int) -> None:
    """Let this (test) process hold ``needed`` descriptors: its soft limit up to its hard one
    (the test is skipped, saying why, when the hard limit is lower)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"the flood needs {needed} open files here; the hard limit (ulimit -Hn) is {hard}")
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def descriptor_limit_of(soft: int, hard: int) -> Callable[[], None]:
    """A ``preexec_fn`` that gives the child RLIMIT_NOFILE ``(soft, hard)``."""

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    return apply


class Flood:
    """``count`` TCP connections to ``port`` opened at once (non-blocking connects), then held."""

    def __init__(self, port: int, count: int) -> None:
        self.sockets: list[socket.socket] = []
        self.failed = 0
        pending: dict[socket.socket, None] = {}
        try:
            for _ in range(count):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setblocking(False)
                code = sock.connect_ex((LOOPBACK, port))
                if code in (0, errno.EINPROGRESS):
                    pending[sock] = None
                else:
                    sock.close()
                    self.failed += 1
            self._finish_connects(pending)
        except BaseException:
            for sock in pending:
                sock.close()
            self.close()
            raise

    def _finish_connects(self, pending: dict[socket.socket, None]) -> None:
        deadline = time.monotonic() + CONNECT_SECONDS
        with selectors.DefaultSelector() as selector:
            for sock in pending:
                selector.register(sock, selectors.EVENT_WRITE)
            while pending and time.monotonic() < deadline:
                for key, _ in selector.select(timeout=0.5):
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    selector.unregister(sock)
                    del pending[sock]
                    if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                        self.sockets.append(sock)
                    else:
                        sock.close()
                        self.failed += 1
        for sock in pending:  # never connected in time
            sock.close()
            self.failed += 1
        pending.clear()

    def send_to_some(self, data: bytes, every: int = 1) -> int:
        """Send ``data`` on every ``every``-th open connection; returns how many took it."""
        sent = 0
        for sock in self.sockets[::every]:
            if sock.fileno() == -1:
                continue
            try:
                sock.send(data)
                sent += 1
            except OSError:  # closed by the server (reset or broken pipe)
                sock.close()
        return sent

    def closed_by_server(self) -> int:
        """How many of the connections the server has closed (EOF or reset seen)."""
        return sum(1 for sock in self.sockets if server_closed(sock))

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()


def server_closed(sock: socket.socket) -> bool:
    """Whether the peer has closed ``sock`` (EOF or reset), without waiting; reads and drops
    whatever it answered before (e.g. a 503). A socket closed here counts as closed."""
    if sock.fileno() == -1:
        return True
    timeout = sock.gettimeout()
    sock.settimeout(0)  # a socket with a timeout would wait that long for the answer
    try:
        while sock.recv(65536):
            pass
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        sock.settimeout(timeout)
    return True


class FloodedDaemon(DaemonProcess):
    """The daemon under a flood: what /proc says about its front process."""

    def wait_started(self, timeout: float = 60) -> None:
        """Until the front and both back office processes are up (a flood tests steady state:
        the back office starts beside the front, and its start needs descriptors too)."""
        super().wait_started(timeout)
        self.wait_back_office_ready(timeout)

    def cpu_seconds(self) -> float:
        """User + system CPU time the daemon's front process has used so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
        return ticks / os.sysconf("SC_CLK_TCK")

    def open_descriptors(self) -> int:
        """How many descriptors the daemon's front process holds now."""
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def descriptor_limits(self) -> tuple[int, int]:
        """The front process's (soft, hard) RLIMIT_NOFILE, from /proc."""
        for line in Path(f"/proc/{self.pid}/limits").read_text().splitlines():
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return int(soft), int(hard)
        raise AssertionError("no 'Max open files' in /proc/PID/limits")


@contextlib.contextmanager
def daemon_process(config: Path, log_path: Path, preexec_fn: Callable[[], None]) -> Iterator[FloodedDaemon]:
    """A started :class:`FloodedDaemon`, stopped when the block ends."""
    daemon = FloodedDaemon(config, log_path, preexec_fn)
    try:
        daemon.wait_started()
        yield daemon
    finally:
        daemon.stop()


class RepeatedConnects:
    """Clients that connect to ``port`` and send ``greeting``, over and over, from ``start()``
    until ``close()`` (so that some connections arrive while the listener stops); ``close()``
    closes every socket they made."""

    def __init__(self, port: int, greeting: bytes, threads: int = 4) -> None:
        self._port = port
        self._greeting = greeting
        self._stop = threading.Event()
        self._made: list[socket.socket] = []
        self._clients = [
            threading.Thread(target=self._connect_repeatedly, daemon=True) for _ in range(threads)
        ]

    def start(self) -> RepeatedConnects:
        for client in self._clients:
            client.start()
        return self

    def close(self) -> int:
        """Stop connecting, close every socket; how many connections were made."""
        self._stop.set()
        for client in self._clients:
            client.join(10)
        for sock in self._made:
            sock.close()
        return len(self._made)

    def _connect_repeatedly(self) -> None:
        while not self._stop.is_set():
            try:
                sock = socket.create_connection((LOOPBACK, self._port), timeout=1)
            except OSError:  # refused once the listener is closed; a full backlog times out
                continue
            self._made.append(sock)
            with contextlib.suppress(OSError):
                sock.sendall(self._greeting)


def sockets_left_to_the_collector(port: int, caught: list[warnings.WarningMessage]) -> list[str]:
    """The ``unclosed <socket ...>`` warnings among ``caught`` for server-side sockets on ``port``."""
    return [
        str(w.message)
        for w in caught
        if issubclass(w.category, ResourceWarning) and f"laddr=('{LOOPBACK}', {port})" in str(w.message)
    ]
