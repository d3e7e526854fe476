"""``python -m intaked.backoffice ROLE WAKE_FD``: a back office process, started by its parent
(intaked/backoffice/__init__.py tells the protocol)."""

from __future__ import annotations

import asyncio
import os
import pickle
import signal
import sys

import structlog

from intaked.backoffice import EXIT_FAILED, ROLES
from intaked.backoffice.roles import run_back_office
from intaked.config import Settings
from intaked.logs import configure_logging
from intaked.memory import tune_allocator
from intaked.processes import die_with_parent
from intaked.store.liveness import NODE_NAME_ENV, set_node_name

log = structlog.get_logger("intaked.backoffice")


def main(argv: list[str]) -> int:
    die_with_parent()
    tune_allocator()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the front decides
    settings = pickle.load(sys.stdin.buffer)
    assert isinstance(settings, Settings)
    role, wake_fd = argv
    if role not in ROLES:
        raise SystemExit(f"unknown back office role {role!r}: one of {', '.join(ROLES)}")
    configure_logging(settings.logging.level, settings.logging.format, process=f"back_office.{role}")
    set_node_name(settings.daemon.node_name or os.environ.get(NODE_NAME_ENV, ""))
    try:
        asyncio.run(run_back_office(settings, role, int(wake_fd)))
    except Exception:  # the parent logs our exit and starts us again; say why here
        log.exception("back_office_failed", role=role)
        return EXIT_FAILED
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
