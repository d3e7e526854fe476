"""The outbox row of a notice: a mail of our own about a ticket (a deadline warned or breached, a
security call, an escalation), not an answer to anyone's message. It comes from
``outbound_mail.from_address``, starts no thread (no In-Reply-To, no References) and says
``Auto-Submitted: auto-generated`` (RFC 3834), so that nobody's auto-responder answers it. A
notice to the ticket's requester (a new commitment) is the exception to "no thread": it answers
the ticket's last message.

Written in the caller's transaction like every outbox row (intaked/outbound/outbox.py ``enqueue``).
"""

from __future__ import annotations

from typing import Any

from intaked.config import Settings
from intaked.outbound.compose import mail_payload


def notice_mail(
    settings: Settings,
    to: str,
    rendered: dict[str, str],
    *,
    purpose: str,
    key: str,
    ticket_id: int,
    message_id: str,
    to_name: str | None = None,
    in_reply_to: str | None = None,
) -> dict[str, Any]:
    """The outbox row (kind ``mail``) of the notice ``rendered`` (its subject and text) to ``to``,
    under the idempotency ``key``, with our Message-ID ``message_id``; ``in_reply_to``: the
    message it answers (it then lands in that thread)."""
    return {
        "kind": "mail",
        "purpose": purpose,
        "idempotency_key": key,
        "ticket_id": ticket_id,
        "recipient": to,
        "payload": mail_payload(
            from_address=settings.outbound_mail.from_address,
            to_address=to,
            to_name=to_name,
            rendered=rendered,
            message_id=message_id,
            in_reply_to=in_reply_to,
            references=[in_reply_to] if in_reply_to else [],
            auto_submitted="auto-generated",
        ),
    }


def requester_notice_mail(
    settings: Settings,
    to: str,
    to_name: str | None,
    rendered: dict[str, str],
    *,
    purpose: str,
    key: str,
    ticket_id: int,
    message_id: str,
    in_reply_to: str | None,
) -> dict[str, Any]:
    """The outbox row (kind ``mail``) of a notice to the ticket's requester (e.g. a new commitment):
    unlike :func:`notice_mail` it answers the ticket's last message (``in_reply_to``), so that it
    lands in the requester's thread and their reply joins the ticket."""
    return notice_mail(
        settings,
        to,
        rendered,
        purpose=purpose,
        key=key,
        ticket_id=ticket_id,
        message_id=message_id,
        to_name=to_name,
        in_reply_to=in_reply_to,
    )
