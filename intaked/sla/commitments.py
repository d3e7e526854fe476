"""A ticket's commitments to its requester (seed 003; docs/service-levels.md, "Commitments,
extensions and escalations"), kept current wherever its deadlines are computed (a pure function
of the ticket's row and its new standard completion time).

- ``standard_due_at`` (標準完成時間) is always the resolution deadline.
- ``first_commitment_at`` (首次承諾時間) and ``commitment_at`` (預計完成時間) follow the standard
  time while work has not started (``first_response_at`` is NULL) and nobody committed to another
  time: a commitment equal to the old standard time moves to the new one, one set by
  ``intaked ticket commit`` differs from it and stays. They are NULL until the ticket has a
  resolution deadline (it is triaged), and are set then even if work already started.
- Once work started, the first commitment is fixed and the current one moves only by an extension
  or an escalation (intaked/tickets/commitments.py), or by another tool's write.
- Another tool writing ``commitment_at`` is noticed against ``sla_commitment_at`` (what intaked
  last saw): before work started it is taken as the first commitment; after, it counts as an
  extension. A tool clearing it (NULL) gets the previous commitment back.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

ACTOR = "intaked"
#: The actor of the events about a commitment another tool wrote.
TOOL_ACTOR = "tool"
COLUMNS = ("standard_due_at", "first_commitment_at", "commitment_at", "sla_commitment_at", "extension_count")
FOLLOWS = "follows the standard completion time"

Instant = dt.datetime | None


def differs(a: Instant, b: Instant) -> bool:
    """Whether two instants (either may be None) are not the same."""
    if a is None or b is None:
        return a is not b
    return a != b


def iso(value: Instant) -> str | None:
    """``value`` in ISO 8601, in UTC (as the store keeps it); None stays None."""
    return value.astimezone(dt.UTC).isoformat() if value is not None else None


def commitment_event(
    ticket_id: int,
    kind: str,
    now: dt.datetime,
    *,
    actor: str = ACTOR,
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    detail: Mapping[str, Any],
) -> dict[str, Any]:
    """A ``ticket_events`` row about a commitment or an escalation: ``before`` and ``after`` are
    the columns that changed (from, to; times in ISO 8601), ``detail`` says why."""

    def as_json(value: Mapping[str, Any]) -> str:
        plain = {key: iso(v) if isinstance(v, dt.datetime) else v for key, v in value.items()}
        return json.dumps(plain, ensure_ascii=False, default=str)

    return {
        "ticket_id": ticket_id,
        "at": now,
        "actor": actor,
        "kind": kind,
        "before": as_json(before),
        "after": as_json(after),
        "detail": as_json(detail),
    }


def keep_current(
    ticket: Mapping[Any, Any], standard: Instant, now: dt.datetime
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The commitment columns (all of :data:`COLUMNS`) and events of ``ticket`` (its row as read,
    before this pass) whose standard completion time is now ``standard``."""
    started = ticket["first_response_at"] is not None
    first: Instant = ticket["first_commitment_at"]
    current: Instant = ticket["commitment_at"]
    extensions = int(ticket["extension_count"] or 0)
    events: list[dict[str, Any]] = []
    if differs(current, ticket["sla_commitment_at"]):
        first, current, extensions, noticed = _written_by_a_tool(ticket, started, now)
        events.append(noticed)
    old_standard: Instant = ticket["standard_due_at"]

    def follows(value: Instant) -> bool:
        return not started and not differs(value, old_standard)

    new_first = standard if first is None or follows(first) else first
    new_current = new_first if current is None else standard if follows(current) else current
    if differs(new_first, first) or differs(new_current, current):
        events.append(
            commitment_event(
                ticket.get("id", 0),  # a ticket being filed has no id yet (and nothing to follow)
                "commitment_set",
                now,
                before={"first_commitment_at": first, "commitment_at": current},
                after={"first_commitment_at": new_first, "commitment_at": new_current},
                detail={"reason": FOLLOWS, "standard_due_at": iso(standard)},
            )
        )
    values = {
        "standard_due_at": standard,
        "first_commitment_at": new_first,
        "commitment_at": new_current,
        "sla_commitment_at": new_current,
        "extension_count": extensions,
    }
    return values, events


def _written_by_a_tool(
    ticket: Mapping[Any, Any], started: bool, now: dt.datetime
) -> tuple[Instant, Instant, int, dict[str, Any]]:
    """What a ``commitment_at`` written by another tool makes of the first and current commitment
    and the extension count, and its event."""
    first: Instant = ticket["first_commitment_at"]
    seen: Instant = ticket["sla_commitment_at"]
    written: Instant = ticket["commitment_at"]
    extensions = int(ticket["extension_count"] or 0)
    if written is None:
        noticed = commitment_event(
            ticket["id"],
            "commitment_set",
            now,
            before={"commitment_at": None},
            after={"commitment_at": seen},
            detail={"reason": "cleared by another tool: the commitment stays"},
        )
        return first, seen, extensions, noticed
    if not started:
        noticed = commitment_event(
            ticket["id"],
            "commitment_set",
            now,
            actor=TOOL_ACTOR,
            before={"first_commitment_at": first, "commitment_at": seen},
            after={"first_commitment_at": written, "commitment_at": written},
            detail={"reason": "written by another tool before work started: the first commitment"},
        )
        return written, written, extensions, noticed
    noticed = commitment_event(
        ticket["id"],
        "commitment_extended",
        now,
        actor=TOOL_ACTOR,
        before={"commitment_at": seen},
        after={"commitment_at": written},
        detail={"reason": "written by another tool", "extension_count": extensions + 1},
    )
    return first, written, extensions + 1, noticed
