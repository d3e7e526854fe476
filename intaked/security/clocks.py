"""The two clocks of a security incident, on 24x7 time from ``security_aware_at`` (pure).

- **notify**: the authority must be notified within ``security.notify_within`` (1 h by default,
  資通安全事件通報及應變辦法 art. 4); it stops when ``security_notified_at`` is set.
- **contain**: damage control or recovery within ``[security.levels.N] contain_within`` (72 h
  for levels 1-2, 36 h for levels 3-4 by default); it runs once a level is set and stops when
  the ticket is resolved or the form's ``repaired_at`` is set (``security_repaired_at`` in the
  row given, read from ``security_forms`` by the tracker).

Each warns at ``sla.warn_at`` of its window (as the SLA targets do) and breaches at its deadline.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from intaked.config import Settings

TARGETS = ("notify", "contain")


@dataclass(frozen=True)
class Clock:
    """One clock of one ticket: its warning time, deadline and whether it still runs."""

    target: str
    warn_at: dt.datetime | None
    due_at: dt.datetime | None
    running: bool


def aware_at(row: Mapping[Any, Any]) -> dt.datetime:
    """When the organisation became aware: set by a person or a tool, else the report's arrival."""
    value: dt.datetime = row["security_aware_at"] or row["created_at"]
    return value


def clocks(settings: Settings, row: Mapping[Any, Any]) -> tuple[Clock, Clock]:
    """The notify and contain clocks of ``row`` (a ``tickets`` row, its columns as now)."""
    start = aware_at(row)
    warn = settings.sla.warn_at
    notify_window = settings.security.notify_delta
    notify = Clock(
        "notify",
        start + notify_window * warn,
        start + notify_window,
        row["security_notified_at"] is None,
    )
    level = row["security_level"]
    if level is None:
        return notify, Clock("contain", None, None, False)
    window = settings.security.contain_within(int(level))
    resolved = row["resolved_at"] is not None or row["status"] in ("resolved", "closed")
    repaired = row.get("security_repaired_at") is not None  # the form's 已修護時間
    return notify, Clock("contain", start + window * warn, start + window, not (resolved or repaired))


def next_check(row: Mapping[Any, Any], pair: tuple[Clock, ...]) -> dt.datetime | None:
    """The earliest warning or breach of ``pair`` still to come for ``row`` (None: nothing)."""
    pending: list[dt.datetime] = []
    for clock in pair:
        if not clock.running:
            continue
        if row.get(f"security_{clock.target}_warned_at") is None and clock.warn_at is not None:
            pending.append(clock.warn_at)
        if row.get(f"security_{clock.target}_breached_at") is None and clock.due_at is not None:
            pending.append(clock.due_at)
    return min(pending, default=None)
