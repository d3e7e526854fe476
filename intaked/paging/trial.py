"""A trial page: one SMS, call or e-mail to one person, with no ticket and no escalation, so that
an operator can check that a contact method works (``intaked page test``).

It goes out like every page, through the outbox and the running daemon's senders (outbox purpose
``page_test``), so it also shows that the daemon can reach the provider. The person is told it is
a test and that nothing needs doing.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, select

from intaked.config import Settings
from intaked.outbound.compose import mail_payload, new_message_id
from intaked.outbound.outbox import enqueue
from intaked.store.models import outbox_table
from intaked.store.types import utcnow

CHANNELS = ("sms", "call", "email")
PURPOSE = "page_test"
TRIAL_ZH = "這是 intaked 的測試呼叫，用來確認聯絡方式，無需任何動作。"
TRIAL_EN = "This is a test page from intaked, checking a contact method. No action is needed."

#: Builds the TwiML a trial call speaks, from its Chinese and English text (the command passes
#: intaked.twilio's; paging sits below twilio).
SpeechTwiml = Callable[[str, str], str]


class TrialPageRefused(ValueError):
    """The trial page cannot be sent as asked (unknown person, no such address, channel off)."""


def queue_trial_page(
    engine: Engine,
    settings: Settings,
    person_name: str,
    channel: str,
    speech_twiml: SpeechTwiml,
    now: dt.datetime | None = None,
) -> int:
    """Queue a trial page to ``person_name`` by ``channel``; its outbox row's id."""
    row = trial_row(settings, person_name, channel, speech_twiml)
    key = f"{PURPOSE}:{person_name}:{channel}:{uuid.uuid4().hex}"
    with engine.begin() as conn:
        enqueue(conn, [{**row, "purpose": PURPOSE, "idempotency_key": key}], now or utcnow())
        return int(
            conn.execute(select(outbox_table.c.id).where(outbox_table.c.idempotency_key == key)).scalar_one()
        )


def trial_row(
    settings: Settings, person_name: str, channel: str, speech_twiml: SpeechTwiml
) -> dict[str, Any]:
    """The outbox row (kind, recipient, payload) of a trial page, or TrialPageRefused saying why not."""
    person = settings.people.get(person_name)
    if person is None:
        known = ", ".join(sorted(settings.people)) or "none"
        raise TrialPageRefused(f"no person named {person_name!r} (defined: {known})")
    if channel not in CHANNELS:
        raise TrialPageRefused(f"channel {channel!r} is not one of {', '.join(CHANNELS)}")
    if channel == "email":
        return _trial_mail(settings, person_name, person.email, person.display_name or person_name)
    if not settings.twilio.enabled:
        raise TrialPageRefused(f"{channel} needs Twilio: set twilio.account_sid (and the rest of [twilio])")
    if channel == "sms":
        body = f"【intaked 測試】{TRIAL_ZH} / {TRIAL_EN}"
        return {"kind": "sms", "recipient": person.phone, "payload": {"to": person.phone, "body": body}}
    twiml = speech_twiml(TRIAL_ZH, TRIAL_EN)
    return {"kind": "call", "recipient": person.phone, "payload": {"to": person.phone, "twiml": twiml}}


def _trial_mail(settings: Settings, person_name: str, address: str, name: str) -> dict[str, Any]:
    if not address:
        raise TrialPageRefused(f"people.{person_name} has no email address")
    from_address = settings.outbound_mail.from_address
    payload = mail_payload(
        from_address=from_address,
        to_address=address,
        to_name=name,
        rendered={
            "subject": "[intaked 測試 / test] 聯絡方式測試 / contact check",
            "text": f"{TRIAL_ZH}\n\n{TRIAL_EN}\n",
        },
        message_id=new_message_id(from_address, PURPOSE),
        in_reply_to=None,
        references=[],
        auto_submitted="auto-generated",
    )
    return {"kind": "mail", "recipient": address.lower(), "payload": payload}
