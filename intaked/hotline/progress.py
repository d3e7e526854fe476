"""A hotline call's progress after it arrived: a voicemail left, the caller's spoken description,
the call's status; a call that ends unanswered without a voicemail is ``missed``, and both a
missed call and a voicemail set ``tickets.callback_requested`` (someone must call back)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import structlog
from sqlalchemy import Connection, select, update

from intaked.config import Settings
from intaked.hotline.callmessage import UnknownCall, call_row, call_subject, first_call_id, refresh_message
from intaked.store.models import call_table, ticket_table
from intaked.tickets.events import event, record_events

log = structlog.get_logger(__name__)

#: CallStatus values after which the call is over.
FINAL_STATUSES = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})

_calls = call_table
_tickets = ticket_table


def _flag_callback(
    conn: Connection,
    settings: Settings,
    call: Mapping[str, Any],
    kind: str,
    outcome: str,
    now: dt.datetime,
) -> str:
    """Someone must call the caller back: the ticket's flag, its subject when this call filed it,
    and an event (``missed_call`` or ``voicemail_left``). Returns the ticket's number."""
    ticket_id = int(call["ticket_id"])
    values: dict[str, Any] = {"callback_requested": True, "updated_at": now}
    if first_call_id(conn, ticket_id) == call["id"]:
        values["subject"] = call_subject(call["from_number"], call["menu_choice"], outcome)
    conn.execute(update(_tickets).where(_tickets.c.id == ticket_id).values(**values))
    caller = call["from_number"] or "(unknown)"
    summary = (
        f"未接來電，請回撥 {caller} / missed call from {caller}, call back"
        if outcome == "missed"
        else f"語音留言，請回撥 {caller} / voicemail from {caller}, call back"
    )
    detail = {"call_sid": call["call_sid"], "from": caller, "summary": summary}
    record_events(conn, [event(ticket_id, kind, now, detail=detail)])
    return str(conn.execute(select(_tickets.c.number).where(_tickets.c.id == ticket_id)).scalar_one())


def voicemail_left(
    conn: Connection, settings: Settings, call_sid: str, seconds: int, now: dt.datetime
) -> bool:
    """The ``<Record>`` action reported a recording of ``seconds``: outcome ``voicemail`` (unless
    the recording was already found absent, silent or too short) and a call back requested.
    True when this changed the call."""
    call = call_row(conn, call_sid, lock=True)
    if call is None:
        raise UnknownCall(call_sid)
    if seconds <= 0 or call["outcome"] not in ("in_progress", "missed") or call["recording_error"]:
        return False
    conn.execute(
        update(_calls)
        .where(_calls.c.id == call["id"])
        .values(
            outcome="voicemail",
            recording_seconds=call["recording_seconds"] if call["recording_seconds"] is not None else seconds,
            updated_at=now,
        )
    )
    number = _flag_callback(conn, settings, call, "voicemail_left", "voicemail", now)
    refresh_message(conn, settings, call_sid)
    log.info("hotline_voicemail_left", ticket=number, call_sid=call_sid, seconds=seconds)
    return True


def speech_heard(
    conn: Connection, settings: Settings, call_sid: str, text: str, confidence: float | None, now: dt.datetime
) -> bool:
    """The caller's spoken description (``<Gather input="speech">``): the call's transcript, with
    the recogniser's confidence, shown in the call's message. True when this changed the call."""
    call = call_row(conn, call_sid, lock=True)
    if call is None:
        raise UnknownCall(call_sid)
    text = " ".join(text.split())
    if not text or call["transcript_source"] == "speech":
        return False
    conn.execute(
        update(_calls)
        .where(_calls.c.id == call["id"])
        .values(transcript=text, transcript_confidence=confidence, transcript_source="speech", updated_at=now)
    )
    detail = {"call_sid": call_sid, "source": "speech", "confidence": confidence, "chars": len(text)}
    record_events(conn, [event(call["ticket_id"], "transcript_added", now, detail=detail)])
    refresh_message(conn, settings, call_sid)
    log.info("hotline_speech_heard", call_sid=call_sid, confidence=confidence, chars=len(text))
    return True


def call_status(
    conn: Connection,
    settings: Settings,
    call_sid: str,
    status: str | None,
    duration: int | None,
    answered_by_desk: bool,
    now: dt.datetime,
) -> str:
    """Record the call's progress; returns its outcome. A call that ends (CallStatus completed,
    busy, failed, no-answer, canceled) still ``in_progress`` (no voicemail, the desk did not
    answer) becomes ``missed``, flagged for a call back. Raises :class:`UnknownCall`."""
    call = call_row(conn, call_sid, lock=True)
    if call is None:
        raise UnknownCall(call_sid)
    values: dict[str, Any] = {"updated_at": now}
    if status:
        values["twilio_status"] = status[:16]
    if duration is not None:
        values["duration_seconds"] = duration
    if status == "in-progress" and call["answered_at"] is None:
        values["answered_at"] = now
    outcome = call["outcome"]
    if answered_by_desk and outcome in ("in_progress", "missed"):
        outcome = values["outcome"] = "answered_by_desk"
    final = status in FINAL_STATUSES
    if final and call["ended_at"] is None:
        values["ended_at"] = now
    missed = final and outcome == "in_progress"
    if missed:
        outcome = values["outcome"] = "missed"
    conn.execute(update(_calls).where(_calls.c.id == call["id"]).values(**values))
    if missed:
        number = _flag_callback(conn, settings, call, "missed_call", "missed", now)
        log.info("hotline_call_missed", ticket=number, call_sid=call_sid, status=status)
    refresh_message(conn, settings, call_sid)
    return str(outcome)
