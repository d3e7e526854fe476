"""Voicemail: a call's recording becomes an attachment of its ticket, its transcript part of the text.

The flow, so that no download ever runs inside a webhook's transaction or on the event loop:

1. Twilio's ``recordingStatusCallback`` (intaked/twilio/voicemail_webhooks.py) is applied by
   ``apply_recording_status`` (intaked/hotline/callbacks.py) in one short transaction: the
   receipt (a replay changes nothing), ``calls.recording_sid`` and ``recording_seconds`` (or
   ``recording_error``), and, for a completed recording, an outbox row ``kind = "recording"``,
   purpose ``voicemail``, payload ``{"call_sid", "recording_sid"}``, idempotency key
   ``recording:<RecordingSid>``. An absent,
   failed, silent (16102), too short (16101) or empty recording leaves the call ``missed``, flagged
   for a call-back.
2. The voicemail fetcher (intaked/hotline/fetcher.py), in the outbox process, claims that row,
   downloads the media through the phone provider (``fetch_recording``, intaked/twilio/media.py;
   blocking, on a database thread) and, in the transaction that marks the row sent, stores it
   with :func:`attach_recording`. Temporary trouble (5xx, 429, timeouts, a 404 right after
   completion) is retried with the outbox's backoff; a refusal (401, 403, another 4xx, too
   large) fails the row and is recorded on the call.
3. The transcription callback is applied by ``apply_transcription`` (intaked/hotline/callbacks.py).

Where the media comes from: never from the ``RecordingUrl`` Twilio sent as such. The URL is only
*checked* (:func:`recording_media_url`: same scheme, host and port as ``twilio.api_base_url``, no
user information, path ``/2010-04-01/Accounts/<our AccountSid>/Recordings/RE<32 hex>``), and the
download URL is then *built* from the checked RecordingSid and our own account on the configured
API base (:func:`media_url_for`). A URL on another host, of another account or with a path trick
is refused before anything is requested, so our Basic credentials are only ever sent to the API
base; a redirect the API answers with is followed by ``requests``, which drops the credentials
when the host changes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from typing import Any
from urllib.parse import urlsplit

import structlog
from sqlalchemy import Connection, select, update

from intaked.config import Settings, TwilioSettings
from intaked.intake.messages import store_blobs
from intaked.store.models import (
    attachment_table,
    call_table,
    message_table,
    ticket_table,
)
from intaked.tickets.events import clean_text, event, record_events

log = structlog.get_logger(__name__)

ACTOR = "intaked"
OUTBOX_KIND = "recording"
OUTBOX_PURPOSE = "voicemail"

RECORDING_SID = re.compile(r"RE[0-9a-fA-F]{32}")
CALL_SID = re.compile(r"CA[0-9a-fA-F]{32}")
TRANSCRIPTION_SID = re.compile(r"TR[0-9a-fA-F]{32}")
_MEDIA_PATH = re.compile(
    r"/2010-04-01/Accounts/(AC[0-9a-fA-F]{32})/Recordings/(RE[0-9a-fA-F]{32})(?:\.(?:wav|mp3|json))?"
)

#: ``calls.recording_error`` values of ours (Twilio's codes are stored as they come).
FOREIGN_URL = "foreign_url"
DOWNLOAD_FAILED = "download_failed"

MEDIA_TYPES = {"wav": "audio/x-wav", "mp3": "audio/mpeg"}
_EXTENSIONS = {
    "audio/x-wav": "wav",
    "audio/wav": "wav",
    "audio/wave": "wav",
    "audio/mpeg": "mp3",
    "audio/mp3": "mp3",
}


class ForeignRecordingUrl(ValueError):
    """A RecordingUrl that is not one of our account's recordings on the configured API base."""


class CallNotFound(LookupError):
    """No ``calls`` row for that CallSid."""


def _origin(scheme: str, host: str, port: int | None) -> tuple[str, str, int]:
    return (
        scheme.lower(),
        host.lower(),
        port if port is not None else {"https": 443, "http": 80}.get(scheme, -1),
    )


def recording_media_url(settings: Settings, recording_url: str, *, recording_sid: str | None = None) -> str:
    """The URL to download ``recording_url``'s media from, or :class:`ForeignRecordingUrl`.

    ``recording_url`` must be on ``twilio.api_base_url`` (same scheme, host and port; never plain
    http when the base is https), carry no user information, query or fragment, and its path must
    be exactly ``/2010-04-01/Accounts/<our AccountSid>/Recordings/RE<32 hex>`` (optionally with
    ``.wav``, ``.mp3`` or ``.json``), with the same Sid as ``recording_sid`` when given. The URL
    returned is not the one given but rebuilt from that Sid and our account
    (:func:`media_url_for`), so nothing of the given URL but the checked Sid is ever used."""
    twilio = settings.twilio
    try:
        given = urlsplit(recording_url.strip())
        port = given.port
    except ValueError as exc:
        raise ForeignRecordingUrl(f"unreadable URL {recording_url!r}: {exc}") from None
    base = urlsplit(twilio.api_base_url)
    if "@" in given.netloc or given.username is not None or given.password is not None:
        raise ForeignRecordingUrl(f"user information in {recording_url!r}")
    if not given.hostname or _origin(given.scheme, given.hostname, port) != _origin(
        base.scheme, base.hostname or "", base.port
    ):
        raise ForeignRecordingUrl(f"{recording_url!r} is not on the API base {twilio.api_base_url}")
    if given.query or given.fragment or "?" in recording_url or "#" in recording_url:
        raise ForeignRecordingUrl(f"query or fragment in {recording_url!r}")
    match = _MEDIA_PATH.fullmatch(given.path)
    if match is None:
        raise ForeignRecordingUrl(f"{given.path!r} is not a recording's path")
    account, sid = match.groups()
    if account != twilio.account_sid:
        raise ForeignRecordingUrl(f"recording of another account {account}")
    if recording_sid is not None and sid != recording_sid:
        raise ForeignRecordingUrl(f"the URL names {sid}, the callback {recording_sid}")
    return media_url_for(settings, sid)


def media_url_for(settings: Settings, recording_sid: str) -> str:
    """Our account's media URL of ``recording_sid`` on the API base, in ``twilio.recording_format``."""
    return account_media_url(settings.twilio, recording_sid)


def account_media_url(twilio: TwilioSettings, recording_sid: str) -> str:
    """:func:`media_url_for` from the ``[twilio]`` section alone."""
    if not RECORDING_SID.fullmatch(recording_sid):
        raise ForeignRecordingUrl(f"{recording_sid!r} is not a RecordingSid")
    return (
        f"{twilio.api_base_url}/2010-04-01/Accounts/{twilio.account_sid}/Recordings/"
        f"{recording_sid}.{twilio.recording_format}"
    )


# -- the store ---------------------------------------------------------------------------------------


def add_event(conn: Connection, ticket_id: int, kind: str, detail: dict[str, Any], now: dt.datetime) -> None:
    record_events(conn, [event(ticket_id, kind, now, actor=ACTOR, detail=detail)])


def lock_call(conn: Connection, call_sid: str) -> Any:
    """The ``calls`` row of ``call_sid``, locked for this transaction (PostgreSQL), or None."""
    return conn.execute(select(call_table).where(call_table.c.call_sid == call_sid).with_for_update()).first()


def call_by_recording(conn: Connection, recording_sid: str) -> Any:
    return conn.execute(
        select(call_table).where(call_table.c.recording_sid == recording_sid).with_for_update()
    ).first()


def ensure_call_message(conn: Connection, call: Any, now: dt.datetime) -> int:
    """The id of the call's ``messages`` row (``calls.message_id``), creating a minimal one when the
    call has none: direction ``in``, channel ``phone``, ``header_message_id`` = ``call:<CallSid>``."""
    if call.message_id is not None:
        return int(call.message_id)
    key = f"call:{call.call_sid}"
    found = conn.execute(
        select(message_table.c.id).where(
            message_table.c.ticket_id == call.ticket_id, message_table.c.header_message_id == key
        )
    ).scalar()
    if found is None:
        found = conn.execute(
            message_table.insert()
            .values(
                ticket_id=call.ticket_id,
                direction="in",
                channel="phone",
                sender=call.from_number,
                recipients=json.dumps([call.to_number]),
                subject=f"Call from {call.from_number}",
                body_text="",
                header_message_id=key,
                sent_at=call.started_at,
                created_at=now,
            )
            .returning(message_table.c.id)
        ).scalar_one()
    conn.execute(
        update(call_table).where(call_table.c.id == call.id).values(message_id=found, updated_at=now)
    )
    return int(found)


def touch_ticket(conn: Connection, ticket_id: int, now: dt.datetime, *, callback: bool) -> str:
    """The ticket changed (and wants a call back): its ``updated_at``; returns its number."""
    values: dict[str, Any] = {"updated_at": now}
    if callback:
        values["callback_requested"] = True
    number = conn.execute(
        update(ticket_table)
        .where(ticket_table.c.id == ticket_id)
        .values(**values)
        .returning(ticket_table.c.number)
    ).scalar_one()
    return str(number)


def attach_recording(
    conn: Connection,
    call_sid: str,
    recording_sid: str,
    audio: bytes,
    content_type: str,
    duration_seconds: int | None,
    now: dt.datetime,
) -> int | None:
    """Store the voicemail ``audio`` on the call's message, in the caller's transaction; returns the
    new ``attachments`` id, or None when this recording was already attached (idempotent on the
    RecordingSid) or the call already holds another recording.

    The bytes go to ``blobs`` like a mail attachment's (``voicemail-<CallSid>.wav``); the call gets
    ``recording_sid``, ``recording_seconds``, ``attachment_id`` and outcome ``voicemail``, the
    ticket ``callback_requested`` (both unless the desk answered the call), and an event
    ``voicemail_added``.
    Raises :class:`CallNotFound` without a ``calls`` row."""
    bound = log.bind(call_sid=call_sid, recording_sid=recording_sid)
    call = lock_call(conn, call_sid)
    if call is None:
        raise CallNotFound(call_sid)
    if call.attachment_id is not None:
        if call.recording_sid != recording_sid:
            bound.warning("voicemail_second_recording_ignored", attached=call.recording_sid)
        return None
    if call.recording_sid not in (None, recording_sid):
        bound.warning("voicemail_recording_sid_replaced", before=call.recording_sid)
    message_id = ensure_call_message(conn, call, now)
    attachment_id, digest = _store_audio(conn, message_id, call_sid, audio, content_type)
    seconds = duration_seconds if duration_seconds is not None else call.recording_seconds
    values: dict[str, Any] = {
        "recording_sid": recording_sid,
        "recording_seconds": seconds,
        "recording_error": None,
        "attachment_id": attachment_id,
        "updated_at": now,
    }
    if call.outcome != "answered_by_desk":
        values["outcome"] = "voicemail"
    conn.execute(update(call_table).where(call_table.c.id == call.id).values(**values))
    number = touch_ticket(conn, int(call.ticket_id), now, callback=call.outcome != "answered_by_desk")
    add_event(
        conn,
        int(call.ticket_id),
        "voicemail_added",
        {
            "call_sid": call_sid,
            "recording_sid": recording_sid,
            "seconds": seconds,
            "attachment_id": attachment_id,
            "size": len(audio),
            "sha256": digest,
        },
        now,
    )
    bound.info(
        "voicemail_added", ticket=number, ticket_id=int(call.ticket_id), size=len(audio), seconds=seconds
    )
    return attachment_id


def _store_audio(
    conn: Connection, message_id: int, call_sid: str, audio: bytes, content_type: str
) -> tuple[int, str]:
    """Store ``audio`` in ``blobs`` as an attachment of the call's message
    (``voicemail-<CallSid>.<extension of the content type>``); its ``attachments`` id and SHA-256."""
    content_type = (clean_text(content_type) or "application/octet-stream")[:255]
    extension = _EXTENSIONS.get(content_type, "bin")
    (digest,) = store_blobs(conn, [audio])
    attachment_id = conn.execute(
        attachment_table.insert()
        .values(
            message_id=message_id,
            filename=f"voicemail-{call_sid}.{extension}",
            content_type=content_type,
            size=len(audio),
            sha256=digest,
            storage="blobs",
            inline=False,
        )
        .returning(attachment_table.c.id)
    ).scalar_one()
    return int(attachment_id), digest


def record_download_failure(
    conn: Connection, call_sid: str, recording_sid: str, error: str, now: dt.datetime
) -> None:
    """The recording could not be had: ``recording_error = 'download_failed'``, a call-back, and an
    event ``recording_download_failed`` (in the caller's transaction)."""
    call = lock_call(conn, call_sid)
    if call is None or call.attachment_id is not None:
        return
    conn.execute(
        update(call_table)
        .where(call_table.c.id == call.id)
        .values(recording_error=DOWNLOAD_FAILED, updated_at=now)
    )
    touch_ticket(conn, int(call.ticket_id), now, callback=True)
    add_event(
        conn,
        int(call.ticket_id),
        "recording_download_failed",
        {"call_sid": call_sid, "recording_sid": recording_sid, "error": error[:500]},
        now,
    )


def without_ticket(row: Any) -> Any:
    """An outbox row with ``ticket_id`` hidden, so the outbox's generic ``voicemail_sent`` and
    ``voicemail_failed`` events are not written (our own ``voicemail_added`` and
    ``recording_download_failed`` say it better)."""
    return dataclasses.replace(row, ticket_id=None)
