"""Which new tickets get an acknowledgement, and the outbox rows and events that say so.

Called inside the ingest transaction, so a ticket and its acknowledgement commit together (or not
at all). Every acknowledgement not sent is recorded on its ticket with the reason.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Any

from sqlalchemy import Connection

from intaked.config import Settings
from intaked.outbound.compose import mail_payload, new_message_id, render_ack
from intaked.outbound.loops import suppression_reason
from intaked.outbound.outbox import enqueue, recent_counts
from intaked.parsing import ParsedMessage


@dataclass(frozen=True, slots=True)
class AckCandidate:
    """A new ticket (or a reply, for the optional notice) that may be answered."""

    ticket_id: int
    ticket: dict[str, Any]  # number, subject, status, priority, channel
    requester: str | None
    requester_name: str | None
    parsed: ParsedMessage | None
    envelope_from: str | None
    received_at: dt.datetime
    reply: bool = False  # a reply joined an existing ticket: the optional "added" notice
    withheld: str | None = None  # a reason decided before (e.g. spam): never answered


def our_addresses(settings: Settings) -> set[str]:
    """Addresses that are us: mail from them is never answered."""
    addresses = {settings.outbound_mail.sender.addr_spec.lower()}
    addresses.update(_bare(a) for a in settings.smtp_intake.recipients if not a.startswith("@"))
    addresses.update(m.username.lower() for m in settings.imap if "@" in m.username)
    addresses.update(_bare(a) for a in settings.acknowledgements.our_addresses)
    return addresses


def _bare(address: str) -> str:
    """The lower-case addr-spec of ``address``, also when written ``Name <addr>``."""
    return (parseaddr(address)[1] or address).strip().lower()


def queue_acknowledgements(
    conn: Connection, candidates: Sequence[AckCandidate], settings: Settings, now: dt.datetime
) -> list[dict[str, Any]]:
    """Queue what may be sent; returns ticket events (``ack_queued`` / ``ack_suppressed``)."""
    cfg = settings.acknowledgements
    ours = our_addresses(settings)
    limit = cfg.max_per_sender_per_hour
    counts = recent_counts(
        conn, "ack", [c.requester.lower() for c in candidates if c.requester], now - dt.timedelta(hours=1)
    )
    rows: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    for candidate in candidates:
        if candidate.reply and not cfg.notify_on_reply:
            continue
        reason = candidate.withheld
        reason = reason or (
            None if cfg.enabled else "acknowledgements are disabled (acknowledgements.enabled)"
        )
        reason = reason or suppression_reason(
            candidate.parsed, candidate.envelope_from, candidate.requester, ours
        )
        recipient = (candidate.requester or "").lower()
        if reason is None and not candidate.reply:
            if counts.get(recipient, 0) >= limit:
                reason = f"{recipient} already got {limit} acknowledgements in the last hour (rate limit)"
            counts[recipient] = counts.get(recipient, 0) + 1
        purpose = "reply_notice" if candidate.reply else "ack"
        if reason is not None:
            events.append(
                {
                    "ticket_id": candidate.ticket_id,
                    "kind": f"{purpose}_suppressed",
                    "detail": {"reason": reason},
                }
            )
            continue
        row = _ack_row(candidate, settings, purpose, recipient)
        rows.append(row)
        events.append(
            {
                "ticket_id": candidate.ticket_id,
                "kind": f"{purpose}_queued",
                "detail": {"to": recipient, "message_id": row["payload"]["message_id"]},
            }
        )
    enqueue(conn, rows, now)
    return events


def _ack_row(candidate: AckCandidate, settings: Settings, purpose: str, recipient: str) -> dict[str, Any]:
    """The outbox row of one acknowledgement (``ack``) or reply notice, threaded under the
    requester's message."""
    cfg = settings.acknowledgements
    rendered = render_ack(
        candidate.ticket,
        requester_name=candidate.requester_name,
        received_at=candidate.received_at,
        timezone=cfg.timezone,
        templates_dir=cfg.templates_dir,
        template="reply_notice" if candidate.reply else "ack",
    )
    parsed = candidate.parsed
    original = parsed.message_id if parsed else None
    references = [*(parsed.references if parsed else []), *([original] if original else [])]
    message_id = new_message_id(settings.outbound_mail.from_address, purpose)
    key_suffix = original or str(candidate.ticket_id)
    return {
        "kind": "mail",
        "purpose": purpose,
        "idempotency_key": f"{purpose}:{candidate.ticket_id}:{key_suffix}"[:255],
        "ticket_id": candidate.ticket_id,
        "recipient": recipient,
        "payload": mail_payload(
            from_address=settings.outbound_mail.from_address,
            to_address=recipient,
            to_name=candidate.requester_name,
            rendered=rendered,
            message_id=message_id,
            in_reply_to=original,
            references=references[-20:],
        )
        | {"received_at": candidate.received_at.isoformat()},
    }
