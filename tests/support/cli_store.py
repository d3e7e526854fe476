"""The command tests' store: a SQLite file with one ticket filed from a real mail, a config file
naming it, and the command line's own entry point run in this process (a start-up per command
costs seconds on a slow machine) with what it printed and its exit code."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import subprocess
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select, update

from intaked.cli import main
from intaked.intake.capture import RawItem, insert_items
from intaked.intake.processor import process_once
from intaked.store.engine import make_engine
from intaked.store.models import outbox_table, ticket_table
from tests.support.daemon import make_settings
from tests.support.databases import sqlite_migrated_copy

BASE_CONFIG = """
[database]
url = "{url}"
[logging]
level = "warning"
[outbound_mail]
from_address = "helpdesk@example.com"
"""


def run_cli(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """``intaked ARGV`` as ``python -m intaked`` would run it, in this process."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse refusing an argument
            code = int(exc.code or 0)
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())


class OneTicketStore:
    """A SQLite store with the ticket of one mail from lin@example.com (``subject``, ``body``),
    filed at ``created_at``; the config is :data:`BASE_CONFIG` and ``config`` (TOML tables)."""

    def __init__(
        self, tmp_path: Path, *, config: str, subject: str, body: str, created_at: dt.datetime
    ) -> None:
        self.url = sqlite_migrated_copy(tmp_path / "intaked.db")
        self.config = tmp_path / "intaked.toml"
        self.config.write_text(BASE_CONFIG.format(url=self.url) + config, encoding="utf-8")
        self.engine: Engine = make_engine(self.url)
        raw = (
            f"From: Lin <lin@example.com>\r\nTo: helpdesk@example.com\r\nSubject: {subject}\r\n"
            f"Message-ID: <cli-{subject.encode().hex()[:16]}@example.com>\r\n\r\n{body}\r\n"
        ).encode()
        insert_items(self.engine, [RawItem("smtp", raw, envelope_from="lin@example.com")])
        process_once(self.engine, make_settings(self.url))
        with self.engine.begin() as conn:
            conn.execute(update(ticket_table).values(created_at=created_at))
            self.number = str(conn.execute(select(ticket_table.c.number)).scalar_one())

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``intaked ARGS --config <this store's config>``."""
        return run_cli([*args, "--config", str(self.config)])

    def ticket(self) -> dict[str, Any]:
        with self.engine.connect() as conn:
            return dict(conn.execute(select(ticket_table)).mappings().one())

    def outbox(self, purpose: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            query = select(outbox_table).where(outbox_table.c.purpose == purpose)
            return [dict(row) for row in conn.execute(query).mappings()]

    def close(self) -> None:
        self.engine.dispose()
