"""Storing an answer to a survey, in the caller's transaction (intake for mail, the SMS webhook
for SMS), once the answer's message is stored on the ticket. The ticket's status never changes.

- automatic mail (an out-of-office, a bounce) is ignored: event ``survey_reply_ignored``;
- an answer received after ``expires_at`` is not scored and not answered: ``survey_answer_late``;
- a score 1-5 sets ``satisfaction_score``, ``satisfaction_at`` and, when one came with it,
  ``satisfaction_comment``: ``satisfaction_answered`` (``before``/``after``: score and comment).
  A later valid answer replaces the score (people correct themselves); a comment, once given,
  stays until a later answer brings another;
- an answer without a score keeps its text as the comment (``satisfaction_comment_added``); the
  first such answer to a survey not yet answered also gets the one clarifying answer
  (``survey_clarification_queued``, outbox key ``survey_clarify:<survey id>``), any later one
  none.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import Connection, update

from intaked.config import Settings
from intaked.outbound.compose import mail_payload, new_message_id
from intaked.outbound.outbox import enqueue
from intaked.store.models import survey_table, ticket_table
from intaked.surveys.answers import Answer, read_mail_answer, read_sms_answer
from intaked.surveys.rows import event, lock_survey, record, ticket_of
from intaked.surveys.texts import clarify_mail, clarify_sms

log = structlog.get_logger(__name__)
CLARIFY = "survey_clarify"
_s = survey_table
_t = ticket_table


@dataclass(frozen=True, slots=True)
class Reply:
    """An answer to survey ``survey_id``, already stored as a message on its ticket."""

    survey_id: int
    text: str  # the mail's plain text, or the SMS body
    received_at: dt.datetime  # when intaked took it in: the answer window is checked against it
    machine: str | None = None  # why it is automatic mail
    message_id: str | None = None  # the answer mail's Message-ID (the clarification replies to it)


def record_answer(conn: Connection, settings: Settings, reply: Reply, now: dt.datetime) -> str:
    """Store ``reply``'s score or comment on the ticket; returns what it was: ``ignored``,
    ``late``, ``scored`` or ``comment``."""
    survey = lock_survey(conn, reply.survey_id)
    ticket = ticket_of(conn, survey["ticket_id"])
    bound = log.bind(ticket=ticket["number"], survey=survey["id"], channel=survey["channel"])
    detail: dict[str, Any] = {"survey": survey["id"], "via": survey["channel"]}
    if reply.machine is not None:
        record(
            conn,
            [event(ticket["id"], "survey_reply_ignored", now, detail={**detail, "reason": reply.machine})],
        )
        bound.info("survey_reply_ignored", reason=reply.machine)
        return "ignored"
    if reply.received_at > survey["expires_at"]:
        late = {
            **detail,
            "expires_at": survey["expires_at"].isoformat(),
            "received_at": reply.received_at.isoformat(),
        }
        record(conn, [event(ticket["id"], "survey_answer_late", now, detail=late)])
        bound.info("survey_answer_late")
        return "late"
    if survey["channel"] == "sms":
        answer = read_sms_answer(reply.text, survey["code"] or "")
    else:
        answer = read_mail_answer(reply.text)
    if answer.score is not None:
        _score(conn, ticket, survey, answer, detail, now)
        bound.info("satisfaction_answered", score=answer.score)
        return "scored"
    _comment_only(conn, settings, ticket, survey, reply, answer, detail, now)
    return "comment"


def _score(
    conn: Connection, ticket: Any, survey: Any, answer: Answer, detail: dict[str, Any], now: dt.datetime
) -> None:
    before = {"score": ticket["satisfaction_score"], "comment": ticket["satisfaction_comment"]}
    comment = answer.comment or ticket["satisfaction_comment"]
    conn.execute(
        update(_t)
        .where(_t.c.id == ticket["id"])
        .values(
            satisfaction_score=answer.score, satisfaction_comment=comment, satisfaction_at=now, updated_at=now
        )
    )
    conn.execute(update(_s).where(_s.c.id == survey["id"]).values(state="answered", answered_at=now))
    after = {"score": answer.score, "comment": comment}
    replaced = {**detail, "replaced": ticket["satisfaction_score"] is not None}
    record(
        conn, [event(ticket["id"], "satisfaction_answered", now, before=before, after=after, detail=replaced)]
    )


def _comment_only(
    conn: Connection,
    settings: Settings,
    ticket: Any,
    survey: Any,
    reply: Reply,
    answer: Answer,
    detail: dict[str, Any],
    now: dt.datetime,
) -> None:
    events = []
    if answer.comment:
        conn.execute(
            update(_t)
            .where(_t.c.id == ticket["id"])
            .values(satisfaction_comment=answer.comment, updated_at=now)
        )
        before, after = {"comment": ticket["satisfaction_comment"]}, {"comment": answer.comment}
        events.append(
            event(ticket["id"], "satisfaction_comment_added", now, before=before, after=after, detail=detail)
        )
    values: dict[str, Any] = {"invalid_answers": survey["invalid_answers"] + 1}
    clarify = survey["state"] == "sent" and survey["invalid_answers"] == 0
    if clarify:
        values.update(state="clarified", clarified_at=now)
        enqueue(conn, [_clarification(settings, ticket, survey, reply)], now)
        events.append(
            event(
                ticket["id"], "survey_clarification_queued", now, detail={**detail, "to": survey["address"]}
            )
        )
    conn.execute(update(_s).where(_s.c.id == survey["id"]).values(**values))
    record(conn, events)
    log.info("survey_answer_without_score", ticket=ticket["number"], survey=survey["id"], clarified=clarify)


def _clarification(settings: Settings, ticket: Any, survey: Any, reply: Reply) -> dict[str, Any]:
    """The outbox row of the one clarifying answer: an SMS, or a mail in the survey's thread."""
    row: dict[str, Any] = {
        "purpose": CLARIFY,
        "idempotency_key": f"{CLARIFY}:{survey['id']}",
        "ticket_id": ticket["id"],
        "recipient": survey["address"],
    }
    if survey["channel"] == "sms":
        return {
            **row,
            "kind": "sms",
            "payload": {"to": survey["address"], "body": clarify_sms(survey["code"] or "")},
        }
    references = [r for r in (survey["message_id"], reply.message_id) if r]
    payload = mail_payload(
        from_address=settings.outbound_mail.from_address,
        to_address=survey["address"],
        to_name=ticket["requester_name"],
        rendered=clarify_mail(settings, ticket),
        message_id=new_message_id(settings.outbound_mail.from_address, "survey"),
        in_reply_to=reply.message_id or survey["message_id"],
        references=references,
        auto_submitted="auto-replied",
    )
    return {**row, "kind": "mail", "payload": payload}
