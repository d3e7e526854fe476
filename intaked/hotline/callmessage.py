"""A hotline call's ``calls`` row and the ``messages`` row that shows it on its ticket: the menu,
the subject and text written from the call (rewritten as the call progresses), and the
:class:`HeldCall` that the steps of a menu choice work on."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, func, select, update

from intaked.config import Settings
from intaked.store.dialect import locked
from intaked.store.models import call_table, message_table
from intaked.tickets.events import clean_text

_calls = call_table
_messages = message_table

#: The menu: key → (Chinese, English).
MENU = {
    "1": ("產線停工或全公司系統中斷", "production line or company-wide system down"),
    "2": ("其他 IT 問題", "other IT problem"),
    "3": ("資訊安全事件", "information-security incident"),
}


class UnknownCall(LookupError):
    """No ``calls`` row for that CallSid."""


@dataclass(frozen=True, slots=True)
class HeldCall:
    """A call whose row this transaction holds, its ticket's row (held too), and the time: what
    the steps of a menu choice (routing, paging, joining an emergency, the security mail) work on."""

    conn: Connection
    call: Mapping[str, Any]
    ticket: Mapping[str, Any]
    now: dt.datetime


def call_row(conn: Connection, call_sid: str, *, lock: bool = False) -> Any:
    query = select(_calls).where(_calls.c.call_sid == call_sid)
    if lock:
        query = locked(conn, query)
    return conn.execute(query).mappings().first()


def first_call_id(conn: Connection, ticket_id: int) -> int:
    return int(
        conn.execute(select(func.min(_calls.c.id)).where(_calls.c.ticket_id == ticket_id)).scalar_one()
    )


def local_time(settings: Settings, at: dt.datetime) -> str:
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
        f"時間 / At: {local_time(settings, call['started_at'])} ({settings.tickets.timezone})",
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


def refresh_message(conn: Connection, settings: Settings, call_sid: str) -> None:
    """Rewrite the call's message from its current ``calls`` row."""
    call = call_row(conn, call_sid)
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
