"""The outbox dispatcher: sends due mail rows on database threads, woken when rows are queued.

``outbox.senders`` loops run at once, each with its own connection to the relay: their time goes
to network round trips and commits, which overlap. The claims keep them off each other's rows.

Runs in the daemon (several daemons may share one PostgreSQL outbox); ``dispatch_once`` is the
blocking unit of work, also usable from tests and tools.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor

import structlog
from sqlalchemy import Engine

from intaked.config import Settings
from intaked.outbound.compose import build_message
from intaked.outbound.mailer import PermanentFailure, SmtpMailer, TemporaryFailure
from intaked.outbound.outbox import claim_due, mark_failed, mark_retry, mark_sent, recover_stale
from intaked.store.types import utcnow

log = structlog.get_logger(__name__)


def dispatch_once(engine: Engine, settings: Settings) -> int:
    """Claim and send one batch of due mail; returns how many rows were handled."""
    rows = claim_due(engine, "mail", settings.outbox.batch_size)
    if not rows:
        return 0
    retry = settings.outbox
    with SmtpMailer(settings.outbound_mail) as mailer:
        for row in rows:
            bound = log.bind(
                outbox=row.id,
                purpose=row.purpose,
                message_id=row.payload.get("message_id"),
                ticket_id=row.ticket_id,
            )
            try:
                message = build_message(row.payload, utcnow())
                reply = mailer.send(message, row.payload["from"], row.recipient)
            except PermanentFailure as exc:
                mark_failed(engine, row, str(exc))
                bound.warning("mail_refused_permanently", error=str(exc))
            except TemporaryFailure as exc:
                state = mark_retry(
                    engine,
                    row,
                    str(exc),
                    base_seconds=retry.retry_base_seconds,
                    max_seconds=retry.retry_max_seconds,
                    give_up_after_seconds=retry.give_up_after_seconds,
                )
                bound.warning("mail_deferred", error=str(exc), attempts=row.attempts, state=state)
            except Exception as exc:  # a payload we cannot even build: a bug, not a reason to retry forever
                mark_failed(engine, row, f"{type(exc).__name__}: {exc}")
                bound.exception("mail_unsendable", error=str(exc))
            else:
                if mark_sent(engine, row, reply):
                    bound.info("mail_sent", to=row.recipient, relay_reply=reply)
                else:
                    bound.warning("mail_sent_but_claim_lost", to=row.recipient)
    return len(rows)


class OutboxDispatcher:
    """Runs :func:`dispatch_once` whenever there may be mail to send."""

    def __init__(self, engine: Engine, executor: Executor, settings: Settings) -> None:
        self._engine = engine
        self._executor = executor
        self._settings = settings
        self._wake = asyncio.Event()
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []

    def wake(self) -> None:
        self._wake.set()

    async def recover(self) -> int:
        loop = asyncio.get_running_loop()
        count = await loop.run_in_executor(
            self._executor,
            lambda: recover_stale(
                self._engine,
                timeout_seconds=self._settings.outbox.claim_timeout_seconds,
                this_node_restarted=True,
            ),
        )
        if count:
            log.warning("outbox_recovered_stale_claims", rows=count)
        return count

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._run(), name=f"outbox-sender-{n}")
            for n in range(self._settings.outbox.senders)
        ]

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopping:
            try:
                handled = await loop.run_in_executor(
                    self._executor, dispatch_once, self._engine, self._settings
                )
            except Exception as exc:  # the store is down: keep going
                log.error("outbox_pass_failed", error=str(exc))
                handled = 0
            if handled:
                continue
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self._settings.outbox.poll_seconds)
            except TimeoutError:
                try:
                    await loop.run_in_executor(
                        self._executor,
                        lambda: recover_stale(
                            self._engine, timeout_seconds=self._settings.outbox.claim_timeout_seconds
                        ),
                    )
                except Exception as exc:
                    log.error("outbox_recovery_failed", error=str(exc))

    async def stop(self) -> None:
        """Stop after the batch being sent (rows not yet sent stay queued for the next start)."""
        self._stopping = True
        self._wake.set()
        await asyncio.gather(*self._tasks)
        self._tasks = []
