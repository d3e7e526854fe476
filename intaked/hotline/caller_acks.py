"""The acknowledgement to a hotline caller, queued in the outbox in the transaction that filed
the ticket (intaked/outbound/outbox.py).

- an SMS with the ticket number (``kind = "sms"``, purpose ``hotline_ack``, payload ``{"to",
  "body"}``) when the caller id starts with one of ``hotline.sms_ack_prefixes`` (mobiles);
- the usual mail acknowledgement (intaked/outbound/acks.py, the ``ack`` templates) when the
  directory knows the caller's e-mail address.

Idempotency keys are per ticket and recipient, so nobody gets two acknowledgements for one ticket;
a repeat call that joins a ticket queues none (the caller of :func:`queue_caller_acks` only calls
it for a new ticket).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection

from intaked.config import Settings
from intaked.outbound.acks import AckCandidate, queue_acknowledgements
from intaked.outbound.outbox import enqueue
from intaked.tickets.filing import ack_ticket

SMS_PURPOSE = "hotline_ack"


def is_mobile(settings: Settings, caller: str) -> bool:
    """The caller id is a mobile number that can take an SMS (``hotline.sms_ack_prefixes``)."""
    return caller.startswith("+") and any(caller.startswith(p) for p in settings.hotline.sms_ack_prefixes)


def ack_sms_text(ticket_number: str) -> str:
    """The SMS to the caller: the ticket number, Chinese then English (one UCS-2 segment, 70
    characters, with the default ``IT-YYYYMM-NNNNN`` numbers)."""
    return f"IT 服務台已收到您的來電，案件編號 {ticket_number}。Your IT ticket: {ticket_number}"


def queue_caller_acks(
    conn: Connection,
    settings: Settings,
    ticket: Mapping[str, Any],
    *,
    caller: str,
    received_at: dt.datetime,
    now: dt.datetime,
) -> list[dict[str, Any]]:
    """Queue the caller's acknowledgements of a new ticket (its row: the number, and the
    requester's e-mail address and name the directory gave it); returns the ticket events
    (``ack_queued`` per SMS or mail, ``ack_suppressed`` with the reason otherwise) as
    ``{"ticket_id", "kind", "detail"}``."""
    ticket_id = int(ticket["id"])
    events: list[dict[str, Any]] = []
    if is_mobile(settings, caller):
        enqueue(
            conn,
            [
                {
                    "kind": "sms",
                    "purpose": SMS_PURPOSE,
                    "idempotency_key": f"{SMS_PURPOSE}:{ticket_id}:{caller}",
                    "ticket_id": ticket_id,
                    "recipient": caller,
                    "payload": {"to": caller, "body": ack_sms_text(ticket["number"])},
                }
            ],
            now,
        )
        events.append({"ticket_id": ticket_id, "kind": "ack_queued", "detail": {"to": caller, "via": "sms"}})
    if ticket["requester_email"]:
        mail = AckCandidate(
            ticket_id=ticket_id,
            ticket=ack_ticket(ticket),
            requester=ticket["requester_email"],
            requester_name=ticket["requester_name"],
            parsed=None,  # a call: no message to thread under or to check for a mail loop
            envelope_from=None,
            received_at=received_at,
        )
        events += queue_acknowledgements(conn, [mail], settings, now)
    if not events:
        events.append(
            {
                "ticket_id": ticket_id,
                "kind": "ack_suppressed",
                "detail": {
                    "reason": f"caller id {caller or '(none)'} is not a mobile and not in the directory"
                },
            }
        )
    return events
