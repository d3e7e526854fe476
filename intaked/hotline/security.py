"""The mail to ``hotline.security_notify`` about a call to the security choice of the menu."""

from __future__ import annotations

from intaked.config import Settings
from intaked.hotline.callmessage import HeldCall, local_time
from intaked.outbound.compose import mail_payload, new_message_id
from intaked.outbound.outbox import enqueue
from intaked.tickets.events import TicketEvent, event

SECURITY_PURPOSE = "hotline_security"


def queue_security_notice(held: HeldCall, settings: Settings) -> TicketEvent:
    """A mail to ``hotline.security_notify`` about this security call (one per call)."""
    call, ticket, now = held.call, held.ticket, held.now
    recipient = settings.hotline.security_notify
    caller = call["from_number"] or "(unknown)"
    who = ticket["requester_name"] or call["caller_name"] or caller
    text_body = (
        f"資訊安全事件專線來電 / Information-security call to the hotline\n\n"
        f"案件 / Ticket: {ticket['number']}\n"
        f"來電 / Caller: {caller} ({who})\n"
        f"部門 / Department: {ticket['requester_department'] or '-'}\n"
        f"時間 / At: {local_time(settings, call['started_at'])} ({settings.tickets.timezone})\n"
        f"CallSid: {call['call_sid']}\n"
    )
    message_id = new_message_id(settings.outbound_mail.from_address, SECURITY_PURPOSE)
    enqueue(
        held.conn,
        [
            {
                "kind": "mail",
                "purpose": SECURITY_PURPOSE,
                "idempotency_key": f"{SECURITY_PURPOSE}:{call['call_sid']}:{recipient}",
                "ticket_id": ticket["id"],
                "recipient": recipient,
                "payload": mail_payload(
                    from_address=settings.outbound_mail.from_address,
                    to_address=recipient,
                    to_name=None,
                    rendered={
                        "subject": (
                            f"[{ticket['number']}] 資訊安全事件來電 / Security incident call from {caller}"
                        ),
                        "text": text_body,
                    },
                    message_id=message_id,
                    in_reply_to=None,
                    references=[],
                    auto_submitted="auto-generated",
                ),
            }
        ],
        now,
    )
    return event(
        ticket["id"], f"{SECURITY_PURPOSE}_queued", now, detail={"to": recipient, "message_id": message_id}
    )
