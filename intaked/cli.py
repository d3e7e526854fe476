"""The ``intaked`` command: the daemon and the operator's tools (the console script's entry point).

It builds the command line from :mod:`intaked.commands` (one module per verb), loads the settings
and hands them to the verb's module. Exit codes (:mod:`intaked.commands.shared`): 0 success; 1 a
looked-up thing does not exist; 2 wrong usage; 69 the store is unreachable or on the wrong schema;
78 the configuration is invalid (sysexits EX_CONFIG).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from sqlalchemy.exc import SQLAlchemyError

from intaked.commands import DAEMON_VERB, VERBS, build_parser, command
from intaked.commands.shared import (
    EXIT_CONFIG,
    EXIT_NOT_FOUND,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    Reported,
    reporting,
)
from intaked.config import ConfigError, load_settings
from intaked.logs import configure_logging
from intaked.store.migrate import SchemaError

__all__ = ["EXIT_CONFIG", "EXIT_NOT_FOUND", "EXIT_UNAVAILABLE", "EXIT_USAGE", "main"]

PRIVATE_UMASK = 0o077

# What any verb may raise about the store, and how it is told (the first class that matches).
STORE_ERRORS = (
    Reported(SchemaError, "{}", EXIT_UNAVAILABLE),
    Reported(SQLAlchemyError, "the ticket store is unavailable: {}", EXIT_UNAVAILABLE),
)


def _runs_the_daemon(argv: Sequence[str]) -> bool:
    """Whether the command line is ``intaked run ...`` (an option before it, ``--help`` or
    ``--version``, is about the whole command: it gets the full parser)."""
    return bool(argv) and argv[0] == DAEMON_VERB


def main(argv: Sequence[str] | None = None) -> int:
    """The command line. What intaked writes (the SQLite database and its -wal/-shm files, the
    state directory, lock files; also in the processes it starts) is its owner's alone: 0600 files,
    0700 directories. Everything a command prints goes through intaked/terminal.py, so text from
    mail or callers never reaches the operator's terminal as control sequences."""
    previous_umask = os.umask(PRIVATE_UMASK)
    try:
        words = sys.argv[1:] if argv is None else argv
        if _runs_the_daemon(words):
            return _main(words)
        from intaked.terminal import safe_output

        with safe_output():
            return _main(words)
    finally:
        os.umask(previous_umask)  # the same process may go on (tests call main)


def _main(words: Sequence[str]) -> int:
    # ``intaked run`` imports no other verb's module: the daemon should be taking mail within a second
    verbs = [DAEMON_VERB] if _runs_the_daemon(words) else list(VERBS)
    args = build_parser(verbs).parse_args(words)
    try:
        settings, path = load_settings(args.config)
    except ConfigError as exc:
        print(f"intaked: invalid configuration:\n{exc}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(settings.logging.level, settings.logging.format)
    args.config_source = str(path) if path else "built-in defaults"
    return reporting(lambda: command(args.command).run(settings, args), STORE_ERRORS)
