"""Whole daemons as the nodes of one cluster: each ``intaked run`` a process tree of its own
(tests/support/processes.py) with its own node name, ports, state directory and log, all on one
PostgreSQL database; started, killed (SIGKILL to the tree, as a dead host) and started again on
the same ports."""

from __future__ import annotations

import contextlib
import random
import smtplib
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.processes import DaemonProcess
from tests.support.workers import free_port

HELPDESK = "helpdesk@example.com"


@dataclass
class Node:
    """One node: ``name``, its SMTP port, and the TOML ``extra`` sections every node shares."""

    name: str
    directory: Path
    database_url: str
    extra: str = ""
    public_url: str = ""  # with Twilio: where Twilio calls back (the balancer in front of the nodes)
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
            f'[smtp_intake]\nlisten = "127.0.0.1:{self.smtp_port}"\nrecipients = ["{HELPDESK}"]\n'
            + (
                f'[webhooks]\nlisten = "127.0.0.1:{self.webhook_port}"\npublic_url = "{self.public_url}"\n'
                if self.public_url
                else ""
            )
            + '[metrics]\nlisten = ""\n'
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


def report(n: int, tag: str = "cluster") -> tuple[str, bytes]:
    """The Message-ID and raw bytes of report ``n``."""
    message_id = f"<{tag}-{n}@example.com>"
    raw = (
        f"From: user{n}@example.com\r\nTo: {HELPDESK}\r\nSubject: {tag} report {n}\r\n"
        f"Message-ID: {message_id}\r\n\r\n印表機 {n} 卡紙\r\n"
    ).encode()
    return message_id, raw


class ClusterMailer:
    """Sends as an MTA does to a domain with several MX hosts: to a node picked at random, and
    on a refused connection, a 4xx or a dropped connection to another, until one answers 250.
    ``accepted`` holds the Message-IDs answered 250 (and by which SMTP port)."""

    def __init__(self, nodes: list[Node], *, seed: int = 17) -> None:
        self._nodes = nodes
        self._random = random.Random(seed)
        self.accepted: dict[str, int] = {}
        self.deferrals = 0
        self._lock = threading.Lock()

    def send(self, message_id: str, raw: bytes, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                port = self._random.choice(self._nodes).smtp_port
            try:
                client = smtplib.SMTP("127.0.0.1", port, timeout=30)
                try:
                    client.sendmail(f"sender@{message_id.strip('<>').split('@')[1]}", [HELPDESK], raw)
                finally:
                    with contextlib.suppress(OSError, smtplib.SMTPException):
                        client.quit()
            except (OSError, smtplib.SMTPException):
                with self._lock:
                    self.deferrals += 1
                time.sleep(0.2)
                continue
            with self._lock:  # answered 250: the node owns it now
                self.accepted[message_id] = port
            return
        raise AssertionError(f"{message_id} not accepted by any node within {timeout:g}s")

    def send_all(self, reports: list[tuple[str, bytes]], pause: float = 0.05) -> threading.Thread:
        """Send ``reports`` one after another on a thread of their own; returns the thread."""

        def run() -> None:
            for message_id, raw in reports:
                self.send(message_id, raw)
                time.sleep(pause)

        thread = threading.Thread(target=run, name="cluster-mailer", daemon=True)
        thread.start()
        return thread
