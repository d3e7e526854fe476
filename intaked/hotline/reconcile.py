"""Reconciliation of hotline calls: webhooks get lost while the daemon is down, Twilio's Calls
list does not. On start and every ``hotline.reconcile_interval``, each hotline number's calls
since its checkpoint (``hotline_checkpoints``, name ``calls:<number>``) are listed and ingested
with the same functions the webhooks use (intaked/hotline/calls.py): ``record_call`` (source
``reconciliation``; a CallSid already known files nothing) and, for a call that is over,
``call_status`` with its final status, under the same ``webhook_receipts`` key as the status
webhook, so the two never both count. A call still in progress holds the checkpoint back until
it has ended. The first pass looks back ``FIRST_LOOKBACK``.

Recordings the same way (checkpoint ``recordings``): every call since the checkpoint that ended
without a voicemail being heard of (no ``recording_sid``, not answered by the desk) has its
recordings listed, and each is applied like its lost ``recordingStatusCallback``
(intaked/hotline/callbacks.py ``apply_recording_status``, under the same receipt key: applied
once, whichever comes first); a completed one queues the download. The checkpoint stays
``RECORDING_GRACE`` behind, so a recording that completes just after its call is still found.
"""

from __future__ import annotations

import datetime as dt

import structlog
from sqlalchemy import Connection, Engine, select

from intaked.config import Settings
from intaked.hotline.callbacks import RecordingStatus, apply_recording_status
from intaked.hotline.calls import CallFacts, record_call
from intaked.hotline.progress import FINAL_STATUSES, call_status
from intaked.ports.phone import ListedCall, ListedRecording, PhoneProvider, ProviderFailure
from intaked.store.dialect import insert_or_merge
from intaked.store.engine import read_only
from intaked.store.models import call_table, hotline_checkpoint_table
from intaked.store.receipts import record_receipt
from intaked.store.types import utcnow

log = structlog.get_logger(__name__)

FIRST_LOOKBACK = dt.timedelta(days=1)
RECORDING_GRACE = dt.timedelta(minutes=10)
RECORDINGS_CHECKPOINT = "recordings"
SOURCE = "reconciliation"
_checkpoints = hotline_checkpoint_table


def checkpoint_name(number: str) -> str:
    return f"calls:{number}"


def _covered_until(engine: Engine, name: str) -> dt.datetime | None:
    with read_only(engine).connect() as conn:
        return conn.execute(
            select(_checkpoints.c.covered_until).where(_checkpoints.c.name == name)
        ).scalar_one_or_none()


def _save_checkpoint(
    conn: Connection, name: str, now: dt.datetime, *, covered_until: dt.datetime | None, error: str | None
) -> None:
    values = {"name": name, "last_run_at": now, "last_error": error, "updated_at": now}
    changes = {"last_run_at": now, "last_error": error, "updated_at": now}
    if covered_until is not None:
        values["covered_until"] = covered_until
        changes["covered_until"] = covered_until
    conn.execute(
        insert_or_merge(conn, _checkpoints)
        .values(**values)
        .on_conflict_do_update(index_elements=[_checkpoints.c.name], set_=changes)
    )


def ingest_listed_call(engine: Engine, settings: Settings, listed: ListedCall, now: dt.datetime) -> bool:
    """Record one listed call (and its end, when it is over) in one transaction; True when it
    was new to us."""
    facts = CallFacts(
        call_sid=listed.sid,
        from_number=listed.from_number,
        to_number=listed.to,
        caller_name=listed.caller_name,
        started_at=listed.start_time or now,
        status=listed.status or None,
        source=SOURCE,
    )
    with engine.begin() as conn:
        filed = record_call(conn, settings, facts, now)
        if listed.status in FINAL_STATUSES and record_receipt(
            conn,
            "hotline_status",
            listed.sid,
            listed.status,
            [("CallStatus", listed.status), ("CallDuration", str(listed.duration or "")), ("source", SOURCE)],
            now,
        ):
            call_status(conn, settings, listed.sid, listed.status, listed.duration, False, now)
    return filed.created


def reconcile_calls(
    engine: Engine, settings: Settings, client: PhoneProvider, now: dt.datetime | None = None
) -> int:
    """One pass over every hotline number; returns how many calls were new to us."""
    now = now or utcnow()
    filed = 0
    for number in settings.hotline.numbers:
        name = checkpoint_name(number)
        since = _covered_until(engine, name) or now - FIRST_LOOKBACK
        bound = log.bind(number=number, since=since.isoformat())
        try:
            listed = client.list_calls_to(number, since)
        except ProviderFailure as exc:
            bound.warning("hotline_reconcile_failed", error=str(exc))
            with engine.begin() as conn:
                _save_checkpoint(conn, name, now, covered_until=None, error=str(exc)[:2000])
            continue
        covered = now
        for call in sorted(listed, key=lambda c: (c.start_time or now, c.sid)):
            if not call.direction.startswith("inbound"):
                continue
            if call.status not in FINAL_STATUSES and call.start_time is not None:
                covered = min(covered, call.start_time)  # look again until it has ended
            if ingest_listed_call(engine, settings, call, now):
                filed += 1
                log.info("hotline_call_reconciled", call_sid=call.sid, status=call.status)
        with engine.begin() as conn:
            _save_checkpoint(conn, name, now, covered_until=covered, error=None)
    return filed


def reconcile_recordings(
    engine: Engine, settings: Settings, client: PhoneProvider, now: dt.datetime | None = None
) -> int:
    """One pass over the calls that ended without a voicemail heard of; returns how many
    recordings were applied (a download queued, or the call marked missed)."""
    now = now or utcnow()
    since = _covered_until(engine, RECORDINGS_CHECKPOINT) or now - FIRST_LOOKBACK
    calls = call_table
    with read_only(engine).connect() as conn:
        waiting = (
            conn.execute(
                select(calls.c.call_sid).where(
                    calls.c.started_at >= since,
                    calls.c.recording_sid.is_(None),
                    calls.c.outcome != "answered_by_desk",
                    calls.c.ended_at.is_not(None),
                )
            )
            .scalars()
            .all()
        )
    applied = 0
    error: str | None = None
    for call_sid in waiting:
        try:
            listed = client.list_recordings_of(call_sid)
        except ProviderFailure as exc:
            error = str(exc)[:2000]
            log.warning("hotline_recordings_reconcile_failed", call_sid=call_sid, error=error)
            break
        applied += sum(_apply_listed(engine, settings, call_sid, recording, now) for recording in listed)
    with engine.begin() as conn:
        _save_checkpoint(
            conn,
            RECORDINGS_CHECKPOINT,
            now,
            covered_until=None if error else max(since, now - RECORDING_GRACE),
            error=error,
        )
    return applied


def _apply_listed(
    engine: Engine, settings: Settings, call_sid: str, recording: ListedRecording, now: dt.datetime
) -> bool:
    """Apply one recording the provider lists as its status callback would have; True when it
    changed something (a download queued, or the call marked missed)."""
    status = RecordingStatus(
        account_sid=settings.twilio.account_sid,
        call_sid=call_sid,
        recording_sid=recording.sid,
        recording_url="",  # the media URL is built from the Sid and our account
        status="completed" if recording.status == "completed" else recording.status,
        duration=recording.duration,
        error_code=recording.error_code,
    )
    params = [
        ("CallSid", call_sid),
        ("RecordingSid", recording.sid),
        ("RecordingStatus", recording.status),
        ("RecordingDuration", str(recording.duration or "")),
        ("source", SOURCE),
    ]
    with engine.begin() as conn:
        outcome = apply_recording_status(conn, settings, status, params, now)
    if outcome not in ("queued", "missed", "refused"):
        return False
    log.info("hotline_recording_reconciled", call_sid=call_sid, recording_sid=recording.sid, outcome=outcome)
    return True
