"""``intaked db upgrade|current``: apply the pending migrations, or print the schema revision."""

from __future__ import annotations

import argparse
from typing import Any

from intaked.commands.shared import open_engine
from intaked.config import Settings
from intaked.store.migrate import current_revision, head_revision, upgrade


def add_parser(sub: Any, config_parent: argparse.ArgumentParser) -> None:
    db = sub.add_parser("db", help="database schema").add_subparsers(dest="db_command", required=True)
    db.add_parser("upgrade", parents=[config_parent], help="apply pending migrations")
    db.add_parser("current", parents=[config_parent], help="print the schema revision")


def run(settings: Settings, args: argparse.Namespace) -> int:
    engine = open_engine(settings)
    try:
        if args.db_command == "upgrade":
            before, after = upgrade(engine)
            print(
                f"schema upgraded: {before or '(empty)'} -> {after}"
                if before != after
                else f"schema already current: {after}"
            )
        else:
            current = current_revision(engine)
            head = head_revision()
            print(f"{current or '(empty)'}" + ("" if current == head else f" (this intaked needs {head})"))
    finally:
        engine.dispose()
    return 0
