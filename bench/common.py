"""Shared plumbing of the benchmarks: command line, databases, ports, percentiles."""

from __future__ import annotations

import argparse
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tests.support.databases import pg_database, pg_unavailable_reason

REPO = Path(__file__).resolve().parents[1]


def arguments(doc: str | None, messages: int) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=messages)
    parser.add_argument("--db", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql")
    parser.add_argument(
        "--back-office",
        choices=["process", "inline"],
        default="process",
        help="intaked's daemon.back_office setting (default: process, as shipped)",
    )
    return parser


BACK_OFFICE = ["process"]  # set from --back-office by main(): what intaked_process() configures


def use_back_office(mode: str) -> None:
    BACK_OFFICE[0] = mode


@contextmanager
def fresh_database(name: str, tmp: str, label: str) -> Iterator[str | None]:
    """A fresh empty database: a SQLite file in ``tmp``, or a new PostgreSQL database; None (with a
    printed reason) when PostgreSQL is unreachable."""
    if name == "sqlite":
        yield f"sqlite:///{Path(tmp) / label}.db"
        return
    if reason := pg_unavailable_reason():
        print(f"postgresql: skipped: {reason}")
        yield None
        return
    with pg_database() as url:
        yield url


def percentile_ms(sorted_seconds: Sequence[float], fraction: float) -> float:
    """The ``fraction`` percentile (nearest rank) of sorted durations in seconds, in milliseconds."""
    index = min(len(sorted_seconds) - 1, max(0, int(len(sorted_seconds) * fraction + 0.5) - 1))
    return sorted_seconds[index] * 1000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"nothing listens on 127.0.0.1:{port} after {timeout:g}s")


@contextmanager
def intaked_process(config_toml: str, daemon_keys: str = "") -> Iterator[subprocess.Popen[bytes]]:
    """A real ``intaked run`` with this configuration (``daemon_keys``: more lines of its
    ``[daemon]`` table), its log in a temporary file; stopped with SIGTERM (and waited for) on exit."""
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "intaked.toml"
        config.write_text(config_toml + f'[daemon]\nback_office = "{BACK_OFFICE[0]}"\n{daemon_keys}')
        with (Path(tmp) / "log").open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "intaked", "run", "--config", str(config)],
                stdout=log,
                stderr=log,
                cwd=REPO,
            )
            try:
                yield proc
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(60)
