"""Applying Twilio's voicemail callbacks to the store: the recording status and the transcription.

Each function runs in the webhook's transaction (intaked/twilio/voicemail_webhooks.py), after the
signature was checked, and records a receipt first so that a replay changes nothing:
:func:`apply_recording_status` (idempotent on RecordingSid and RecordingStatus) queues the
download of a completed recording as an outbox row, or leaves the call ``missed``;
:func:`apply_transcription` (idempotent on TranscriptionSid) adds the transcript. The download
itself and the attachment are intaked/hotline/recordings.py and intaked/hotline/fetcher.py.
Reconciliation can call :func:`apply_recording_status` too, with a :class:`RecordingStatus` built
from Twilio's Recordings list (an empty ``recording_url``: the media URL is built from the Sid).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import Connection, select, update

from intaked.config import Settings
from intaked.hotline.callmessage import TRANSCRIPT_HEADING
from intaked.hotline.recordings import (
    FOREIGN_URL,
    OUTBOX_KIND,
    OUTBOX_PURPOSE,
    ForeignRecordingUrl,
    add_event,
    call_by_recording,
    ensure_call_message,
    lock_call,
    media_url_for,
    recording_media_url,
    touch_ticket,
)
from intaked.outbound.outbox import enqueue
from intaked.store.models import call_table, message_table
from intaked.store.receipts import record_receipt
from intaked.tickets.events import clean_text

log = structlog.get_logger(__name__)

RECORDING_ENDPOINT = "recording_status"
TRANSCRIPTION_ENDPOINT = "transcription"
#: Receipts of callbacks for a CallSid we have no row for yet (webhooks race): kept, not applied.
UNMATCHED_SUFFIX = "_unmatched"

#: Twilio's ErrorCode of a recording that is not worth keeping.
ERROR_TOO_SHORT = "16101"
ERROR_SILENT = "16102"
NO_RECORDING_CODES = frozenset({ERROR_TOO_SHORT, ERROR_SILENT})


def whole_number(value: str | None) -> int | None:
    """A Twilio parameter that should be a count of something (seconds): its value, or None."""
    text = (value or "").strip()
    return int(text) if text.isdigit() else None


@dataclass(frozen=True, slots=True)
class RecordingStatus:
    """A recordingStatusCallback's parameters."""

    account_sid: str
    call_sid: str
    recording_sid: str
    recording_url: str
    status: str  # in-progress, completed, absent, failed
    duration: int | None
    error_code: str

    @classmethod
    def from_params(cls, get: Any) -> RecordingStatus:
        """From a getter such as ``WebhookRequest.get``."""
        return cls(
            account_sid=(get("AccountSid") or "").strip(),
            call_sid=(get("CallSid") or "").strip(),
            recording_sid=(get("RecordingSid") or "").strip(),
            recording_url=(get("RecordingUrl") or "").strip(),
            status=(get("RecordingStatus") or "").strip().lower(),
            duration=whole_number(get("RecordingDuration")),
            error_code=(get("ErrorCode") or "").strip().lstrip("0"),  # "0": no error
        )

    @property
    def no_recording_reason(self) -> str | None:
        """Why there is nothing to keep (the value for ``calls.recording_error``), or None."""
        if self.error_code in NO_RECORDING_CODES:
            return self.error_code
        if self.status in ("absent", "failed"):
            return self.error_code or self.status
        if self.status == "completed" and not self.duration:
            return self.error_code or "empty"
        return None


def _receive(
    conn: Connection,
    endpoint: str,
    call: Any,
    sid: str,
    event: str,
    params: Sequence[tuple[str, str]],
    now: dt.datetime,
    bound: Any,
) -> str | None:
    """Record a callback's receipt; ``unknown_call`` (kept under ``<endpoint>_unmatched``) or
    ``replay`` when it must change nothing, None when it is to be applied."""
    if call is None:
        record_receipt(conn, endpoint + UNMATCHED_SUFFIX, sid, event, params, now)
        bound.warning("callback_for_unknown_call", endpoint=endpoint)
        return "unknown_call"
    if not record_receipt(conn, endpoint, sid, event, params, now):
        bound.info("callback_replayed", endpoint=endpoint)
        return "replay"
    return None


def _note_recording(
    conn: Connection, call_id: int, status: RecordingStatus, error: str | None, now: dt.datetime, **also: Any
) -> None:
    """Write the callback's recording (Sid, length) and why it is unusable, if it is, on the call."""
    conn.execute(
        update(call_table)
        .where(call_table.c.id == call_id)
        .values(
            recording_sid=status.recording_sid,
            recording_seconds=status.duration,
            recording_error=error[:16] if error else None,
            updated_at=now,
            **also,
        )
    )


def apply_recording_status(
    conn: Connection,
    settings: Settings,
    status: RecordingStatus,
    params: Sequence[tuple[str, str]],
    now: dt.datetime,
) -> str:
    """Apply a recording status callback in the caller's transaction; returns what happened:
    ``unknown_call`` (receipt kept under ``recording_status_unmatched``, nothing else), ``replay``,
    ``in_progress``, ``queued`` (download queued), ``refused`` (foreign URL), ``missed`` (no
    recording), ``already_attached``."""
    bound = log.bind(call_sid=status.call_sid, recording_sid=status.recording_sid, status=status.status)
    call = lock_call(conn, status.call_sid)
    refused = _receive(
        conn, RECORDING_ENDPOINT, call, status.recording_sid, status.status, params, now, bound
    )
    if refused or call is None:
        return refused or "unknown_call"
    if status.status == "in-progress":
        return "in_progress"
    if call.attachment_id is not None:
        bound.info("recording_already_attached", attached=call.recording_sid)
        return "already_attached"
    reason = status.no_recording_reason
    if reason is not None:
        _leave_missed(conn, call, status, reason, now)
        bound.info("recording_absent", reason=reason, outcome=call.outcome)
        return "missed"
    try:
        _check_media(settings, status)
    except ForeignRecordingUrl as exc:
        _refuse(conn, call, status, str(exc), now)
        bound.warning("recording_url_refused", url=status.recording_url, reason=str(exc))
        return "refused"
    _queue_download(conn, call, status, now)
    bound.info("recording_download_queued", seconds=status.duration, ticket_id=int(call.ticket_id))
    return "queued"


def _leave_missed(
    conn: Connection, call: Any, status: RecordingStatus, reason: str, now: dt.datetime
) -> None:
    """No recording to keep: the call (still in progress or missed) is ``missed`` and needs a
    call-back, with an event ``missed_call`` the first time; a call with another outcome keeps it."""
    ticket_id = int(call.ticket_id)
    missed = call.outcome in ("in_progress", "missed")
    _note_recording(conn, call.id, status, reason, now, outcome="missed" if missed else call.outcome)
    if not missed:
        return
    touch_ticket(conn, ticket_id, now, callback=True)
    if call.outcome != "missed":
        detail = {
            "call_sid": status.call_sid,
            "from": call.from_number,
            "recording_sid": status.recording_sid,
            "reason": reason,
        }
        add_event(conn, ticket_id, "missed_call", detail, now)


def _check_media(settings: Settings, status: RecordingStatus) -> None:
    """Raise :class:`ForeignRecordingUrl` unless the recording is our account's, on the API base."""
    if status.account_sid != settings.twilio.account_sid:
        raise ForeignRecordingUrl(f"callback of another account {status.account_sid!r}")
    if status.recording_url:
        recording_media_url(settings, status.recording_url, recording_sid=status.recording_sid)
    else:
        media_url_for(settings, status.recording_sid)


def _refuse(conn: Connection, call: Any, status: RecordingStatus, reason: str, now: dt.datetime) -> None:
    """A recording not fetched (:class:`ForeignRecordingUrl`): noted on the call, a call-back, an event."""
    ticket_id = int(call.ticket_id)
    _note_recording(conn, call.id, status, FOREIGN_URL, now)
    touch_ticket(conn, ticket_id, now, callback=True)
    detail = {"call_sid": status.call_sid, "recording_sid": status.recording_sid, "reason": reason[:500]}
    add_event(conn, ticket_id, "recording_refused", detail, now)


def _queue_download(conn: Connection, call: Any, status: RecordingStatus, now: dt.datetime) -> None:
    """Note the completed recording on the call and queue its download (intaked/hotline/fetcher.py)."""
    ticket_id = int(call.ticket_id)
    _note_recording(conn, call.id, status, None, now)
    touch_ticket(conn, ticket_id, now, callback=call.outcome != "answered_by_desk")
    row = {
        "kind": OUTBOX_KIND,
        "purpose": OUTBOX_PURPOSE,
        "idempotency_key": f"recording:{status.recording_sid}",
        "ticket_id": ticket_id,
        "recipient": status.call_sid,
        "payload": {"call_sid": status.call_sid, "recording_sid": status.recording_sid},
    }
    enqueue(conn, [row], now)


@dataclass(frozen=True, slots=True)
class Transcription:
    """A transcribeCallback's parameters."""

    transcription_sid: str
    status: str  # completed, failed
    text: str
    call_sid: str
    recording_sid: str

    @classmethod
    def from_params(cls, get: Any) -> Transcription:
        return cls(
            transcription_sid=(get("TranscriptionSid") or "").strip(),
            status=(get("TranscriptionStatus") or "").strip().lower(),
            text=clean_text(get("TranscriptionText") or "") or "",
            call_sid=(get("CallSid") or "").strip(),
            recording_sid=(get("RecordingSid") or "").strip(),
        )


def apply_transcription(
    conn: Connection, transcription: Transcription, params: Sequence[tuple[str, str]], now: dt.datetime
) -> str:
    """Apply a transcription callback in the caller's transaction (idempotent on TranscriptionSid);
    returns ``unknown_call``, ``replay``, ``stored`` or ``failed``.

    A completed one sets ``calls.transcript`` (``transcript_source = 'twilio'``, no confidence;
    a transcript from speech recognition already there is kept in the column) and is appended to
    the call's message text; a failed or empty one is an event ``transcription_failed``."""
    t = transcription
    bound = log.bind(
        call_sid=t.call_sid, recording_sid=t.recording_sid, transcription_sid=t.transcription_sid
    )
    call = lock_call(conn, t.call_sid) if t.call_sid else None
    if call is None and t.recording_sid:
        call = call_by_recording(conn, t.recording_sid)
    refused = _receive(conn, TRANSCRIPTION_ENDPOINT, call, t.transcription_sid, t.status, params, now, bound)
    if refused or call is None:
        return refused or "unknown_call"
    ticket_id = int(call.ticket_id)
    detail = {
        "call_sid": call.call_sid,
        "recording_sid": t.recording_sid,
        "transcription_sid": t.transcription_sid,
    }
    if t.status != "completed" or not t.text.strip():
        add_event(conn, ticket_id, "transcription_failed", {**detail, "status": t.status}, now)
        touch_ticket(conn, ticket_id, now, callback=False)
        bound.warning("transcription_failed", status=t.status)
        return "failed"
    message_id = ensure_call_message(conn, call, now)
    body = conn.execute(select(message_table.c.body_text).where(message_table.c.id == message_id)).scalar()
    text = t.text.strip()
    addition = f"{TRANSCRIPT_HEADING}\n{text}"
    conn.execute(
        update(message_table)
        .where(message_table.c.id == message_id)
        .values(body_text=f"{body}\n\n{addition}" if body else addition)
    )
    values: dict[str, Any] = {"voicemail_transcript": text, "updated_at": now}
    if call.transcript is None or call.transcript_source in (None, "twilio"):
        values.update(transcript=text, transcript_source="twilio", transcript_confidence=None)
    conn.execute(update(call_table).where(call_table.c.id == call.id).values(**values))
    touch_ticket(conn, ticket_id, now, callback=False)
    add_event(conn, ticket_id, "transcript_added", {**detail, "source": "twilio", "chars": len(text)}, now)
    bound.info("transcript_stored", chars=len(text))
    return "stored"
