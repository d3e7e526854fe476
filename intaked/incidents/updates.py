"""Status updates of a major incident (``intaked incident update``): the text goes to the
requester of the incident and of every ticket linked to it, by mail (template ``incident_update``,
Traditional Chinese then English) and by SMS to hotline callers whose caller id is a mobile
(``hotline.sms_ack_prefixes``, intaked/hotline/caller_acks.py). A linked ticket settled on its
own before the incident (resolved or closed) is left out (:func:`following`).

One update is one transaction: the ``incident_update`` event on the incident (its ``update``
number: the how-manieth update of the incident) and an ``incident_update_queued`` event on each
ticket whose requester it goes to, with the outbox rows. A requester is written to once per
update, however many of the linked reports are theirs: the idempotency keys are
``incident_update:<incident id>:<update>:<address>``, so a sender running twice sends nothing twice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import Connection, Engine, func, select

from intaked.config import Settings
from intaked.hotline.caller_acks import is_mobile
from intaked.incidents.links import LinkRefused, linked_tickets
from intaked.outbound.compose import mail_payload, new_message_id, render_notice
from intaked.outbound.outbox import enqueue
from intaked.store.models import call_table, message_table, ticket_event_table, ticket_table
from intaked.store.types import utcnow
from intaked.tickets.events import event, record_events
from intaked.tickets.lifecycle import TicketNotFound, locked_row

log = structlog.get_logger(__name__)

PURPOSE = "incident_update"
UPDATE_EVENT = "incident_update"
QUEUED_EVENT = "incident_update_queued"
MAX_TEXT = 1000
_SMS_CHARS = 120


@dataclass(frozen=True, slots=True)
class UpdateSent:
    """What one update queued: its number, and how many mails and SMS."""

    number: str
    update: int
    mails: int
    sms: int


def following(incident: Mapping[str, Any], ticket: Mapping[str, Any]) -> bool:
    """Whether a linked ticket's requester still gets the incident's updates: while the ticket is
    open, or when it was resolved with the incident (or after it); not once it was settled on its
    own before the incident was, nor when it is spam."""
    if ticket["status"] in ("new", "open", "pending"):
        return True
    settled, with_incident = ticket["resolved_at"], incident["resolved_at"]
    if ticket["status"] == "spam" or settled is None or with_incident is None:
        return False
    return bool(settled >= with_incident)


def sms_text(incident_number: str, text: str) -> str:
    """The SMS of an update: the incident's number and the text, shortened."""
    short = text if len(text) <= _SMS_CHARS else text[: _SMS_CHARS - 1] + "…"
    return f"[{incident_number} 進度 / update] {short}"


def _mobile_caller(conn: Connection, settings: Settings, ticket: Mapping[str, Any]) -> str | None:
    """The hotline caller of a phone ticket, if their caller id is a mobile."""
    if ticket["channel"] != "phone":
        return None
    caller = conn.execute(
        select(call_table.c.from_number)
        .where(call_table.c.ticket_id == ticket["id"])
        .order_by(call_table.c.id)
        .limit(1)
    ).scalar()
    return str(caller) if caller and is_mobile(settings, str(caller)) else None


def _mail_row(
    conn: Connection,
    settings: Settings,
    ticket: Mapping[str, Any],
    incident: Mapping[str, Any],
    context: dict[str, Any],
    key: str,
) -> dict[str, Any]:
    """The outbox row of the update mail to ``ticket``'s requester, threaded under their ticket."""
    address = str(ticket["requester_email"]).lower()
    rendered = render_notice(
        "incident_update",
        {
            **context,
            "ticket": {"number": ticket["number"], "subject": ticket["subject"]},
            "incident": {"number": incident["number"], "subject": incident["subject"]},
            "requester_name": ticket["requester_name"],
        },
        settings.acknowledgements.templates_dir,
    )
    thread = conn.execute(
        select(message_table.c.header_message_id)
        .where(message_table.c.ticket_id == ticket["id"], message_table.c.header_message_id.is_not(None))
        .order_by(message_table.c.id.desc())
        .limit(1)
    ).scalar()
    from_address = settings.outbound_mail.from_address
    return {
        "kind": "mail",
        "purpose": PURPOSE,
        "idempotency_key": key[:255],
        "ticket_id": ticket["id"],
        "recipient": address,
        "payload": mail_payload(
            from_address=from_address,
            to_address=address,
            to_name=ticket["requester_name"],
            rendered=rendered,
            message_id=new_message_id(from_address, PURPOSE),
            in_reply_to=thread,
            references=[thread] if thread else [],
            auto_submitted="auto-generated",
        ),
    }


def _queue(
    conn: Connection,
    settings: Settings,
    incident: Mapping[str, Any],
    tickets: Sequence[Mapping[str, Any]],
    update: int,
    context: dict[str, Any],
    now: dt.datetime,
) -> tuple[int, int, list[dict[str, Any]]]:
    """Queue one mail or SMS per requester (address) of ``tickets``; (mails, SMS, events)."""
    prefix = f"{PURPOSE}:{incident['id']}:{update}:"
    seen: set[str] = set()
    mails = sms = 0
    events: list[dict[str, Any]] = []
    for ticket in tickets:
        sent_to: list[str] = []
        address = (ticket["requester_email"] or "").lower()
        if address and address not in seen:
            seen.add(address)
            mails += enqueue(
                conn, [_mail_row(conn, settings, ticket, incident, context, prefix + address)], now
            )
            sent_to.append(address)
        caller = _mobile_caller(conn, settings, ticket)
        if caller and caller not in seen:
            seen.add(caller)
            row = {
                "kind": "sms",
                "purpose": PURPOSE,
                "idempotency_key": prefix + caller,
                "ticket_id": ticket["id"],
                "recipient": caller,
                "payload": {"to": caller, "body": sms_text(incident["number"], context["text"])},
            }
            sms += enqueue(conn, [row], now)
            sent_to.append(caller)
        if sent_to:
            detail = {"incident": incident["number"], "update": update, "to": sent_to}
            events.append(event(ticket["id"], QUEUED_EVENT, now, actor=context["by"], detail=detail))
    return mails, sms, events


def send_update(
    engine: Engine, settings: Settings, number: str, text: str, *, by: str, now: dt.datetime | None = None
) -> UpdateSent:
    """Send the major incident ``number``'s status update ``text`` to its requesters (module
    docstring); :class:`LinkRefused` for an unknown ticket, a linked one, or an empty text."""
    now = now or utcnow()
    text = text.strip()
    if not text or len(text) > MAX_TEXT:
        raise LinkRefused(f"the update text must have 1 to {MAX_TEXT} characters (got {len(text)})")
    with engine.begin() as conn:
        try:
            incident = locked_row(conn, number)
        except TicketNotFound:
            raise LinkRefused(f"no ticket {number}") from None
        if incident["major_incident_id"] is not None:
            above = conn.execute(
                select(ticket_table.c.number).where(ticket_table.c.id == incident["major_incident_id"])
            ).scalar_one()
            raise LinkRefused(f"{number} is linked to {above}: send the update on {above}")
        earlier = conn.execute(
            select(func.count()).where(
                ticket_event_table.c.ticket_id == incident["id"], ticket_event_table.c.kind == UPDATE_EVENT
            )
        ).scalar_one()
        update = int(earlier) + 1
        at_local = now.astimezone(ZoneInfo(settings.tickets.timezone)).strftime("%Y-%m-%d %H:%M")
        context = {"text": text, "by": by, "at_local": at_local}
        tickets = [incident, *(t for t in linked_tickets(conn, incident["id"]) if following(incident, t))]
        mails, sms, events = _queue(conn, settings, incident, tickets, update, context, now)
        detail = {
            "update": update,
            "text": text,
            "by": by,
            "mails": mails,
            "sms": sms,
            "tickets": len(tickets),
        }
        record_events(conn, [event(incident["id"], UPDATE_EVENT, now, actor=by, detail=detail), *events])
    log.info("incident_update_queued", ticket=number, update=update, mails=mails, sms=sms, by=by)
    return UpdateSent(number, update, mails, sms)
