"""The intake processor: the loop that turns captured items into tickets.

It wakes when a channel commits something (and every few seconds, for items left by other daemons
or due for a retry), claims a batch, parses it in the parse pool's worker processes (parsing is
pure) and stores the whole batch in one transaction. If that transaction fails, each item is
tried on its own, so one bad item cannot hold back the others; a failing item is retried with
backoff and finally quarantined (``intaked`` never deletes it). A store that fails under a batch
is not the items' fault: they are handed back, uncounted, and taken again once it is back.

Memory is bounded by bytes, not only by count: a batch holds at most ``intake.batch_max_bytes``
of raw mail (or one larger message), kept compressed as stored and unpacked only in the parse
worker, message by message; the batch drops its raw bytes once parsed, and after a large batch
the process gives the freed memory back to the system (intaked/memory.py).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Sequence
from concurrent.futures import Executor

import structlog
from sqlalchemy import Engine

from intaked.config import Settings
from intaked.intake.ingest import ClaimLost, IngestOutcome, ParsedItem, ingest_mail_batch
from intaked.intake.ledger import (
    ClaimedItem,
    claim_batch,
    record_failure,
    recover_abandoned_claims,
    release_items,
)
from intaked.intake.parsepool import ParsePool, parse_in_process
from intaked.memory import LARGE_WORK_BYTES, WorkMeter
from intaked.metrics.observed import PARSE_PROBLEMS
from intaked.parsing import ParsedMessage
from intaked.store.engine import close_instead_of_pooling
from intaked.store.liveness import Recovery
from intaked.store.settle import OutcomeHeld, Unsettled, describe_error, store_unavailable
from intaked.store.types import utcnow
from intaked.worker import WakeableWorker

log = structlog.get_logger(__name__)
_work = WorkMeter()  # this process's: memory goes back after each few MiB of mail


def parse_items(items: Sequence[ClaimedItem], parser: ParsePool | None = None) -> list[ParsedItem]:
    """Parse each item; a parser failure costs the fields, never the item. The entries returned
    no longer hold the raw bytes (the ledger keeps them)."""
    packed = [item.packed for item in items]
    if any(source is None for source in packed):
        raise ValueError("an item's raw bytes were already dropped: it was parsed before")
    sources = [source for source in packed if source is not None]
    results = parser.parse_many(sources) if parser else [parse_in_process(source) for source in sources]
    return [
        (item.without_raw(), result, None)
        if isinstance(result, ParsedMessage)
        else (item.without_raw(), None, result)
        for item, result in zip(items, results, strict=True)
    ]


def store_batch(engine: Engine, batch: Sequence[ParsedItem], settings: Settings) -> list[IngestOutcome]:
    """Store a parsed batch in one transaction."""
    with engine.connect() as conn:
        with conn.begin():
            outcomes = ingest_mail_batch(conn, batch, settings, utcnow())
        if sum(item.raw_size for item, _, _ in batch) >= LARGE_WORK_BYTES:
            close_instead_of_pooling(conn)  # it would keep a copy of the last large values bound
        return outcomes


def store_one(engine: Engine, entry: ParsedItem, settings: Settings) -> IngestOutcome:
    return store_batch(engine, [entry], settings)[0]


def process_once(
    engine: Engine,
    settings: Settings,
    parser: ParsePool | None = None,
    unsettled: Unsettled | None = None,
) -> list[IngestOutcome]:
    """Claim, parse and store one batch (blocking); returns what was stored. The memory a large
    batch used goes back to the system afterwards.

    When the store fails under the batch (an outage, a full disk: not the items' fault), the items
    are handed back without counting the attempt, through ``unsettled`` if even that fails, and
    the store's error is raised; the caller tries again shortly."""
    unsettled = Unsettled("intake") if unsettled is None else unsettled
    intake = settings.intake
    claimed = claim_batch(engine, intake.batch_size, unsettled=unsettled, max_bytes=intake.batch_max_bytes)
    if not claimed:
        _work.idle()  # the end of a burst
        return []
    raw_bytes = sum(item.raw_size for item in claimed)
    try:
        return _process_claimed(engine, settings, parser, claimed, unsettled)
    finally:
        _work.handled(raw_bytes)


def _process_claimed(
    engine: Engine,
    settings: Settings,
    parser: ParsePool | None,
    claimed: list[ClaimedItem],
    unsettled: Unsettled,
) -> list[IngestOutcome]:
    try:
        parsed = parse_items(claimed, parser)
    except Exception as exc:  # never leave claimed items waiting for the claim timeout
        for item in claimed:
            _record_failure(engine, item, exc, settings, unsettled)
        return []
    claimed.clear()  # the last references to the raw bytes: the entries hold what storing needs
    try:
        outcomes = store_batch(engine, parsed, settings)
    except Exception as exc:
        if store_unavailable(exc):
            _hand_back(engine, [entry[0] for entry in parsed], unsettled)
            raise
        log.warning("batch_failed_retrying_singly", items=len(parsed), error=describe_error(exc))
    else:
        _log_outcomes(outcomes, parsed)
        return outcomes
    outcomes = []
    for index, entry in enumerate(parsed):
        item = entry[0]
        try:
            outcome = store_one(engine, entry, settings)
        except ClaimLost:
            log.info("claim_lost", inbound_item=item.id)
            continue
        except Exception as exc:
            if store_unavailable(exc):
                _hand_back(engine, [entry[0] for entry in parsed[index:]], unsettled)
                raise
            _record_failure(engine, item, exc, settings, unsettled)
            continue
        outcomes.append(outcome)
        _log_outcomes([outcome], [entry])
    return outcomes


def _hand_back(engine: Engine, items: Sequence[ClaimedItem], unsettled: Unsettled) -> None:
    held = list(items)
    log.warning("store_unavailable_items_handed_back", items=[item.id for item in held])
    with contextlib.suppress(OutcomeHeld):
        unsettled.record(f"hand back items {[item.id for item in held]}", lambda: release_items(engine, held))


def _record_failure(
    engine: Engine, item: ClaimedItem, exc: Exception, settings: Settings, unsettled: Unsettled
) -> None:
    def write() -> str:
        return record_failure(
            engine,
            item,
            f"{type(exc).__name__}: {exc}",
            max_attempts=settings.intake.max_attempts,
            retry_base_seconds=settings.intake.retry_base_seconds,
        )

    try:
        state = unsettled.record(f"failure of item {item.id}", write)
    except OutcomeHeld:
        state = "held"
    log.error(
        "ingest_failed", inbound_item=item.id, attempts=item.attempts, state=state, error=describe_error(exc)
    )


#: The log event of a stored item, by its decision (intaked/routing/reply_threading.py).
_STORED_EVENTS = {
    "new": "ticket_created",
    "follow_up": "ticket_created",  # a reply to a closed ticket: a new ticket, linked to it
    "join": "message_added",
    "reopen": "ticket_reopened",  # the message is added, and the resolved ticket is open again
}


def outcome_event(outcome: IngestOutcome) -> tuple[str, dict[str, str]]:
    """The one log event of a stored item (docs/operations.md, "Log events and fields"), with
    the fields that say why beside the ticket's number."""
    if outcome.state != "done":
        return "duplicate_ignored", {}
    parent = outcome.parent_number
    if outcome.spam:
        return "spam_quarantined", {"reason": outcome.spam, **({"linked_to": parent} if parent else {})}
    name = _STORED_EVENTS[outcome.decision]
    if outcome.decision == "follow_up" and parent:
        return name, {"follows_up": parent}
    if parent:
        return name, {"linked_to": parent}  # its subject tag named a ticket it may not join
    return name, {"machine": outcome.machine} if outcome.machine else {}


def _log_outcomes(outcomes: Sequence[IngestOutcome], parsed: Sequence[ParsedItem]) -> None:
    for outcome, (item, message, _) in zip(outcomes, parsed, strict=False):
        bound = log.bind(ticket=outcome.ticket_number, message_id=outcome.message_id, inbound_item=item.id)
        name, why = outcome_event(outcome)
        bound.info(name, channel=item.channel, problems=len(message.problems) if message else None, **why)
        if outcome.state == "done" and message is not None and message.problems:
            PARSE_PROBLEMS.inc()
        if outcome.message_id_also_on:
            bound.warning("message_id_reused", also_on=outcome.message_id_also_on)


class IntakeProcessor(WakeableWorker):
    """Runs :func:`process_once` on a database thread whenever there may be work; on stop, it
    finishes the items already captured."""

    def __init__(
        self,
        engine: Engine,
        executor: Executor,
        settings: Settings,
        *,
        parser: ParsePool | None = None,
        idle_poll_seconds: float = 5.0,
        on_stored: Callable[[Sequence[IngestOutcome]], None] = lambda _: None,
    ) -> None:
        self._engine = engine
        self._settings = settings
        self._parser = parser
        self._on_stored = on_stored
        super().__init__(
            "intake",
            executor,
            poll_seconds=idle_poll_seconds,
            drain_on_stop=True,
            unsettled=Unsettled("intake"),
        )

    def _pass(self) -> int:
        outcomes = process_once(self._engine, self._settings, self._parser, self.unsettled)
        if outcomes:
            self._on_stored(outcomes)
        return len(outcomes)

    def recovery(self) -> Recovery:
        """Taking up the items of dead workers, for this process's liveness keeper."""
        intake = self._settings.intake

        def recover(engine: Engine, now: dt.datetime) -> int:
            return recover_abandoned_claims(
                engine,
                max_attempts=intake.max_attempts,
                lease_seconds=self._settings.daemon.lease_seconds,
                timeout_seconds=intake.claim_timeout_seconds,
                now=now,
            )

        return Recovery("inbound_items", recover, self.wake)
