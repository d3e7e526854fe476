"""The Twilio dispatcher: sends the outbox's ``sms``, ``call`` and ``call_cancel`` rows.

Payloads (docs/schema.md, ``outbox``):

- ``sms``: ``{"to", "body", "attempt_id"?}``;
- ``call``: ``{"to", "twiml" | "url", "attempt_id"?, "machine_detection"?, "timeout"?}``;
- ``call_cancel``: ``{"call_sid"}`` or ``{"attempt_id"}`` (that attempt's call, once its Sid is known).

Sent through the phone provider it is given (intaked/ports/phone.py; the daemon builds one
:class:`~intaked.twilio.client.TwilioClient` per process). Status callbacks go to
``webhooks.public_url`` + ``/twilio/status/sms`` or ``/twilio/status/call``, with
``?attempt=<id>`` when the row carries an attempt (intaked/twilio/status_webhooks.py). Calls are
created no faster than ``twilio.calls_per_second`` across every daemon on the store: each waits
for a token of the account's bucket in the database (intaked/twilio/rate.py).

Outcomes, each in the transaction that records the row's own (fenced) outcome: accepted → the
row is ``sent`` with the Sid as ``provider_id``; its attempt gets the Sid, ``sent_at`` and status
``sent`` (if still ``queued``) and its page's ``provider_down_since`` is cleared. Refused for good
(:class:`PermanentFailure`) → the row and the attempt are ``failed`` with Twilio's error code.
Temporary trouble (429, 5xx, timeouts, connection errors) → the row is retried with backoff and
its page's ``provider_down_since`` is set (the first time); the rest of the batch is put back
untried and the dispatcher pauses. The attempt listener it is given (the escalation engine's
``attempt_updated``) is told of each attempt change, in that change's transaction.

Unknown outcomes: when the previous try of a row may have reached Twilio (its ``last_error``
starts with ``outcome unknown``), Twilio's list of Messages or Calls to that number since the row
was queued is read first; a message with the same body, or a call whose Sid no attempt or outbox
row knows yet, is adopted instead of sending again.
"""

from __future__ import annotations

import math
from concurrent.futures import Executor
from typing import Any

import structlog
from sqlalchemy import Connection, Engine, select

from intaked.config import Settings
from intaked.metrics.observed import PAGE_LATENCY
from intaked.outbound.attempts import (
    AttemptListener,
    lock_attempt,
    move_attempt,
)
from intaked.outbound.outbox import (
    OutboxRow,
    claim_due,
    defer,
    hand_back,
    mark_cancelled,
    mark_failed,
    mark_sent,
)
from intaked.outbound.senders import OutboxSender
from intaked.paging.convene import CONVENE_STEP
from intaked.ports.phone import (
    CALL_STATUS_PATH,
    SMS_STATUS_PATH,
    UNKNOWN_OUTCOME,
    CallRequest,
    PermanentFailure,
    PhoneProvider,
    ProviderRecord,
    TemporaryFailure,
)
from intaked.store.engine import read_only
from intaked.store.models import page_attempt_table, page_table
from intaked.store.settle import OutcomeHeld, Unsettled, store_unavailable
from intaked.store.types import utcnow
from intaked.twilio.outcomes import (
    attempt_id_of,
    attempt_sid,
    known_sids,
    last_error,
    on_permanent,
    on_success,
    on_temporary,
)
from intaked.twilio.rate import RateLimit, SharedTokenBucket, call_bucket_name

log = structlog.get_logger(__name__)

KINDS = ("call_cancel", "call", "sms")  # in this order each pass: stopping a call first
CANCEL_WAIT_SECONDS = (1.0, 5.0)  # a cancel waiting for its call's Sid: first and longest pause
NOT_TRIED = "not tried: Twilio unavailable for an earlier row of the batch"


def callback_url(settings: Settings, path: str, attempt_id: int | None) -> str | None:
    """The status callback URL Twilio is given (None without a public URL: no callbacks)."""
    base = settings.webhooks.public_url
    if not base:
        return None
    return base + path + (f"?attempt={attempt_id}" if attempt_id is not None else "")


class TwilioSender:
    """Sends claimed rows through one phone provider (blocking; on database threads) and tells
    ``on_attempt`` of every page attempt it moves. Calls wait for ``bucket`` (by default the
    account's bucket in the store, shared by every daemon: intaked/twilio/rate.py)."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        client: PhoneProvider,
        bucket: RateLimit | None = None,
        unsettled: Unsettled | None = None,
        *,
        on_attempt: AttemptListener,
    ) -> None:
        self._engine = engine
        self._settings = settings
        self._client = client
        self._on_attempt = on_attempt
        twilio = settings.twilio  # calls: one budget for every daemon on this store
        self._bucket = bucket or SharedTokenBucket(
            engine, call_bucket_name(twilio.account_sid), twilio.calls_per_second
        )
        self.unsettled = Unsettled("twilio") if unsettled is None else unsettled

    def _defer(self, rows: list[OutboxRow], error: str, *, cancel_wait: bool = False) -> list[str]:
        retry = self._settings.outbox
        base, longest = (
            CANCEL_WAIT_SECONDS if cancel_wait else (retry.retry_base_seconds, retry.retry_max_seconds)
        )
        return self.unsettled.record(
            f"twilio rows {[row.id for row in rows]} deferred",
            lambda: defer(
                self._engine,
                rows,
                error,
                base_seconds=base,
                max_seconds=longest,
                give_up_after_seconds=retry.give_up_after_seconds,
                within=None if cancel_wait else on_temporary(error, self._on_attempt),
            ),
        )

    def dispatch_once(self, kind: str) -> int:
        """Claim and send one batch of ``kind``; returns how many rows were handled.
        Raises :class:`TemporaryFailure` (after putting the batch back) when Twilio is unavailable."""
        limit = self._settings.outbox.batch_size
        if kind == "call":  # no more than the rate lets out within a few seconds
            limit = min(limit, max(1, math.ceil(self._settings.twilio.calls_per_second * 5)))
        rows = claim_due(self._engine, kind, limit, unsettled=self.unsettled)
        for index, row in enumerate(rows):
            try:
                self._send(row)
            except OutcomeHeld:
                hand_back(self._engine, rows[index + 1 :], self.unsettled)
                raise
            except TemporaryFailure:
                try:
                    for untried in rows[index + 1 :]:
                        # a row whose earlier try may have reached Twilio keeps the marker
                        unknown = last_error(self._engine, untried).startswith(UNKNOWN_OUTCOME)
                        self._defer([untried], f"{UNKNOWN_OUTCOME}: {NOT_TRIED}" if unknown else NOT_TRIED)
                except Exception as exc:
                    if store_unavailable(exc) or isinstance(exc, OutcomeHeld):
                        hand_back(self._engine, rows[index + 1 :], self.unsettled)
                    raise
                raise
            except Exception as exc:
                if store_unavailable(exc):
                    hand_back(self._engine, rows[index:], self.unsettled)
                raise
        return len(rows)

    def _send(self, row: OutboxRow) -> None:
        attempt_id = attempt_id_of(row)
        bound = log.bind(outbox=row.id, kind=row.kind, attempt=attempt_id, ticket_id=row.ticket_id)
        try:
            if row.kind == "call_cancel":
                self._cancel(row, bound)
                return
            if attempt_id is not None and self._page_ended(row, attempt_id, bound):
                return
            sid = self._reconcile(row, bound)
            if sid is None:
                sid = self._create(row)
                adopted = False
            else:
                adopted = True
        except PermanentFailure as exc:
            self._failed(row, exc, attempt_id)
            bound.warning("twilio_refused", error=str(exc), code=exc.code, to=row.payload.get("to"))
            return
        except TemporaryFailure as exc:
            states = self._defer([row], str(exc))
            bound.warning("twilio_deferred", error=str(exc), attempts=row.attempts, state=states[0])
            raise
        except (KeyError, TypeError, ValueError) as exc:  # a payload we cannot use: never retried
            self._failed(row, PermanentFailure(f"{type(exc).__name__}: {exc}"), attempt_id)
            bound.exception("twilio_row_unsendable", error=str(exc))
            return
        bound = bound.bind(sid=sid)
        first_of_page: list[tuple[str, float]] = []
        within = on_success(attempt_id, sid, self._on_attempt, first_of_page)
        recorded = self.unsettled.record(
            f"twilio row {row.id} accepted as {sid}", lambda: mark_sent(self._engine, row, sid, within=within)
        )
        if recorded:
            bound.info("twilio_accepted", to=row.payload.get("to"), adopted=adopted, attempts=row.attempts)
            for channel, seconds in first_of_page:
                PAGE_LATENCY.labels(channel=channel).observe(seconds)
        else:
            bound.warning("twilio_accepted_but_claim_lost", to=row.payload.get("to"))

    def _failed(self, row: OutboxRow, failure: PermanentFailure, attempt_id: int | None) -> None:
        self.unsettled.record(
            f"twilio row {row.id} failed",
            lambda: mark_failed(
                self._engine,
                row,
                str(failure),
                within=on_permanent(attempt_id, failure, row.kind, self._on_attempt),
            ),
        )

    def _page_ended(self, row: OutboxRow, attempt_id: int, bound: Any) -> bool:
        """A page SMS or call whose page was acknowledged, cancelled or given up while the row
        waited (in flight at that moment, or deferred after a temporary failure) is not sent. A
        convene's attempts (step -1, intaked/paging/convene.py) go out whatever the page's state."""
        with read_only(self._engine).connect() as conn:
            found = conn.execute(
                select(page_table.c.state, page_attempt_table.c.step)
                .join(page_attempt_table, page_attempt_table.c.page_id == page_table.c.id)
                .where(page_attempt_table.c.id == attempt_id)
            ).first()
        state = found.state if found is not None else None
        if found is None or state == "active" or found.step == CONVENE_STEP:
            return False

        def cancel_attempt(conn: Connection) -> None:
            attempt = lock_attempt(conn, attempt_id)
            if attempt is not None:
                move_attempt(
                    conn, attempt, "cancelled", utcnow(), listener=self._on_attempt, error=f"page {state}"
                )

        cancelled = self.unsettled.record(
            f"twilio row {row.id} cancelled",
            lambda: mark_cancelled(
                self._engine, row, f"page {state} before it was sent", within=cancel_attempt
            ),
        )
        if cancelled:
            bound.info("twilio_row_cancelled", page_state=state)
        return True

    def _create(self, row: OutboxRow) -> str:
        payload = row.payload
        to = str(payload["to"])
        attempt_id = attempt_id_of(row)
        if row.kind == "sms":
            return self._client.send_sms(
                to, str(payload["body"]), callback_url(self._settings, SMS_STATUS_PATH, attempt_id)
            )
        if row.kind == "call":
            self._bucket.acquire()
            timeout = payload.get("timeout")
            call = CallRequest(
                to,
                url=payload.get("url"),
                twiml=payload.get("twiml"),
                status_callback=callback_url(self._settings, CALL_STATUS_PATH, attempt_id),
                machine_detection=payload.get("machine_detection"),
                timeout=int(timeout) if timeout is not None else None,
            )
            return self._client.create_call(call)
        raise ValueError(f"not a Twilio outbox kind: {row.kind!r}")

    def _reconcile(self, row: OutboxRow, bound: Any) -> str | None:
        """The Sid of what an earlier try of ``row`` already created at Twilio, if anything."""
        if row.attempts <= 1 or not last_error(self._engine, row).startswith(UNKNOWN_OUTCOME):
            return None
        attempt_id = attempt_id_of(row)
        own = attempt_sid(self._engine, attempt_id) if attempt_id is not None else None
        if own is not None:  # a status callback of the earlier try named it (?attempt=<id>)
            bound.info("twilio_outcome_reconciled", sid=own, source="status callback")
            return own
        to = str(row.payload["to"])
        try:
            found: list[ProviderRecord]
            if row.kind == "sms":
                body = str(row.payload["body"])
                found = [  # a trial account prefixes its bodies: "Sent from your Twilio trial account - "
                    r
                    for r in self._client.find_messages(to, row.created_at)
                    if r.body is not None and (r.body == body or r.body.endswith(body))
                ]
            else:
                found = self._client.find_calls(to, row.created_at)
        except TemporaryFailure as exc:  # keep the marker: the next try must ask again
            raise TemporaryFailure(f"{UNKNOWN_OUTCOME}: reconciling before a resend: {exc}") from None
        known = known_sids(self._engine, [r.sid for r in found])
        fresh = [r for r in found if r.sid not in known]
        if fresh:
            adopted = fresh[-1]  # the oldest unknown one: the earliest try
            bound.info(
                "twilio_outcome_reconciled", sid=adopted.sid, status=adopted.status, candidates=len(fresh)
            )
            return adopted.sid
        bound.info("twilio_outcome_reconciled_nothing_found", to=to)
        return None

    def _cancel(self, row: OutboxRow, bound: Any) -> None:
        payload = row.payload
        sid = payload.get("call_sid")
        attempt_id = attempt_id_of(row)
        if sid is None and attempt_id is not None:
            with self._engine.connect() as conn:
                attempt = conn.execute(
                    select(page_attempt_table.c.provider_sid, page_attempt_table.c.status).where(
                        page_attempt_table.c.id == attempt_id
                    )
                ).first()
            if attempt is not None and attempt.provider_sid is None and attempt.status == "queued":
                self._defer([row], f"waiting for the Sid of attempt {attempt_id}'s call", cancel_wait=True)
                bound.info("twilio_cancel_waits_for_sid")
                return
            sid = attempt.provider_sid if attempt is not None else None
        if sid is None:
            self.unsettled.record(
                f"twilio cancel {row.id}: nothing to cancel", lambda: mark_sent(self._engine, row, None)
            )
            bound.info("twilio_cancel_nothing_to_cancel")
            return
        bound = bound.bind(sid=sid)
        status = self._client.cancel_call(str(sid))

        def record(conn: Connection) -> None:
            if attempt_id is not None and status == "canceled":
                attempt = lock_attempt(conn, attempt_id)
                if attempt is not None:
                    move_attempt(
                        conn,
                        attempt,
                        "cancelled",
                        utcnow(),
                        listener=self._on_attempt,
                        error="cancelled by intaked",
                    )

        self.unsettled.record(
            f"twilio cancel {row.id} of {sid}", lambda: mark_sent(self._engine, row, str(sid), within=record)
        )
        bound.info("twilio_call_cancelled", call_status=status)


class TwilioDispatcher(OutboxSender):
    """Runs the :class:`TwilioSender` for every kind in ``outbox.senders`` loops whenever there
    may be something to send; pauses after Twilio was unavailable. One rate limit for calls is
    shared by the loops, and by the other daemons on the store."""

    def __init__(
        self,
        engine: Engine,
        executor: Executor,
        settings: Settings,
        phone: PhoneProvider,
        on_attempt: AttemptListener,
    ) -> None:
        self._engine = engine
        unsettled = Unsettled("twilio")
        self._sender = TwilioSender(engine, settings, phone, unsettled=unsettled, on_attempt=on_attempt)
        super().__init__("twilio", executor, settings, unsettled)

    def _send(self) -> int:
        handled = 0
        for kind in KINDS:
            try:
                handled += self._sender.dispatch_once(kind)
            except TemporaryFailure as exc:
                log.warning("twilio_unavailable", error=str(exc), pause_seconds=round(self._pause(), 2))
                return 0
        return handled
