"""The outbox dispatcher: sends due mail rows on database threads, woken when rows are queued.

``outbox.senders`` loops run at once, each with its own connection to the relay: their time goes
to network round trips and commits, which overlap. The claims keep them off each other's rows.

When the relay itself is out (refused connection, timeout, dropped session), the rest of the
claimed batch is deferred in one transaction without trying each row, and the dispatcher pauses
before claiming again: an outage costs one attempt per pause, not one per queued mail.

Runs in the daemon (several daemons may share one PostgreSQL outbox); ``dispatch_once`` is the
blocking unit of work, also usable from tests and tools.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import queue
from concurrent.futures import Executor

import structlog
from sqlalchemy import Engine

from intaked.config import Settings
from intaked.config.addresses import parse_sender
from intaked.metrics.observed import ACK_LATENCY, seconds_since
from intaked.outbound.compose import build_message
from intaked.outbound.mailer import SmtpMailer
from intaked.outbound.outbox import OutboxRow, claim_due, defer, hand_back, mark_failed, mark_sent
from intaked.outbound.senders import OutboxSender
from intaked.ports.mail import MailRelay, PermanentFailure, RelayFactory, RelayUnavailable, TemporaryFailure
from intaked.store.settle import OutcomeHeld, Unsettled, store_unavailable
from intaked.store.types import utcnow

log = structlog.get_logger(__name__)


def dispatch_once(
    engine: Engine, settings: Settings, mailer: MailRelay | None = None, unsettled: Unsettled | None = None
) -> int:
    """Claim and send one batch of due mail; returns how many rows were handled.

    With ``mailer``, its connection to the relay is used and left open for the next batch.
    Raises :class:`RelayUnavailable` (after deferring the batch's unsent rows) when the relay is out.
    When the store fails under an outcome, the outcome is kept in ``unsettled`` (never sent again),
    the rows not yet tried are handed back, and the store's error is raised.
    """
    unsettled = Unsettled("outbox") if unsettled is None else unsettled
    rows = claim_due(engine, "mail", settings.outbox.batch_size, unsettled=unsettled)
    if not rows:
        return 0
    if mailer is None:
        with SmtpMailer(settings.outbound_mail) as own:
            return _send_rows(engine, settings, own, rows, unsettled)
    return _send_rows(engine, settings, mailer, rows, unsettled)


def _send_rows(
    engine: Engine, settings: Settings, mailer: MailRelay, rows: list[OutboxRow], unsettled: Unsettled
) -> int:
    for index in range(len(rows)):
        try:
            _send_row(engine, settings, mailer, rows, index, unsettled)
        except OutcomeHeld:
            hand_back(engine, rows[index + 1 :], unsettled)
            raise
        except Exception as exc:
            if store_unavailable(exc):
                hand_back(engine, rows[index:], unsettled)
            raise
    return len(rows)


def _send_row(
    engine: Engine,
    settings: Settings,
    mailer: MailRelay,
    rows: list[OutboxRow],
    index: int,
    unsettled: Unsettled,
) -> None:
    retry = settings.outbox
    row = rows[index]
    bound = log.bind(
        outbox=row.id,
        purpose=row.purpose,
        message_id=row.payload.get("message_id"),
        ticket_id=row.ticket_id,
    )
    try:
        message = build_message(row.payload, utcnow())
        sender = parse_sender(row.payload["from"]).addr_spec  # "Name <address>" in rows of old versions
        reply = mailer.send(message, sender, row.recipient)
    except PermanentFailure as exc:
        refusal = str(exc)
        unsettled.record(f"mail {row.id} refused", lambda: mark_failed(engine, row, refusal))
        bound.warning("mail_refused_permanently", error=refusal)
    except TemporaryFailure as exc:
        out = isinstance(exc, RelayUnavailable)
        deferred = rows[index:] if out else [row]
        reason = str(exc)
        states = unsettled.record(
            f"mail {[r.id for r in deferred]} deferred",
            lambda: defer(
                engine,
                deferred,
                reason,
                base_seconds=retry.retry_base_seconds,
                max_seconds=retry.retry_max_seconds,
                give_up_after_seconds=retry.give_up_after_seconds,
            ),
        )
        bound.warning("mail_deferred", error=str(exc), attempts=row.attempts, state=states[0])
        if out:
            if len(deferred) > 1:
                log.warning("mail_batch_deferred", rows=len(deferred) - 1, reason="relay unavailable")
            raise
    except Exception as exc:  # a payload we cannot even build: a bug, not a reason to retry forever
        error = f"{type(exc).__name__}: {exc}"
        unsettled.record(f"mail {row.id} unsendable", lambda: mark_failed(engine, row, error))
        bound.exception("mail_unsendable", error=str(exc))
    else:
        if unsettled.record(f"mail {row.id} sent", lambda: mark_sent(engine, row, reply)):
            bound.info("mail_sent", to=row.recipient, relay_reply=reply)
            _observe_ack(row)
        else:
            bound.warning("mail_sent_but_claim_lost", to=row.recipient)


def _observe_ack(row: OutboxRow) -> None:
    """An acknowledgement the relay accepted: how long since its mail was taken in
    (``intaked_ack_latency_seconds``; rows queued by other tools carry no ``received_at``)."""
    received = row.payload.get("received_at") if row.purpose == "ack" else None
    if isinstance(received, str):
        with contextlib.suppress(ValueError):
            ACK_LATENCY.observe(seconds_since(dt.datetime.fromisoformat(received), utcnow()))


def smtp_relay(settings: Settings) -> RelayFactory:
    """The relay factory of the configuration: SMTP to ``outbound_mail``."""
    return lambda: SmtpMailer(settings.outbound_mail)


class OutboxDispatcher(OutboxSender):
    """Runs :func:`dispatch_once` in ``outbox.senders`` loops whenever there may be mail to send;
    on stop, rows not yet sent stay queued for the next start. ``relay`` makes the relay of each
    loop (default: SMTP to ``outbound_mail``)."""

    def __init__(
        self, engine: Engine, executor: Executor, settings: Settings, relay: RelayFactory | None = None
    ) -> None:
        self._engine = engine
        make_relay = relay if relay is not None else smtp_relay(settings)
        # One relay connection per sending loop, kept while there is mail to send.
        self._mailers: queue.SimpleQueue[MailRelay] = queue.SimpleQueue()
        for _ in range(settings.outbox.senders):
            self._mailers.put(make_relay())
        super().__init__("outbox", executor, settings)

    def _send(self) -> int:
        mailer = self._mailers.get()
        try:
            handled = dispatch_once(self._engine, self._settings, mailer, self.unsettled)
            if not handled:
                mailer.close()  # idle: do not hold the relay's connection
            return handled
        except RelayUnavailable:
            mailer.close()
            log.warning("relay_unavailable", pause_seconds=round(self._pause(), 1))
            return 0
        except BaseException:
            mailer.close()
            raise
        finally:
            self._mailers.put(mailer)

    async def stop(self) -> None:
        await super().stop()
        while not self._mailers.empty():
            self._mailers.get().close()
