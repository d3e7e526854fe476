"""The mail to ``hotline.security_notify`` about a call to the security choice of the menu."""

from __future__ import annotations

from intaked.config import Settings
from intaked.hotline.callmessage import HeldCall, local_time
from intaked.outbound.compose import new_message_id
from intaked.outbound.notices import notice_mail
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
    rendered = {
        "subject": f"[{ticket['number']}] 資訊安全事件來電 / Security incident call from {caller}",
        "text": text_body,
    }
    key = f"{SECURITY_PURPOSE}:{call['call_sid']}:{recipient}"
    message_id = new_message_id(settings.outbound_mail.from_address, SECURITY_PURPOSE)
    mail = notice_mail(
        settings,
        recipient,
        rendered,
        purpose=SECURITY_PURPOSE,
        key=key,
        ticket_id=ticket["id"],
        message_id=message_id,
    )
    enqueue(held.conn, [mail], now)
    return event(
        ticket["id"], f"{SECURITY_PURPOSE}_queued", now, detail={"to": recipient, "message_id": message_id}
    )
