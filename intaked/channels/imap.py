"""IMAP intake (RFC 3501, IDLE RFC 2177, MOVE RFC 6851, UIDPLUS RFC 4315), one thread per mailbox.

imapclient is blocking, so each configured mailbox runs on its own thread; its database work
happens there too, never on the event loop. A pass over the folder:

1. ``UID SEARCH`` for every message still in the folder;
2. messages whose ``imap:<mailbox>:<UIDVALIDITY>:<UID>`` is already in the ledger were committed
   before (a crash hit between commit and move): they are only moved;
3. the others are fetched with ``BODY.PEEK[]`` (no \\Seen flag) in batches, committed to the ledger
   in one transaction, and only then moved to the processed folder (MOVE, else COPY + \\Deleted +
   UID EXPUNGE).

Only the node holding the mailbox's lease pulls it (intaked/channels/imaplease.py): several
daemons sharing one database may be configured with the same mailbox. The worker takes the lease
before it connects (a thread of the lease renews it from then on), commits captured mail only
while the lease is still its own with the same fence (in the same transaction), and moves nothing
once it lost it. Without the lease it does not connect, and tries again every third of the lease.

A changed UIDVALIDITY makes every message look new; the ingest step recognises them by Message-ID
(or raw digest) and stores none twice. Network errors reconnect with backoff; a refused login is
logged and retried slowly (so is a refused OAuth2 token request: ``auth = "xoauth2"`` logs in
with AUTHENTICATE XOAUTH2 and a token from intaked/outbound/oauth2.py); STARTTLS that the server
does not offer is an error, never a silent fall back to plaintext. The rest of the daemon is
unaffected by any of it.
"""

from __future__ import annotations

import contextlib
import imaplib
import ssl
import threading
import time
from collections.abc import Callable, Sequence

import structlog
from imapclient import IMAPClient
from imapclient.exceptions import LoginError
from sqlalchemy import Connection, Engine

from intaked.channels.imaplease import MailboxLease
from intaked.channels.imapstate import MailboxState, source_ref
from intaked.config import ImapMailboxSettings
from intaked.intake.capture import RawItem, insert_items
from intaked.outbound.oauth2 import TokenRefused, TokenUnavailable, token_provider, with_token
from intaked.store.leases import LeaseLost
from intaked.store.liveness import worker_id
from intaked.store.settle import describe_error

log = structlog.get_logger(__name__)

#: Errors after which we reconnect: the connection or the server went away.
NETWORK_ERRORS: tuple[type[BaseException], ...] = (OSError, ssl.SSLError, imaplib.IMAP4.abort, EOFError)
#: Errors after which we try again with backoff: these, and a token endpoint out of reach.
RECONNECT_ERRORS: tuple[type[BaseException], ...] = (*NETWORK_ERRORS, TokenUnavailable)
#: How long one IDLE wait lasts before we look at the stop flag again, in seconds.
IDLE_TICK_SECONDS = 1.0
#: After a pass that found mail, the first IDLE lasts this long before we look once more, seconds.
#: A server may miss mail that arrives just as IDLE starts (Dovecot starts watching the folder
#: only then, and reports such mail at its next periodic check, 30 s later); mail comes in bursts.
IDLE_SETTLE_SECONDS = 1.0


class TlsRefused(Exception):
    """The server does not offer the TLS we require; we do not log in in plaintext."""


class ImapMailboxWorker:
    """Pulls one mailbox into the ledger until stopped, while ``holder`` (default: this process's
    worker id) holds its lease."""

    def __init__(
        self,
        settings: ImapMailboxSettings,
        engine: Engine,
        *,
        on_captured: Callable[[], None] = lambda: None,
        stop: threading.Event | None = None,
        holder: str | None = None,
    ) -> None:
        self.settings = settings
        self._engine = engine
        self._on_captured = on_captured
        self.stop = stop or threading.Event()
        holder = holder or worker_id()
        self.log = log.bind(mailbox=settings.name, holder=holder)
        self._state = MailboxState(engine, settings.name)
        self.lease = MailboxLease(engine, settings.name, holder, settings.lease_seconds, self.log)
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None  # also kept here: the store may be what fails

    # -- thread control -------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name=f"imap-{self.settings.name}", daemon=True)
        self._thread.start()

    def join(self, timeout: float) -> None:
        self.stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self) -> None:
        """Take the lease, connect, drain, wait for news; reconnect after failures, until ``stop``
        is set; then give the lease back."""
        backoff = 1.0
        while not self.stop.is_set():
            try:
                if not self.lease.acquire():  # another node pulls the mailbox
                    self.stop.wait(self.lease.renew_seconds)
                    continue
                with self._connect() as client:
                    backoff = 1.0
                    self._session(client)
            except LeaseLost as exc:
                self.lease.lost(exc)
            except (LoginError, TlsRefused, TokenRefused) as exc:
                self._record_error(f"{type(exc).__name__}: {exc}")
                self.log.error(
                    "imap_login_refused", error=str(exc), retry_in=self.settings.auth_retry_seconds
                )
                self.stop.wait(self.settings.auth_retry_seconds)
            except RECONNECT_ERRORS as exc:
                self._record_error(f"{type(exc).__name__}: {exc}")
                self.log.warning("imap_connection_lost", error=str(exc), retry_in=round(backoff, 1))
                self.stop.wait(backoff)
                backoff = min(backoff * 2, self.settings.reconnect_max_seconds)
            except Exception as exc:  # a server answer we did not expect, a database outage ...
                self._record_error(f"{type(exc).__name__}: {exc}")
                self.log.exception("imap_pass_failed", error=str(exc), retry_in=round(backoff, 1))
                self.stop.wait(backoff)
                backoff = min(backoff * 2, self.settings.reconnect_max_seconds)
        self.lease.release()

    # -- one connection --------------------------------------------------------------------------

    def _connect(self) -> IMAPClient:
        cfg = self.settings
        context = ssl.create_default_context(cafile=cfg.tls_ca_file or None)
        client = IMAPClient(
            cfg.host,
            port=cfg.effective_port,
            ssl=cfg.tls == "ssl",
            ssl_context=context if cfg.tls == "ssl" else None,
            timeout=cfg.timeout_seconds,
        )
        try:
            if cfg.tls == "starttls":
                if not client.has_capability("STARTTLS"):
                    raise TlsRefused(f"{cfg.host} does not offer STARTTLS; refusing to log in over plaintext")
                client.starttls(context)
            self._login(client)
        except BaseException:
            _close_quietly(client)
            raise
        self.log.info("imap_connected", host=cfg.host, tls=cfg.tls)
        return client

    def _login(self, client: IMAPClient) -> None:
        """LOGIN with the password, or AUTHENTICATE XOAUTH2 with a token (renewed once if refused)."""
        cfg = self.settings
        if cfg.auth != "xoauth2" or cfg.oauth2 is None:
            client.login(cfg.username, cfg.password.get_secret_value())
            return
        provider = token_provider(cfg.oauth2, self.oauth2_key)
        with_token(provider, lambda token: client.oauth2_login(cfg.username, token), (LoginError,))

    @property
    def oauth2_key(self) -> str:
        """Where this mailbox's ``oauth2`` table is configured, for messages."""
        return f"imap.{self.settings.name}.oauth2"

    def _session(self, client: IMAPClient) -> None:
        cfg = self.settings
        if not client.folder_exists(cfg.processed_folder):
            client.create_folder(cfg.processed_folder)
            self.log.info("imap_folder_created", folder=cfg.processed_folder)
        use_idle = cfg.idle and client.has_capability("IDLE")
        settling = False
        while not self.stop.is_set():
            selected = client.select_folder(cfg.folder)
            uidvalidity = int(selected[b"UIDVALIDITY"])
            if self.drain(client, uidvalidity):
                # Mail that arrived during the pass may have been announced in the answer to our
                # MOVE and would not be announced again in IDLE: look once more first, so that the
                # last command before IDLE is a search that found nothing.
                settling = True
                continue
            if use_idle:
                self._idle(client, IDLE_SETTLE_SECONDS if settling else cfg.poll_seconds)
            else:
                self._wait(cfg.poll_seconds)
            settling = False

    def _wait(self, seconds: float) -> None:
        """Wait ``seconds`` (or until stopped), renewing the lease meanwhile."""
        deadline = time.monotonic() + seconds
        while not self.stop.is_set() and (left := deadline - time.monotonic()) > 0:
            self.stop.wait(min(left, self.lease.renew_seconds))
            self.lease.keep()

    def _idle(self, client: IMAPClient, seconds: float) -> None:
        """Wait in IDLE until the folder changes, we are stopped, or ``seconds`` passed.

        We leave IDLE after ``seconds`` (``poll_seconds`` normally, at most ``idle_renew_seconds``)
        to look at the folder again: a safety net for a notification that never came.
        """
        if _news_announced(client):  # during the pass's last SEARCH
            return
        client.idle()
        try:
            if _news_announced(client):
                # Mail that arrived just before IDLE is announced with IDLE's own start, where
                # imaplib files it away instead of handing it to idle_check().
                return
            limit = min(seconds, self.settings.idle_renew_seconds)
            started = time.monotonic()
            while not self.stop.is_set() and time.monotonic() - started < limit:
                self.lease.keep()
                responses = client.idle_check(timeout=IDLE_TICK_SECONDS)
                if any(len(r) > 1 and r[1] in (b"EXISTS", b"RECENT") for r in responses):
                    return
        finally:
            client.idle_done()

    # -- the pass over the folder ----------------------------------------------------------------

    def drain(self, client: IMAPClient, uidvalidity: int) -> int:
        """Capture every message in the folder and move it; returns how many it captured or moved.
        Raises LeaseLost, having stored and moved nothing more, when another node took over."""
        _forget_announcements(client)  # what arrives from here on is looked at before idling
        uids = sorted(int(uid) for uid in client.search(["NOT", "DELETED"]))
        known = self._state.known_uids(uidvalidity, uids)
        if known:
            self.log.info("imap_moving_already_stored", count=len(known))
            self._move(client, sorted(known))
        new = [uid for uid in uids if uid not in known]
        self._save_state(uidvalidity, backlog=len(new))
        captured = 0
        batch_size = self.settings.fetch_batch
        for start in range(0, len(new), batch_size):
            if self.stop.is_set():
                break
            self.lease.keep()
            batch = new[start : start + batch_size]
            items = self._fetch(client, batch, uidvalidity)
            backlog, last_uid = len(new) - start - len(batch), batch[-1]

            def progress(
                conn: Connection, backlog: int = backlog, last_uid: int = last_uid, fetched: int = len(items)
            ) -> None:
                # fenced: committed only while the lease is still ours with the same fence
                self._save_state(uidvalidity, backlog=backlog, last_uid=last_uid, conn=conn, fetched=fetched)

            if items:
                # committed, with the mailbox's progress: only now may the server forget them
                insert_items(self._engine, items, also=progress)
                captured += len(items)
                self._on_captured()
                self.log.info("imap_captured", count=len(items), last_uid=last_uid)
            else:
                self._save_state(uidvalidity, backlog=backlog, last_uid=last_uid)
            self._move(client, batch)
        self._save_state(uidvalidity, polled=True)
        return captured + len(known)

    def _fetch(self, client: IMAPClient, batch: Sequence[int], uidvalidity: int) -> list[RawItem]:
        """The raw messages of ``batch`` (those expunged meanwhile left out), unread."""
        fetched = client.fetch(batch, ["BODY.PEEK[]", "INTERNALDATE"])
        items = []
        for uid in batch:
            data = fetched.get(uid)
            if data is None or b"BODY[]" not in data:
                continue  # expunged meanwhile (by another client or daemon)
            items.append(
                RawItem(
                    channel="imap",
                    raw=bytes(data[b"BODY[]"]),
                    envelope_to=[self.settings.username],
                    peer=self.settings.host,
                    source_ref=source_ref(self.settings.name, uidvalidity, uid),
                )
            )
        return items

    def _move(self, client: IMAPClient, uids: Sequence[int]) -> None:
        if not uids:
            return
        self.lease.confirm()  # a node that lost the lease moves nothing
        target = self.settings.processed_folder
        if client.has_capability("MOVE"):
            client.move(uids, target)
            return
        client.copy(uids, target)
        client.add_flags(uids, [b"\\Deleted"], silent=True)
        if client.has_capability("UIDPLUS"):
            client.uid_expunge(uids)
        else:  # plain EXPUNGE also removes other \Deleted messages of the folder; nothing better exists
            client.expunge()

    # -- the store -------------------------------------------------------------------------------

    def _save_state(
        self,
        uidvalidity: int,
        *,
        backlog: int | None = None,
        last_uid: int | None = None,
        polled: bool = False,
        conn: Connection | None = None,
        fetched: int = 0,
    ) -> None:
        """Record the pass's progress, in ``conn``'s transaction or one of its own, only while the
        lease is ours (else LeaseLost, with ``fetched`` messages left unstored)."""
        if conn is None:
            with self._engine.begin() as own:
                self._save_state(uidvalidity, backlog=backlog, last_uid=last_uid, polled=polled, conn=own)
            return
        self.lease.confirm(conn, not_stored=fetched)
        self._state.save(conn, uidvalidity, backlog=backlog, last_uid=last_uid, polled=polled)

    def _record_error(self, error: str) -> None:
        self.last_error = error
        try:
            self._state.record_error(error)
        except Exception as exc:  # the store may be what failed
            self.log.warning("imap_state_not_saved", error=describe_error(exc))


def _untagged(client: IMAPClient) -> dict[str, list[bytes]]:
    """imaplib's store of untagged responses that no command returned (imapclient has no API for it)."""
    store = getattr(getattr(client, "_imap", None), "untagged_responses", None)
    return store if isinstance(store, dict) else {}


def _forget_announcements(client: IMAPClient) -> None:
    store = _untagged(client)
    store.pop("EXISTS", None)
    store.pop("RECENT", None)


def _news_announced(client: IMAPClient) -> bool:
    """Did the server announce messages (a non-zero EXISTS or RECENT) since we last forgot?"""
    store = _untagged(client)
    return any(
        value.strip() not in (b"", b"0") for key in ("EXISTS", "RECENT") for value in store.get(key, [])
    )


def _close_quietly(client: IMAPClient) -> None:
    with contextlib.suppress(Exception):  # closing a broken connection may fail too; it is gone anyway
        client.shutdown()
