"""Whole daemons as the nodes of one cluster: each ``intaked run`` a process tree of its own
(tests/support/processes.py) with its own node name, ports, state directory and log, all on one
PostgreSQL database; started, killed (SIGKILL to the tree, as a dead host) and started again on
the same ports."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.processes import DaemonProcess
from tests.support.workers import free_port


@dataclass
class Node:
    """One node: ``name``, its SMTP port, and the TOML ``extra`` sections every node shares."""

    name: str
    directory: Path
    database_url: str
    extra: str = ""
    smtp_port: int = field(default_factory=free_port)
    webhook_port: int = field(default_factory=free_port)
    process: DaemonProcess | None = None
    starts: int = 0

    @property
    def config(self) -> Path:
        return self.directory / "intaked.toml"

    def write_config(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.config.write_text(
            f'[database]\nurl = "{self.database_url}"\n'
            f'[daemon]\nnode_name = "{self.name}"\nheartbeat_seconds = 0.5\nlease_seconds = 3.0\n'
            f'[smtp_intake]\nlisten = "127.0.0.1:{self.smtp_port}"\n'
            '[metrics]\nlisten = ""\n'
            '[logging]\nlevel = "info"\nformat = "json"\n' + self.extra,
            encoding="utf-8",
        )

    def start(self) -> Node:
        self.write_config()
        self.starts += 1
        env = {"STATE_DIRECTORY": str(self.directory / "state")}
        (self.directory / "state").mkdir(exist_ok=True)
        self.process = DaemonProcess(self.config, self.directory / f"intaked-{self.starts}.log", env=env)
        self.process.wait_started()
        return self

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            with contextlib.suppress(Exception):
                self.process.stop()
            self.process = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.proc.poll() is None
