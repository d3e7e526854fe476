"""Recognising answers to surveys before anything else looks at them.

- **Mail** (called by intake's planning, before threading): a mail whose In-Reply-To or
  References name a survey mail's Message-ID (``surveys.message_id``; ours are unguessable, so
  whoever sends it answers), or whose subject carries the ticket's tag and the survey's words
  (``texts.SUBJECT_MARKERS``) and whose sender is the surveyed address. Intake then stores it as
  a message on the surveyed ticket, which it never reopens nor follows up with a new ticket, and
  hands it to :func:`~intaked.surveys.answering.record_answer`.
- **SMS** (called by the inbound SMS webhook, before page acknowledgements): an SMS from the
  surveyed number naming the survey's code. Page reply codes are digits and survey codes letters,
  so the two never meet. The SMS is stored as a message (channel ``sms``, Message-ID
  ``sms:<MessageSid>``) on the ticket and answered like mail.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, insert, select

from intaked.config import Settings
from intaked.parsing.charsets import storable_text
from intaked.store.models import message_table, survey_table, ticket_table
from intaked.surveys.answering import Reply, record_answer
from intaked.surveys.answers import sms_codes
from intaked.surveys.rows import event, record
from intaked.surveys.texts import has_marker

LOOKUP_CHUNK = 500
_s = survey_table
_t = ticket_table


@dataclass(frozen=True, slots=True)
class MailLook:
    """What intake knows of one mail: the Message-IDs it replies to (most specific first), the
    ticket numbers its subject tags, its subject and its sender's address (lower case)."""

    referenced: Sequence[str]
    tagged: Sequence[str]
    subject: str
    sender: str | None


@dataclass(frozen=True, slots=True)
class SurveyHit:
    """A mail that answers survey ``survey_id`` of ticket ``ticket_id`` (number ``number``)."""

    survey_id: int
    ticket_id: int
    number: str


def _hits(
    conn: Connection, column: str, values: Sequence[str]
) -> list[tuple[int, int, str, str, str | None]]:
    found: list[tuple[int, int, str, str, str | None]] = []
    ordered = sorted(set(values))
    for start in range(0, len(ordered), LOOKUP_CHUNK):
        key = _s.c.message_id if column == "message_id" else _t.c.number
        found += [
            (row[0], row[1], row[2], row[3], row[4])
            for row in conn.execute(
                select(_s.c.id, _s.c.ticket_id, _t.c.number, _s.c.address, _s.c.message_id)
                .join(_t, _t.c.id == _s.c.ticket_id)
                .where(_s.c.channel == "mail", key.in_(ordered[start : start + LOOKUP_CHUNK]))
            )
        ]
    return found


def find_mail_answers(conn: Connection, looks: Sequence[MailLook | None]) -> dict[int, SurveyHit]:
    """The entries of a batch (by index) that answer a survey."""
    by_id = {
        str(message_id): SurveyHit(sid, tid, number)
        for sid, tid, number, _, message_id in _hits(
            conn, "message_id", [r for look in looks if look for r in look.referenced]
        )
    }
    marked = [look.tagged for look in looks if look and look.tagged and has_marker(look.subject)]
    by_tag = {
        (number, address): SurveyHit(sid, tid, number)
        for sid, tid, number, address, _ in _hits(conn, "number", [n for tags in marked for n in tags])
    }
    answers: dict[int, SurveyHit] = {}
    for index, look in enumerate(looks):
        if look is None:
            continue
        hit = next((by_id[r] for r in look.referenced if r in by_id), None)
        if hit is None and look.sender and has_marker(look.subject):
            hit = next((by_tag[(n, look.sender)] for n in look.tagged if (n, look.sender) in by_tag), None)
        if hit is not None:
            answers[index] = hit
    return answers


def answer_by_sms(
    conn: Connection, settings: Settings, sender: str, body: str, *, sid: str, now: dt.datetime
) -> bool:
    """Store an SMS that names one of ``sender``'s survey codes as that survey's answer; False
    when it names none (it may be a page acknowledgement)."""
    codes = sms_codes(body)
    if not codes or not sender:
        return False
    survey = conn.execute(
        select(_s.c.id, _s.c.ticket_id)
        .where(_s.c.channel == "sms", _s.c.address == sender, _s.c.code.in_(codes))
        .order_by(_s.c.id.desc())
        .limit(1)
    ).first()
    if survey is None:
        return False
    key = f"sms:{sid}" if sid else None
    conn.execute(
        insert(message_table).values(
            ticket_id=survey.ticket_id,
            direction="in",
            channel="sms",
            sender=sender,
            subject="",
            body_text=storable_text(body),
            header_message_id=key,
            dedupe_key=key,
            created_at=now,
        )
    )
    added = {"from": sender, "via": "sms", "threaded_by": "survey", "message_id": key}
    record(conn, [event(survey.ticket_id, "message_added", now, after=added)])
    record_answer(conn, settings, Reply(survey.id, body, now), now)
    return True
