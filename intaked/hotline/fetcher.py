"""The voicemail fetcher: downloads the recordings the outbox holds (``kind = "recording"``) and
attaches them to their tickets.

Runs in the outbox process beside the Twilio dispatcher (intaked/backoffice.py; in the daemon's
own process when the back office is inline) whenever ``twilio.account_sid`` is set. Each row,
payload ``{"call_sid", "recording_sid"}``, queued by the recording status webhook
(intaked/hotline/recordings.py), is claimed like any outbox row (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL, a fencing token), downloaded through the phone provider it is given (the port's
``fetch_recording``) on a database thread, never on the event loop, and then:

- downloaded → :func:`~intaked.hotline.recordings.attach_recording` in the same transaction that
  marks the row ``sent`` (``provider_id`` = the RecordingSid), only if the claim still holds;
- temporary trouble (5xx, 429, timeouts, connection errors) → back to ``pending`` with the
  outbox's backoff (``outbox.retry_*``), ``failed`` after ``outbox.give_up_after_seconds``;
- HTTP 404 → the same, at most ``twilio.recording_not_found_retries`` times (Twilio can answer 404
  for a moment right after the recording completed), then ``failed``;
- refused (401, 403, other 4xx, too large, not audio) → ``failed`` at once.

A failed row leaves the call with ``recording_error = 'download_failed'``, the ticket flagged for a
call-back and an event ``recording_download_failed``.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

import structlog
from sqlalchemy import Connection, Engine

from intaked.config import Settings
from intaked.hotline.recordings import (
    OUTBOX_KIND,
    CallNotFound,
    attach_recording,
    record_download_failure,
    without_ticket,
)
from intaked.outbound.outbox import OutboxRow, claim_due, defer, hand_back, mark_failed, mark_sent
from intaked.ports.phone import PermanentFailure, PhoneProvider, RecordingNotFound, TemporaryFailure
from intaked.store.settle import Unsettled, store_unavailable
from intaked.store.types import utcnow
from intaked.worker import WakeableWorker

log = structlog.get_logger(__name__)


def _failure(call_sid: str, recording_sid: str, error: str) -> Callable[[Connection], None]:
    def record(conn: Connection) -> None:
        record_download_failure(conn, call_sid, recording_sid, error, utcnow())

    return record


def fetch_row(engine: Engine, settings: Settings, row: OutboxRow, phone: PhoneProvider) -> str:
    """Download and attach one claimed row; returns its new state (``sent``, ``pending``, ``failed``)."""
    call_sid = str(row.payload.get("call_sid") or "")
    recording_sid = str(row.payload.get("recording_sid") or "")
    quiet = without_ticket(row)
    bound = log.bind(outbox=row.id, call_sid=call_sid, recording_sid=recording_sid, attempts=row.attempts)
    try:
        audio, content_type = phone.fetch_recording(recording_sid)
    except RecordingNotFound as exc:
        if row.attempts > settings.twilio.recording_not_found_retries:
            error = f"{exc} after {row.attempts} tries"
            mark_failed(engine, quiet, error, within=_failure(call_sid, recording_sid, error))
            bound.warning("voicemail_lost", error=error)
            return "failed"
        return _defer(engine, settings, quiet, str(exc), call_sid, recording_sid, bound)
    except TemporaryFailure as exc:
        return _defer(engine, settings, quiet, str(exc), call_sid, recording_sid, bound)
    except (PermanentFailure, ValueError) as exc:
        mark_failed(engine, quiet, str(exc), within=_failure(call_sid, recording_sid, str(exc)))
        bound.warning("voicemail_download_refused", error=str(exc))
        return "failed"

    def attach(conn: Connection) -> None:
        try:
            attach_recording(conn, call_sid, recording_sid, audio, content_type, None, utcnow())
        except CallNotFound:
            bound.warning("voicemail_call_gone")

    if mark_sent(engine, quiet, recording_sid, within=attach):
        bound.info("voicemail_downloaded", size=len(audio), content_type=content_type)
        return "sent"
    bound.warning("voicemail_claim_lost")
    return "lost"


def _defer(
    engine: Engine,
    settings: Settings,
    row: OutboxRow,
    error: str,
    call_sid: str,
    recording_sid: str,
    bound: Any,
) -> str:
    retry = settings.outbox

    def within(conn: Connection, _row: OutboxRow, state: str) -> None:
        if state == "failed":
            record_download_failure(conn, call_sid, recording_sid, error, utcnow())

    (state,) = defer(
        engine,
        [row],
        error,
        base_seconds=retry.retry_base_seconds,
        max_seconds=retry.retry_max_seconds,
        give_up_after_seconds=retry.give_up_after_seconds,
        within=within,
    )
    bound.warning("voicemail_download_deferred", error=error, state=state)
    return state


def fetch_due(
    engine: Engine,
    settings: Settings,
    phone: PhoneProvider,
    unsettled: Unsettled | None = None,
) -> int:
    """Claim one batch of due ``recording`` rows and handle each; returns how many. When the store
    fails under a row, that row and the rest are handed back (downloading again repeats nothing a
    person sees) and the store's error is raised."""
    unsettled = Unsettled("voicemail") if unsettled is None else unsettled
    rows = claim_due(engine, OUTBOX_KIND, settings.outbox.batch_size, unsettled=unsettled)
    for index, row in enumerate(rows):
        try:
            fetch_row(engine, settings, row, phone)
        except Exception as exc:
            if store_unavailable(exc):
                hand_back(engine, rows[index:], unsettled)
            raise
    return len(rows)


class VoicemailFetcher(WakeableWorker):
    """Runs :func:`fetch_due` whenever there may be recordings to fetch (every
    ``outbox.poll_seconds`` at least: the webhooks queue them in the front process)."""

    def __init__(self, engine: Engine, executor: Executor, settings: Settings, phone: PhoneProvider) -> None:
        self._engine = engine
        self._settings = settings
        self._phone = phone
        super().__init__("voicemail", executor, poll_seconds=settings.outbox.poll_seconds)

    def _pass(self) -> int:
        return fetch_due(self._engine, self._settings, self._phone, unsettled=self.unsettled)
