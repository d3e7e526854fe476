"""The long-running daemon: one asyncio loop, blocking database work on a small thread pool.

Start-up puts the front to work first, since a restart after a crash should be taking mail again
within a second: connect, check that the schema is current (one query; migrate it, or refuse
with a clear message and exit 69), open the listeners (SMTP/LMTP; the Twilio webhooks when
paging is on; the metrics and health listener, intaked/metrics/, unless ``metrics.listen`` is
empty) and start the IMAP mailboxes; then start the back office beside it
(intaked/backoffice.py: processes that release the claims a crashed run left, turn captured
items into tickets and send the outbox) without waiting for it to be ready. What the front
captures meanwhile waits in the ledger and becomes tickets as soon as the back office is up. A
back office that fails to start is logged as an error (``back_office_start_failed``) and tried
again, with growing pauses, while the front keeps taking mail. With
``daemon.back_office = "inline"`` the same work runs in this process, started after the
listeners. systemd hears READY=1 once the listeners are up, then a STATUS line every few seconds
and, with ``WatchdogSec=``, WATCHDOG=1 while every process makes progress (intaked/notify.py).

Shutdown on the first SIGTERM/SIGINT: stop accepting, let messages being committed finish, turn
everything already captured into tickets, exit 0. A second signal exits at once (nothing
committed is lost: the ledger resumes on the next start).

This module imports only what the front needs at start; the webhooks and the inline back office
import their parts when they are switched on.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import structlog

from intaked.backoffice import BackOfficeProcess
from intaked.channels.imap import ImapMailboxWorker
from intaked.channels.smtp import SmtpIntakeServer
from intaked.config import Settings
from intaked.descriptors import prepare_descriptors
from intaked.intake.capture import CaptureWriter
from intaked.loop_errors import LoopErrorHandler
from intaked.metrics.observed import MULTIPROCESS_DIR_ENV, count_failed_pass
from intaked.metrics.status import status_line
from intaked.notify import Notifier, sd_notify
from intaked.store.engine import engine_for
from intaked.store.liveness import NODE_NAME_ENV, LivenessKeeper, default_node_name, node_name, set_node_name
from intaked.store.migrate import ensure_schema
from intaked.store.settle import describe_error
from intaked.worker import WakeableWorker

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from intaked.health import HealthWorkers
    from intaked.hotline.fetcher import VoicemailFetcher
    from intaked.intake.parsepool import ParsePool
    from intaked.intake.processor import IntakeProcessor
    from intaked.metrics.server import MetricsServer
    from intaked.outbound.dispatcher import OutboxDispatcher
    from intaked.ports.phone import PhoneProvider
    from intaked.scheduler import Scheduler
    from intaked.twilio.dispatcher import TwilioDispatcher
    from intaked.twilio.server import WebhookServer

log = structlog.get_logger(__name__)

EXIT_OK = 0
EXIT_FORCED = 130
EXIT_UNAVAILABLE = 69  # sysexits EX_UNAVAILABLE: the store cannot be reached or is on a wrong schema


class _Stoppable(Protocol):
    async def stop(self) -> None: ...


@dataclass
class Daemon:
    """The daemon's parts, started and stopped in order."""

    settings: Settings
    engine: Engine | None = None
    executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=8, thread_name_prefix="intaked-db")
    )
    capture: CaptureWriter | None = None
    processor: IntakeProcessor | None = None
    parser: ParsePool | None = None
    dispatcher: OutboxDispatcher | None = None
    phone: PhoneProvider | None = None
    pager: TwilioDispatcher | None = None
    voicemail: VoicemailFetcher | None = None
    back_office: BackOfficeProcess | None = None
    scheduler: Scheduler | None = None
    smtp: SmtpIntakeServer | None = None
    smtp_address: tuple[str, int] | None = None
    imap_workers: list[ImapMailboxWorker] = field(default_factory=list)
    webhooks: WebhookServer | None = None
    webhook_executor: ThreadPoolExecutor | None = None
    webhooks_address: tuple[str, int] | None = None
    keeper: LivenessKeeper | None = None
    metrics: MetricsServer | None = None
    observed_dir: str | None = None  # the back office's metrics files (intaked/metrics/observed.py)
    metrics_address: tuple[str, int] | None = None
    health: HealthWorkers | None = None

    async def start(self) -> None:
        """Start the front, then the back office beside it; returns once the front is listening
        (the back office processes get ready on their own)."""
        await self.start_front()
        await self.start_back_office()

    async def start_front(self) -> None:
        """Connect, check the schema, open the listeners and start the IMAP mailboxes."""
        loop = asyncio.get_running_loop()
        set_node_name(self.settings.daemon.node_name or default_node_name())
        db = self.settings.database
        engine = self.engine = engine_for(self.settings)
        revision = await loop.run_in_executor(
            self.executor, lambda: ensure_schema(engine, auto_migrate=db.auto_migrate)
        )
        log.info("store_ready", database=engine.url.render_as_string(hide_password=True), schema=revision)
        self.capture = CaptureWriter(engine, self.executor, on_committed=self._wake_intake)
        self.capture.start()
        if self.settings.smtp_intake.enabled:
            self.smtp = SmtpIntakeServer(self.settings.smtp_intake, self.capture)
            self.smtp_address = await self.smtp.start()
        if self.settings.twilio.enabled and self.settings.webhooks.listen:
            await self._start_webhooks(engine)
        if self.settings.metrics.enabled:
            await self._start_metrics(engine)
        self._start_health(engine)

        def wake_from_thread() -> None:
            loop.call_soon_threadsafe(self._wake_intake)

        # This process's heartbeat (intaked/store/liveness.py): it also marks the workers of this
        # node whose processes are gone (a back office killed with the front before this start,
        # a front killed with its mailbox leases), and, inline, takes up what they held. Before
        # the mailboxes: the leases a gone worker held are free, and ours name this worker.
        keeper = self.keeper = LivenessKeeper(
            engine,
            role="front",
            heartbeat_seconds=self.settings.daemon.heartbeat_seconds,
            lease_seconds=self.settings.daemon.lease_seconds,
        )
        await loop.run_in_executor(self.executor, lambda: keeper.start(required=False))
        for mailbox in self.settings.imap:
            if mailbox.enabled:
                worker = ImapMailboxWorker(mailbox, engine, on_captured=wake_from_thread, holder=keeper.id)
                worker.start()
                self.imap_workers.append(worker)

    async def _start_webhooks(self, engine: Engine) -> None:
        from intaked.paging.outcomes import attempt_updated
        from intaked.twilio.routes import build_routes
        from intaked.twilio.server import WebhookServer

        routes = build_routes(self.settings, attempt_updated)
        # Their own threads: Twilio waits a few seconds for TwiML, and must not queue behind
        # a slow send or download on the shared database threads.
        self.webhook_executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="intaked-webhooks")
        self.webhooks = WebhookServer(
            self.settings, engine, self.webhook_executor, routes, on_handled=self._wake_outbox
        )
        self.webhooks_address = await self.webhooks.start()

    async def _start_metrics(self, engine: Engine) -> None:
        """The metrics and health listener. One that cannot listen (its port is taken) is logged
        as an error and left off: taking mail matters more than being watched."""
        from intaked.metrics.server import MetricsServer

        if self.settings.daemon.back_office == "process":
            self.observed_dir = new_observed_dir()
        server = MetricsServer(self.settings, engine, self.executor, self.observed_dir, self.trouble)
        try:
            self.metrics_address = await server.start()
        except OSError as exc:
            await server.stop()
            log.error("metrics_listen_failed", listen=self.settings.metrics.listen, error=str(exc))
            return
        self.metrics = server

    def _start_health(self, engine: Engine) -> None:
        """The stall alarm and the heartbeat (intaked/health/): the alarm goes straight through the
        relay and the phone provider, never through the back office it watches."""
        from intaked.health import HealthWorkers
        from intaked.outbound.mailer import SmtpMailer  # as the dispatcher's smtp_relay, lighter

        phone = None
        if self.settings.health.alarm_person:
            from intaked.twilio.client import phone_provider

            phone = phone_provider(self.settings)
        relay = self.settings.outbound_mail
        self.health = HealthWorkers(self.settings, engine, self.executor, lambda: SmtpMailer(relay), phone)
        self.health.start()

    async def start_back_office(self) -> None:
        """Start the processor and the dispatchers: spawn the back office process and go on (its
        supervisor waits for it and restarts it), or, inline, start them here."""
        if self.settings.daemon.back_office == "process":
            environment = {NODE_NAME_ENV: node_name()}  # the name this front resolved
            if self.observed_dir is not None:
                environment[MULTIPROCESS_DIR_ENV] = self.observed_dir
            self.back_office = BackOfficeProcess(self.settings, environment=environment)
            self.back_office.start()
        else:
            await self._start_inline_back_office()

    async def _start_inline_back_office(self) -> None:
        from intaked.hotline.fetcher import VoicemailFetcher
        from intaked.intake.parsepool import ParsePool
        from intaked.intake.processor import IntakeProcessor
        from intaked.outbound.dispatcher import OutboxDispatcher, smtp_relay
        from intaked.outbound.outbox import recovery as outbox_recovery
        from intaked.paging.outcomes import attempt_updated
        from intaked.scheduler import Scheduler
        from intaked.twilio.client import phone_provider
        from intaked.twilio.dispatcher import TwilioDispatcher

        assert self.engine is not None and self.keeper is not None
        WakeableWorker.count_failed_pass = count_failed_pass  # served by this front's /metrics
        intake = self.settings.intake
        self.dispatcher = OutboxDispatcher(
            self.engine, self.executor, self.settings, smtp_relay(self.settings)
        )
        self.dispatcher.start()
        phone = self.phone = phone_provider(self.settings)  # the one phone provider of this process
        if phone is not None:
            self.pager = TwilioDispatcher(self.engine, self.executor, self.settings, phone, attempt_updated)
            self.pager.start()
            self.voicemail = VoicemailFetcher(self.engine, self.executor, self.settings, phone)
            self.voicemail.start()
        self.keeper.add_recovery(outbox_recovery(self.settings, self._wake_senders))
        self.parser = ParsePool(intake.parse_workers, intake.parse_timeout_seconds)
        processor = IntakeProcessor(
            self.engine,
            self.executor,
            self.settings,
            parser=self.parser,
            on_stored=lambda _: self._stored(),
        )
        processor.start()  # its first pass takes what the front captured before it was here
        self.processor = processor
        self.keeper.add_recovery(processor.recovery())
        self.scheduler = Scheduler(
            self.engine, self.executor, self.settings, on_queued=self._stored, phone=phone
        )
        self.scheduler.start()

    def _wake_intake(self) -> None:
        """The front committed captured items: wake whoever turns them into tickets (none yet
        while the back office starts: its first pass finds them)."""
        if self.back_office is not None:
            self.back_office.wake()
        elif self.processor is not None:
            self.processor.wake()

    def _wake_outbox(self) -> None:
        """A webhook's transaction may have queued SMS, calls or mail: wake their senders now."""
        if self.back_office is not None:
            self.back_office.wake_outbox()
        else:
            self._stored()

    def _stored(self) -> None:
        if self.dispatcher is not None:
            self.dispatcher.wake()
        if self.pager is not None:
            self.pager.wake()

    def _wake_senders(self) -> None:
        self._stored()
        if self.voicemail is not None:
            self.voicemail.wake()

    async def status(self) -> str:
        """The STATUS line for systemd: the store's figures, read on the database threads."""
        engine = self.engine
        if engine is None:
            return "starting"
        mailboxes = [mailbox.name for mailbox in self.settings.imap if mailbox.enabled]
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self.executor, status_line, engine, mailboxes)
        except Exception as exc:  # the daemon rides out an outage: say so, and carry on
            return f"accepting mail; the store cannot be read: {describe_error(exc)}"[:200]

    def trouble(self) -> str | None:
        """Why the watchdog must not be pinged (a back office process, or a worker of the inline
        back office, no longer makes progress), or None."""
        if self.back_office is not None:
            return self.back_office.trouble()
        workers = (self.processor, self.dispatcher, self.pager, self.voicemail)
        for worker in workers:
            if worker is not None and worker.stalled():
                return f"the {worker.name} worker stopped"
        return None

    def _workers_in_stop_order(self) -> tuple[_Stoppable | None, ...]:
        """The back office, or the inline one's workers: what takes tickets in before what sends."""
        return (self.back_office, self.processor, self.scheduler, self.dispatcher, self.pager, self.voicemail)

    async def stop(self) -> None:
        log.info("stopping")
        for worker in self.imap_workers:
            worker.stop.set()
        if self.smtp is not None:
            await self.smtp.stop()
        if self.webhooks is not None:
            await self.webhooks.stop()
        if self.metrics is not None:
            await self.metrics.stop()
        if self.health is not None:
            await self.health.stop()
        loop = asyncio.get_running_loop()
        for worker in self.imap_workers:  # a worker finishes the batch it is committing and moving
            await loop.run_in_executor(None, worker.join, 60.0)
        if self.capture is not None:
            await self.capture.close()
        for part in self._workers_in_stop_order():
            if part is not None:
                await part.stop()
        if self.keeper is not None:
            await loop.run_in_executor(self.executor, self.keeper.stop)
        self.executor.shutdown(wait=True)
        if self.webhook_executor is not None:
            self.webhook_executor.shutdown(wait=True)
        if self.parser is not None:
            self.parser.close()
        if self.engine is not None:
            self.engine.dispose()
        if self.observed_dir is not None:
            shutil.rmtree(self.observed_dir, ignore_errors=True)
        log.info("stopped")


def new_observed_dir() -> str:
    """A fresh directory (0700) for the back office processes' metrics files: under systemd's
    ``RuntimeDirectory=`` when the unit sets one, else the temporary directory (private to the
    unit with ``PrivateTmp=``)."""
    return tempfile.mkdtemp(prefix="intaked-metrics-", dir=os.environ.get("RUNTIME_DIRECTORY"))


async def run_daemon(settings: Settings) -> int:
    """Run until SIGTERM/SIGINT; returns the process exit code."""
    loop = asyncio.get_running_loop()
    stop_requested = asyncio.Event()
    signals_seen = 0

    def on_signal(signum: int) -> None:
        nonlocal signals_seen
        signals_seen += 1
        if signals_seen == 1:
            log.info("signal_received", signal=signal.Signals(signum).name, action="draining")
            stop_requested.set()
        else:
            log.warning("signal_received", signal=signal.Signals(signum).name, action="exiting now")
            os._exit(EXIT_FORCED)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    prepare_descriptors(settings)
    loop_errors = LoopErrorHandler()  # a flood's errors: a line per interval, never a line each
    loop_errors.install(loop)
    daemon = Daemon(settings)
    try:
        await daemon.start_front()
    except Exception as exc:  # the store is unreachable or on a wrong schema, a port is taken
        return await _failed_start(daemon, exc, loop_errors)
    sd_notify("READY=1\nSTATUS=accepting mail")
    log.info("started", pid=os.getpid())
    notifier = Notifier(daemon.status, daemon.trouble)  # STATUS lines and the watchdog's pings
    notifier.start()
    try:
        await daemon.start_back_office()
    except Exception as exc:  # inline only: a back office process is retried by its supervisor
        await notifier.stop()
        return await _failed_start(daemon, exc, loop_errors)
    await stop_requested.wait()
    sd_notify("STOPPING=1")
    await daemon.stop()  # the watchdog is still pinged while the drain goes on
    await notifier.stop()
    loop_errors.flush()
    return EXIT_OK


async def _failed_start(daemon: Daemon, exc: Exception, loop_errors: LoopErrorHandler) -> int:
    log.error("startup_failed", error=str(exc), error_type=type(exc).__name__)
    await daemon.stop()
    loop_errors.flush()
    return EXIT_UNAVAILABLE
