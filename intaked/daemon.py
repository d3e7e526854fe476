"""The long-running daemon: one asyncio loop, blocking database work on a small thread pool.

Start-up: connect, bring the schema up to date (or refuse with a clear message), start the back
office (intaked/backoffice.py: a second process that releases the claims a crashed run left, turns
captured items into tickets and sends the outbox; with ``daemon.back_office = "inline"`` the same
work runs in this process), then open the listeners (SMTP/LMTP; the Twilio webhooks when paging
is on) and the IMAP mailboxes. Shutdown on the first
SIGTERM/SIGINT: stop accepting, let messages being committed finish, turn everything already
captured into tickets, exit 0. A second signal exits at once (nothing committed is lost: the
ledger resumes on the next start).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import structlog
from sqlalchemy import Engine

from intaked.backoffice import BackOfficeProcess
from intaked.channels.hotline import register_hotline_routes
from intaked.channels.imap import ImapMailboxWorker
from intaked.channels.recordings import register_recording_routes
from intaked.channels.smtp import SmtpIntakeServer
from intaked.channels.twilio_status import register_status_routes
from intaked.channels.webhooks import WebhookRoutes, WebhookServer
from intaked.config import Settings
from intaked.descriptors import prepare_descriptors
from intaked.hotline.fetcher import VoicemailFetcher
from intaked.intake.capture import CaptureWriter
from intaked.intake.parsepool import ParsePool
from intaked.intake.processor import IntakeProcessor
from intaked.loop_errors import LoopErrorHandler
from intaked.outbound.dispatcher import OutboxDispatcher
from intaked.outbound.outbox import recovery as outbox_recovery
from intaked.outbound.twilio_dispatcher import TwilioDispatcher
from intaked.paging.webhook_routes import register_paging_routes
from intaked.scheduler import Scheduler
from intaked.store.engine import engine_for
from intaked.store.liveness import LivenessKeeper, set_node_name
from intaked.store.migrate import ensure_schema

log = structlog.get_logger(__name__)

EXIT_OK = 0
EXIT_FORCED = 130
EXIT_UNAVAILABLE = 69  # sysexits EX_UNAVAILABLE: the store cannot be reached or is on a wrong schema


def sd_notify(message: str) -> None:
    """Tell systemd (Type=notify) about our state; a no-op outside systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(message.encode("utf-8"))
    except OSError as exc:
        log.warning("sd_notify_failed", error=str(exc))


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
    pager: TwilioDispatcher | None = None
    voicemail: VoicemailFetcher | None = None
    back_office: BackOfficeProcess | None = None
    scheduler: Scheduler | None = None
    keeper: LivenessKeeper | None = None
    smtp: SmtpIntakeServer | None = None
    smtp_address: tuple[str, int] | None = None
    imap_workers: list[ImapMailboxWorker] = field(default_factory=list)
    webhooks: WebhookServer | None = None
    webhook_executor: ThreadPoolExecutor | None = None
    webhooks_address: tuple[str, int] | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        db = self.settings.database
        self.engine = engine_for(self.settings)
        revision = await loop.run_in_executor(
            self.executor,
            lambda: ensure_schema(self.engine, auto_migrate=db.auto_migrate),  # type: ignore[arg-type]
        )
        log.info(
            "store_ready", database=self.engine.url.render_as_string(hide_password=True), schema=revision
        )
        set_node_name(self.settings.daemon.node_name)
        self.keeper = LivenessKeeper(
            self.engine,
            role="front",
            heartbeat_seconds=self.settings.daemon.heartbeat_seconds,
            lease_seconds=self.settings.daemon.lease_seconds,
        )
        wake = await self._start_back_office()
        # This process's heartbeat; marks the workers of this node that died (a back office
        # killed with the front, before this start) gone, and, inline, takes up their claims.
        await loop.run_in_executor(self.executor, self.keeper.start)
        self.capture = CaptureWriter(self.engine, self.executor, on_committed=wake)
        self.capture.start()
        if self.settings.smtp_intake.enabled:
            self.smtp = SmtpIntakeServer(self.settings.smtp_intake, self.capture)
            self.smtp_address = await self.smtp.start()
        if self.settings.twilio.enabled and self.settings.webhooks.listen:
            routes = WebhookRoutes()
            register_status_routes(routes)
            register_paging_routes(routes, self.settings)
            register_recording_routes(routes, self.settings)
            if self.settings.hotline.enabled:
                register_hotline_routes(routes, self.settings)
            # Their own threads: Twilio waits a few seconds for TwiML, and must not queue behind
            # a slow send or download on the shared database threads.
            self.webhook_executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="intaked-webhooks")
            self.webhooks = WebhookServer(
                self.settings, self.engine, self.webhook_executor, routes, on_handled=self._wake_outbox
            )
            self.webhooks_address = await self.webhooks.start()

        def wake_from_thread() -> None:
            loop.call_soon_threadsafe(wake)

        for mailbox in self.settings.imap:
            if mailbox.enabled:
                worker = ImapMailboxWorker(mailbox, self.engine, on_captured=wake_from_thread)
                worker.start()
                self.imap_workers.append(worker)

    async def _start_back_office(self) -> Callable[[], None]:
        """Start the processor and the dispatcher (in the back office process, or here);
        returns the function that tells them new items were captured."""
        if self.settings.daemon.back_office == "process":
            self.back_office = BackOfficeProcess(self.settings)
            await self.back_office.start()
            return self.back_office.wake
        assert self.engine is not None
        intake = self.settings.intake
        self.dispatcher = OutboxDispatcher(self.engine, self.executor, self.settings)
        self.dispatcher.start()
        if self.settings.twilio.enabled:
            self.pager = TwilioDispatcher(self.engine, self.executor, self.settings)
            self.pager.start()
            self.voicemail = VoicemailFetcher(self.engine, self.executor, self.settings)
            self.voicemail.start()
        assert self.keeper is not None
        self.keeper.add_recovery(outbox_recovery(self.settings, self._wake_senders))
        self.parser = ParsePool(intake.parse_workers, intake.parse_timeout_seconds)
        self.processor = IntakeProcessor(
            self.engine,
            self.executor,
            self.settings,
            parser=self.parser,
            on_stored=lambda _: self._stored(),
        )
        self.processor.start()
        self.keeper.add_recovery(self.processor.recovery())
        self.scheduler = Scheduler(self.engine, self.executor, self.settings, on_queued=self._stored)
        self.scheduler.start()
        return self.processor.wake

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

    async def stop(self) -> None:
        log.info("stopping")
        for worker in self.imap_workers:
            worker.stop.set()
        if self.smtp is not None:
            await self.smtp.stop()
        if self.webhooks is not None:
            await self.webhooks.stop()
        loop = asyncio.get_running_loop()
        for worker in self.imap_workers:  # a worker finishes the batch it is committing and moving
            await loop.run_in_executor(None, worker.join, 60.0)
        if self.capture is not None:
            await self.capture.close()
        if self.back_office is not None:
            await self.back_office.stop()
        if self.processor is not None:
            await self.processor.stop()
        if self.scheduler is not None:
            await self.scheduler.stop()
        if self.dispatcher is not None:
            await self.dispatcher.stop()
        if self.pager is not None:
            await self.pager.stop()
        if self.voicemail is not None:
            await self.voicemail.stop()
        if self.keeper is not None:
            await loop.run_in_executor(self.executor, self.keeper.stop)
        self.executor.shutdown(wait=True)
        if self.webhook_executor is not None:
            self.webhook_executor.shutdown(wait=True)
        if self.parser is not None:
            self.parser.close()
        if self.engine is not None:
            self.engine.dispose()
        log.info("stopped")


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
        await daemon.start()
    except Exception as exc:
        log.error("startup_failed", error=str(exc), error_type=type(exc).__name__)
        await daemon.stop()
        loop_errors.flush()
        return EXIT_UNAVAILABLE
    sd_notify("READY=1\nSTATUS=accepting mail")
    log.info("started", pid=os.getpid())
    await stop_requested.wait()
    sd_notify("STOPPING=1")
    await daemon.stop()
    loop_errors.flush()
    return EXIT_OK
