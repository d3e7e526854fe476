"""Logging with structlog: JSON lines when not on a terminal (journald, files), key=value on one.

Every line carries what it is about (``ticket``, ``message_id``, ``inbound_item``, later
``call_sid``) as bound keys, so an operator can follow one message through the daemon.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Literal, TextIO, cast

import structlog


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is at the time of writing (it may be replaced)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


def _add_process(name: str) -> structlog.typing.Processor:
    def add(_: Any, __: str, event: structlog.typing.EventDict) -> structlog.typing.EventDict:
        event.setdefault("process", name)
        return event

    return add


def configure_logging(
    level: str = "info",
    fmt: Literal["auto", "json", "console"] = "auto",
    *,
    stream: TextIO | None = None,
    process: str | None = None,
) -> None:
    """Set up structlog (and route the standard library's logging through the same output);
    ``process`` names this process (e.g. "back_office.intake") on every line, from every thread."""
    out: TextIO = stream if stream is not None else cast(TextIO, _CurrentStderr())
    use_console = fmt == "console" or (fmt == "auto" and out.isatty())
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer(colors=False) if use_console else structlog.processors.JSONRenderer()
    )
    numeric = logging.getLevelNamesMapping()[level.upper()]
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if process is not None:
        shared.insert(0, _add_process(process))
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        # One write per line (print() writes the newline apart): the back office processes
        # share the front's stderr, and two lines must never end up glued together.
        logger_factory=structlog.WriteLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processor=renderer, foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name]
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric, logging.INFO))
    # aiosmtpd logs every session at INFO; keep its chatter at WARNING.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    # Alembic narrates every connection at INFO; `intaked db upgrade` prints its own summary.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # APScheduler logs every run of every job at INFO (every few seconds); the workers log what they do.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
