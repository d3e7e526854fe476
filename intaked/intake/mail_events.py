"""The ticket events of a stored batch of mail: what each entry did (``created``, ``spam_flagged``,
``tag_not_trusted``, ``linked_ticket_opened``, ``message_added``, ``reopened``,
``follow_up_opened``, ``parse_problems``), built with the one event builder (intaked/tickets/)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from intaked.intake.planning import ParsedItem, Plan
from intaked.routing.reply_threading import Decision
from intaked.tickets.events import TicketEvent, event
from intaked.tickets.filing import created_event


def batch_events(
    entries: Sequence[ParsedItem],
    plans: Sequence[Plan],
    storing: Sequence[int],
    new_rows: dict[int, dict[str, Any]],
    problems: dict[int, list[str]],
    now: dt.datetime,
) -> list[TicketEvent]:
    """The events of every stored entry (``new_rows``: entry index → the row of the ticket it opened)."""
    events: list[TicketEvent] = []
    for i in storing:
        item, parsed, _ = entries[i]
        plan = plans[i]
        via = {
            "via": item.channel,
            "inbound_item": item.id,
            "message_id": parsed.message_id if parsed else None,
        }
        if i in new_rows:
            events += _opened(entries[i], plan, new_rows[i], via, now)
        else:
            events += _added(entries[i], plan, via, now)
        if plan.decision is Decision.FOLLOW_UP and plan.existing is not None:
            after = {"ticket_id": plan.ticket, "number": plan.number, **via}
            events.append(event(plan.existing, "follow_up_opened", now, after=after))
        if problems[i]:
            events.append(event(plan.ticket, "parse_problems", now, detail=problems[i]))
    return events


def _sender(entry: ParsedItem) -> str | None:
    item, parsed, _ = entry
    return parsed.sender.address if parsed and parsed.sender else item.envelope_from


def _opened(
    entry: ParsedItem, plan: Plan, row: dict[str, Any], via: dict[str, Any], now: dt.datetime
) -> list[TicketEvent]:
    """A new ticket: created, and flagged as spam, refused its tag, linked to what it named."""
    ticket_id = plan.ticket
    parent = {"parent_id": plan.parent_id} if plan.parent_id is not None else {}
    events = [created_event(ticket_id, row, now, **via, **parent)]
    if plan.spam:
        events.append(event(ticket_id, "spam_flagged", now, detail={"reason": plan.spam, **via}))
    if plan.refused is not None and plan.parent is not None:
        detail = {
            "from": _sender(entry),
            "tagged": plan.parent_number,
            "tagged_ticket_id": plan.parent,
            "reason": plan.refused,
            **via,
        }
        events.append(event(ticket_id, "tag_not_trusted", now, detail=detail))
    if plan.parent is not None:
        events.append(
            event(
                plan.parent,
                "linked_ticket_opened",
                now,
                after={"ticket_id": ticket_id, "number": plan.number, **via},
                detail={"reason": plan.refused or plan.spam},
            )
        )
    return events


def _added(entry: ParsedItem, plan: Plan, via: dict[str, Any], now: dt.datetime) -> list[TicketEvent]:
    """A message joining its ticket (and reopening it when the requester replied to a resolved one)."""
    parsed = entry[1]
    added = {
        "from": _sender(entry),
        "subject": parsed.subject if parsed else "",
        "threaded_by": "survey" if plan.survey else "reply" if plan.earlier is not None else "lookup",
        **via,
    }
    if plan.machine is not None:
        added["machine"] = plan.machine  # changes nothing on the ticket
    events = [event(plan.ticket, "message_added", now, after=added)]
    if plan.decision is Decision.REOPEN:
        events.append(
            event(
                plan.ticket,
                "reopened",
                now,
                before={"status": "resolved"},
                after={"status": "open"},
                detail={"reason": "the requester replied", **via},
            )
        )
    return events
