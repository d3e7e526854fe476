"""Hotline calls as tickets: the core functions, each run inside the caller's transaction (sync,
on a database thread), used by the webhooks (intaked/twilio/hotline_webhooks.py) and reconciliation.

- :func:`record_call`: a call arrived. Idempotent on the CallSid. A call from a number whose open
  ``phone`` ticket had a call within ``hotline.repeat_window`` joins that ticket (重覆報修: the
  call is still its own ``calls`` and ``messages`` row, event ``call_added``); any other call files
  a new ticket (status ``new``, its triage deadline, the directory's name, e-mail, department
  and site for the caller id, event ``created``) and acknowledges it to the caller
  (intaked/hotline/acks.py).
- :func:`set_menu_choice`: the key pressed at the menu (1 emergency, 2 other, 3 security; none:
  2) routes the ticket (intaked/routing/decide.py ``route_call``); the emergency choice is a
  trusted P1 suggestion that pages QRC in the same transaction, marked unconfirmed, unless it
  joins an emergency already being paged (intaked/hotline/emergencies.py); the security
  choice sets category ``security_incident``, team ``hotline.security_team`` and tells
  ``hotline.security_notify`` by mail.
- :func:`voicemail_left`: the ``<Record>`` action reported a recording: outcome ``voicemail``.
- :func:`call_status`: the call's progress; a call that ends without a voicemail and without the
  desk answering is ``missed``. Both a missed call and a voicemail set
  ``tickets.callback_requested`` (someone must call back).

Each call is one ``messages`` row of its ticket (channel ``phone``, ``header_message_id`` and
``dedupe_key`` ``call:<CallSid>``) whose text is rewritten as the call progresses.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import Connection, func, insert, select, update

from intaked.config import Settings
from intaked.hotline.caller_acks import queue_caller_acks
from intaked.hotline.emergencies import emergency_to_join, join_emergency, lock_emergencies
from intaked.intake.ingest import _with_deadlines, clean_text, to_json
from intaked.outbound.compose import mail_payload, new_message_id
from intaked.outbound.outbox import enqueue
from intaked.paging.pages import start_page
from intaked.paging.policy import PAGED_PRIORITIES
from intaked.routing.decide import RoutedReport, route_call
from intaked.sla.context import current_context
from intaked.sla.deadlines import compute
from intaked.sla.targets import wall_time
from intaked.store.dialect import lock_name, locked
from intaked.store.models import call_table, message_table, ticket_event_table, ticket_table
from intaked.store.numbering import allocate_ticket_numbers, ticket_period

log = structlog.get_logger(__name__)

ACTOR = "intaked"
OPEN_STATUSES = ("new", "open", "pending")
#: CallStatus values after which the call is over.
FINAL_STATUSES = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})
DEFAULT_CHOICE = "2"
SECURITY_CHOICE = "3"
SECURITY_CATEGORY = "security_incident"
SECURITY_PURPOSE = "hotline_security"
#: The menu: key → (Chinese, English).
MENU = {
    "1": ("產線停工或全公司系統中斷", "production line or company-wide system down"),
    "2": ("其他 IT 問題", "other IT problem"),
    "3": ("資訊安全事件", "information-security incident"),
}
_RANK = {"P1": 1, "P2": 2, "P3": 3, "P4": 4}

_calls = call_table
_tickets = ticket_table
_messages = message_table
_events = ticket_event_table


class UnknownCall(LookupError):
    """No ``calls`` row for that CallSid."""


@dataclass(frozen=True, slots=True)
class CallFacts:
    """What Twilio says of a call when it arrives (webhook) or when it is listed (reconciliation)."""

    call_sid: str
    from_number: str
    to_number: str
    caller_name: str | None
    started_at: dt.datetime
    status: str | None
    source: str = "webhook"


@dataclass(frozen=True, slots=True)
class FiledCall:
    """Where a call went: its ``calls`` row and ticket; ``joined`` an open ticket of the same
    caller instead of filing one; ``created`` is False when the CallSid was already recorded."""

    call_id: int
    ticket_id: int
    ticket_number: str
    joined: bool
    created: bool


@dataclass(frozen=True, slots=True)
class MenuOutcome:
    """What the menu choice did to the ticket."""

    ticket_id: int
    ticket_number: str
    choice: str
    joined: bool
    emergency: bool
    paged: bool


def _event(
    ticket_id: int, kind: str, now: dt.datetime, *, after: Any = None, detail: Any = None
) -> dict[str, Any]:
    return {
        "ticket_id": ticket_id,
        "at": now,
        "actor": ACTOR,
        "kind": kind,
        "before": None,
        "after": None if after is None else clean_text(to_json(after)),
        "detail": None if detail is None else clean_text(to_json(detail)),
    }


def _lock_caller(conn: Connection, from_number: str) -> None:
    """Serialise the calls of one caller id (PostgreSQL; SQLite has a single writer): the same
    CallSid twice, or two calls racing to file a ticket, see each other's committed rows."""
    lock_name(conn, f"hotline:{from_number}")


def _call_row(conn: Connection, call_sid: str, *, lock: bool = False) -> Any:
    query = select(_calls).where(_calls.c.call_sid == call_sid)
    if lock:
        query = locked(conn, query)
    return conn.execute(query).mappings().first()


def _ticket(conn: Connection, ticket_id: int, *, lock: bool = False) -> Any:
    query = select(_tickets).where(_tickets.c.id == ticket_id)
    if lock:
        query = locked(conn, query)  # a person's triage cannot slip between read and write
    return conn.execute(query).mappings().one()


def _first_call_id(conn: Connection, ticket_id: int) -> int:
    return int(
        conn.execute(select(func.min(_calls.c.id)).where(_calls.c.ticket_id == ticket_id)).scalar_one()
    )


def repeat_window(settings: Settings) -> dt.timedelta:
    """``hotline.repeat_window`` as a length of time (days count as 24 hours)."""
    return wall_time(settings.hotline.repeat_window)


def _joinable_ticket(conn: Connection, settings: Settings, facts: CallFacts) -> tuple[int, str] | None:
    """The open phone ticket of the same caller with a call within the repeat window, newest first."""
    if not facts.from_number.startswith("+"):
        return None  # anonymous or withheld caller ids are not one person
    window = repeat_window(settings)
    row = conn.execute(
        select(_tickets.c.id, _tickets.c.number)
        .select_from(_calls.join(_tickets, _calls.c.ticket_id == _tickets.c.id))
        .where(
            _calls.c.from_number == facts.from_number,
            _calls.c.started_at >= facts.started_at - window,
            _calls.c.started_at <= facts.started_at + window,
            _tickets.c.status.in_(OPEN_STATUSES),
            _tickets.c.channel == "phone",
        )
        .order_by(_calls.c.started_at.desc(), _calls.c.id.desc())
        .limit(1)
    ).first()
    return (int(row.id), str(row.number)) if row else None


def _local(settings: Settings, at: dt.datetime) -> str:
    return at.astimezone(ZoneInfo(settings.tickets.timezone)).strftime("%Y-%m-%d %H:%M")


def call_subject(from_number: str, choice: str | None, outcome: str) -> str:
    """A phone ticket's (and a call message's) subject: the caller id, the menu choice, and for a
    missed call or a voicemail that it needs a call back."""
    caller = from_number or "(unknown)"
    zh, en = MENU.get(choice or "", ("", ""))
    what = f"（{zh}）" if zh else ""
    if outcome == "missed":
        return f"未接來電，請回撥 {caller}{what} / Missed call from {caller}, call back"
    if outcome == "voicemail":
        return f"語音留言，請回撥 {caller}{what} / Voicemail from {caller}, call back"
    if zh:
        return f"來電 {caller}：{zh} / Call from {caller}: {en}"
    return f"來電 {caller}"


TRANSCRIPT_HEADING = "Voicemail transcript (Twilio):"

_OUTCOME_TEXT = {
    "in_progress": ("通話中", "in progress"),
    "voicemail": ("已留言，請回撥", "voicemail left, call back"),
    "missed": ("未接來電，請回撥", "missed call, call back"),
    "answered_by_desk": ("服務台已接聽", "answered by the service desk"),
}


def call_body(settings: Settings, call: Mapping[str, Any]) -> str:
    """The text of a call's ``messages`` row, from its ``calls`` row."""
    caller = call["from_number"] or "(unknown)"
    name = f" ({call['caller_name']})" if call.get("caller_name") else ""
    lines = [
        f"來電 / Call from: {caller}{name}",
        f"撥打 / To: {call['to_number']}",
        f"時間 / At: {_local(settings, call['started_at'])} ({settings.tickets.timezone})",
    ]
    if call.get("menu_choice"):
        zh, en = MENU.get(call["menu_choice"], ("", ""))
        lines.append(f"選項 / Menu: {call['menu_choice']} {zh} / {en}".rstrip(" /"))
    zh, en = _OUTCOME_TEXT.get(call["outcome"], (call["outcome"], call["outcome"]))
    lines.append(f"結果 / Outcome: {zh} / {en}")
    if call["outcome"] == "missed":
        lines.append(f"未接來電，請回撥 {caller} / missed call from {caller}, call back")
    if call.get("duration_seconds") is not None:
        lines.append(f"通話長度 / Duration: {call['duration_seconds']} s")
    if call.get("recording_seconds"):
        lines.append(f"留言長度 / Voicemail: {call['recording_seconds']} s")
    voicemail = call.get("voicemail_transcript")
    if call.get("transcript") and call["transcript"] != voicemail:
        lines.append(f"來電者說 / Caller said: {call['transcript']}")
    body = "\n".join(lines) + "\n"
    return f"{body}\n{TRANSCRIPT_HEADING}\n{voicemail}\n" if voicemail else body


def _refresh_message(conn: Connection, settings: Settings, call_sid: str) -> None:
    """Rewrite the call's message from its current ``calls`` row."""
    call = _call_row(conn, call_sid)
    if call is None or call["message_id"] is None:
        return
    conn.execute(
        update(_messages)
        .where(_messages.c.id == call["message_id"])
        .values(
            subject=call_subject(call["from_number"], call["menu_choice"], call["outcome"]),
            body_text=clean_text(call_body(settings, call)) or "",
        )
    )


def record_call(conn: Connection, settings: Settings, facts: CallFacts, now: dt.datetime) -> FiledCall:
    """Record a call to the hotline: join the caller's recent open phone ticket or file a new
    one (see the module's docstring). A CallSid already recorded files nothing."""
    bound = log.bind(call_sid=facts.call_sid)
    _lock_caller(conn, facts.from_number)
    known = _call_row(conn, facts.call_sid)
    if known is not None:
        ticket = _ticket(conn, known["ticket_id"])
        joined = _first_call_id(conn, known["ticket_id"]) != known["id"]
        return FiledCall(int(known["id"]), int(ticket["id"]), str(ticket["number"]), joined, False)

    events: list[dict[str, Any]] = []
    joinable = _joinable_ticket(conn, settings, facts)
    report: RoutedReport | None = None
    if joinable is not None:
        ticket_id, number = joinable
        conn.execute(update(_tickets).where(_tickets.c.id == ticket_id).values(updated_at=now))
    else:
        ticket_id, number, report = _file_ticket(conn, settings, facts, now)
    message_id = conn.execute(
        insert(_messages)
        .values(
            ticket_id=ticket_id,
            direction="in",
            channel="phone",
            sender=facts.from_number,
            recipients=to_json([facts.to_number]),
            subject=call_subject(facts.from_number, None, "in_progress"),
            body_text="",
            header_message_id=f"call:{facts.call_sid}",
            dedupe_key=f"call:{facts.call_sid}",
            sent_at=facts.started_at,
            created_at=now,
        )
        .returning(_messages.c.id)
    ).scalar_one()
    call_id = conn.execute(
        insert(_calls)
        .values(
            call_sid=facts.call_sid,
            ticket_id=ticket_id,
            message_id=message_id,
            from_number=facts.from_number,
            to_number=facts.to_number,
            caller_name=clean_text(facts.caller_name) or None,
            twilio_status=facts.status,
            outcome="in_progress",
            started_at=facts.started_at,
            source=facts.source,
            created_at=now,
            updated_at=now,
        )
        .returning(_calls.c.id)
    ).scalar_one()
    _refresh_message(conn, settings, facts.call_sid)
    via = {"via": "twilio", "call_sid": facts.call_sid, "message_id": f"call:{facts.call_sid}"}
    if joinable is not None:
        events.append(
            _event(
                ticket_id, "call_added", now, after={"from": facts.from_number, "to": facts.to_number, **via}
            )
        )
        bound.info("hotline_call_joined", ticket=number)
    else:
        assert report is not None
        ticket = _ticket(conn, ticket_id)
        events.append(
            _event(
                ticket_id,
                "created",
                now,
                after={
                    "number": number,
                    "status": "new",
                    "channel": "phone",
                    "subject": ticket["subject"],
                    "requester_email": ticket["requester_email"],
                    "requester_phone": facts.from_number,
                    **via,
                },
            )
        )
        if report.worth_an_event:
            events.append(_event(ticket_id, "routed", now, detail=report.event_detail()))
        acks = queue_caller_acks(
            conn,
            settings,
            ticket_id=ticket_id,
            ticket={
                "number": number,
                "subject": ticket["subject"],
                "status": "new",
                "priority": None,
                "channel": "phone",
            },
            caller=facts.from_number,
            email=ticket["requester_email"],
            name=ticket["requester_name"],
            received_at=facts.started_at,
            now=now,
        )
        events += [_event(a["ticket_id"], a["kind"], now, detail=a["detail"]) for a in acks]
        bound.info("hotline_ticket_filed", ticket=number, source=facts.source)
    conn.execute(insert(_events), events)
    return FiledCall(int(call_id), ticket_id, number, joinable is not None, True)


def _file_ticket(
    conn: Connection, settings: Settings, facts: CallFacts, now: dt.datetime
) -> tuple[int, str, RoutedReport]:
    """A new phone ticket for the call, routed (no menu choice yet) and with its triage deadline."""
    tickets = settings.tickets
    (number,) = allocate_ticket_numbers(
        conn, [ticket_period(tickets.number_prefix, facts.started_at, tickets.timezone)]
    )
    report = route_call(settings, facts.from_number or None, None, recipient=facts.to_number)
    person = report.person
    row: dict[str, Any] = {
        "number": number,
        "status": "new",
        "priority": None,
        "channel": "phone",
        "subject": call_subject(facts.from_number, None, "in_progress"),
        "requester_email": (person.email.lower() or None) if person else None,
        "parent_id": None,
        "callback_requested": False,
        "created_at": now,
        "updated_at": now,
    }
    columns = report.ticket_columns(clean_text(facts.caller_name) or None, facts.from_number or None)
    if person and person.name:
        columns["requester_name"] = person.name  # the directory knows better than the caller-id lookup
    row.update({k: clean_text(v) if isinstance(v, str) else v for k, v in columns.items()})
    _with_deadlines(conn, [row], settings)
    ticket_id = conn.execute(insert(_tickets).values(**row).returning(_tickets.c.id)).scalar_one()
    return int(ticket_id), number, report


def normalise_choice(digit: str | None) -> str:
    """The menu key as stored: 1, 2 or 3; no key, or any other key, counts as 2 (other)."""
    digit = (digit or "").strip()
    return digit if digit in MENU else DEFAULT_CHOICE


def set_menu_choice(
    conn: Connection, settings: Settings, call_sid: str, digit: str | None, now: dt.datetime
) -> MenuOutcome:
    """Store the menu choice of ``call_sid`` and route its ticket (see the module's docstring).
    The first choice of a call counts; a replay changes nothing. Raises :class:`UnknownCall`."""
    bound = log.bind(call_sid=call_sid)
    emergency_key = settings.trust.hotline_emergency_choice
    if normalise_choice(digit) == emergency_key:
        lock_emergencies(conn)  # before the rows: see intaked/hotline/emergencies.py
    call = _call_row(conn, call_sid, lock=True)
    if call is None:
        raise UnknownCall(call_sid)
    ticket = _ticket(conn, call["ticket_id"], lock=True)
    own = _first_call_id(conn, ticket["id"]) == call["id"]
    if call["menu_choice"] is not None:  # a replay: say the same, change nothing
        return MenuOutcome(
            int(ticket["id"]),
            str(ticket["number"]),
            call["menu_choice"],
            not own,
            call["menu_choice"] == emergency_key,
            _has_page(conn, int(ticket["id"])),
        )
    choice = normalise_choice(digit)
    conn.execute(update(_calls).where(_calls.c.id == call["id"]).values(menu_choice=choice, updated_at=now))
    report = route_call(settings, call["from_number"] or None, choice, recipient=call["to_number"])
    security = choice == SECURITY_CHOICE
    events = [
        _event(
            ticket["id"],
            "menu_choice",
            now,
            detail={
                "call_sid": call_sid,
                "choice": choice,
                "pressed": digit or None,
                "meaning": MENU[choice][1],
            },
        )
    ]
    suggested = report.result.suggested_priority
    more_urgent = _RANK.get(suggested or "", 99) < _RANK.get(ticket["suggested_priority"] or "", 99)
    apply = ticket["priority"] is None and (own or more_urgent or security)
    paged = False
    if apply:
        values: dict[str, Any] = {
            "category": report.result.category,
            "team": report.result.team,
            "suggested_priority": suggested,
            "suggested_by": report.suggested_by,
            "suggestion_trusted": report.suggestion_trusted,
            "updated_at": now,
        }
        if not own:  # a repeat call only adds urgency: keep what the first call routed
            values = {k: v for k, v in values.items() if v is not None or k == "updated_at"}
        if security:
            values["category"] = SECURITY_CATEGORY
            values["team"] = settings.hotline.security_team
        if own:
            values["subject"] = call_subject(call["from_number"], choice, "in_progress")
        if values.get("team", ticket["team"]) != ticket["team"]:
            deadlines = compute(current_context(conn, settings), {**ticket, **values})
            values.update(deadlines.columns())
        conn.execute(update(_tickets).where(_tickets.c.id == ticket["id"]).values(**values))
        detail = report.event_detail()
        if security:
            detail.update(category=SECURITY_CATEGORY, team=settings.hotline.security_team)
        events.append(_event(ticket["id"], "routed", now, detail=detail))
        joins = None
        if values.get("suggestion_trusted") and choice == emergency_key and suggested in PAGED_PRIORITIES:
            joins = emergency_to_join(conn, settings, call, int(ticket["id"]))
        if joins is not None:  # a repeat or a flood: the QRC is told, not paged again
            join_emergency(conn, settings, call, ticket, joins, now)
            paged = True
        elif values.get("suggestion_trusted") and suggested in PAGED_PRIORITIES and suggested is not None:
            page_id = start_page(
                conn,
                settings,
                int(ticket["id"]),
                suggested,
                reason=f"trusted suggestion ({report.suggested_by or 'hotline'})",
                unconfirmed=True,
                actor=ACTOR,
                now=now,
            )
            paged = page_id is not None or _has_page(conn, int(ticket["id"]))
    if security and settings.hotline.security_notify:
        events.append(_queue_security_notice(conn, settings, call, ticket, now))
    conn.execute(insert(_events), events)
    _refresh_message(conn, settings, call_sid)
    bound.info("hotline_menu_choice", ticket=ticket["number"], choice=choice, paged=paged)
    return MenuOutcome(
        int(ticket["id"]), str(ticket["number"]), choice, not own, choice == emergency_key, paged
    )


def _has_page(conn: Connection, ticket_id: int) -> bool:
    from intaked.store.models import page_table

    return (
        conn.execute(select(page_table.c.id).where(page_table.c.ticket_id == ticket_id)).first() is not None
    )


def _queue_security_notice(
    conn: Connection, settings: Settings, call: Mapping[str, Any], ticket: Mapping[str, Any], now: dt.datetime
) -> dict[str, Any]:
    """A mail to ``hotline.security_notify`` about this security call (one per call)."""
    recipient = settings.hotline.security_notify
    caller = call["from_number"] or "(unknown)"
    who = ticket["requester_name"] or call["caller_name"] or caller
    text_body = (
        f"資訊安全事件專線來電 / Information-security call to the hotline\n\n"
        f"案件 / Ticket: {ticket['number']}\n"
        f"來電 / Caller: {caller} ({who})\n"
        f"部門 / Department: {ticket['requester_department'] or '-'}\n"
        f"時間 / At: {_local(settings, call['started_at'])} ({settings.tickets.timezone})\n"
        f"CallSid: {call['call_sid']}\n"
    )
    message_id = new_message_id(settings.outbound_mail.from_address, SECURITY_PURPOSE)
    enqueue(
        conn,
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
    return _event(
        ticket["id"], f"{SECURITY_PURPOSE}_queued", now, detail={"to": recipient, "message_id": message_id}
    )


def _flag_callback(
    conn: Connection,
    settings: Settings,
    call: Mapping[str, Any],
    kind: str,
    outcome: str,
    now: dt.datetime,
) -> None:
    """Someone must call the caller back: the ticket's flag, its subject when this call filed it,
    and an event (``missed_call`` or ``voicemail_left``)."""
    ticket_id = int(call["ticket_id"])
    values: dict[str, Any] = {"callback_requested": True, "updated_at": now}
    if _first_call_id(conn, ticket_id) == call["id"]:
        values["subject"] = call_subject(call["from_number"], call["menu_choice"], outcome)
    conn.execute(update(_tickets).where(_tickets.c.id == ticket_id).values(**values))
    caller = call["from_number"] or "(unknown)"
    summary = (
        f"未接來電，請回撥 {caller} / missed call from {caller}, call back"
        if outcome == "missed"
        else f"語音留言，請回撥 {caller} / voicemail from {caller}, call back"
    )
    conn.execute(
        insert(_events),
        [
            _event(
                ticket_id,
                kind,
                now,
                detail={"call_sid": call["call_sid"], "from": caller, "summary": summary},
            )
        ],
    )


def voicemail_left(
    conn: Connection, settings: Settings, call_sid: str, seconds: int, now: dt.datetime
) -> bool:
    """The ``<Record>`` action reported a recording of ``seconds``: outcome ``voicemail`` (unless
    the recording was already found absent, silent or too short) and a call back requested.
    True when this changed the call."""
    call = _call_row(conn, call_sid, lock=True)
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
    _flag_callback(conn, settings, call, "voicemail_left", "voicemail", now)
    _refresh_message(conn, settings, call_sid)
    log.info("hotline_voicemail_left", call_sid=call_sid, seconds=seconds)
    return True


def speech_heard(
    conn: Connection, settings: Settings, call_sid: str, text: str, confidence: float | None, now: dt.datetime
) -> bool:
    """The caller's spoken description (``<Gather input="speech">``): the call's transcript, with
    the recogniser's confidence, shown in the call's message. True when this changed the call."""
    call = _call_row(conn, call_sid, lock=True)
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
    conn.execute(
        insert(ticket_event_table),
        [
            _event(
                call["ticket_id"],
                "transcript_added",
                now,
                detail={
                    "call_sid": call_sid,
                    "source": "speech",
                    "confidence": confidence,
                    "chars": len(text),
                },
            )
        ],
    )
    _refresh_message(conn, settings, call_sid)
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
    call = _call_row(conn, call_sid, lock=True)
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
        _flag_callback(conn, settings, call, "missed_call", "missed", now)
        log.info("hotline_call_missed", call_sid=call_sid, status=status)
    _refresh_message(conn, settings, call_sid)
    return str(outcome)


def desk_available(conn: Connection, settings: Settings, now: dt.datetime) -> bool:
    """The desk is rung first: ``hotline.desk_number`` is set and ``now`` is working time of
    ``hotline.desk_calendar`` (``sla.calendar`` when empty)."""
    hotline = settings.hotline
    if not hotline.desk_number:
        return False
    calendar = current_context(conn, settings).calendars[hotline.desk_calendar or settings.sla.calendar]
    return calendar.is_working_time(now)
