"""SMTP and LMTP intake (RFC 5321, RFC 2033) on the daemon's event loop, with aiosmtpd.

The channel only captures: at end of DATA it hands the exact bytes and the envelope to the
capture writer and answers 250 once they are committed; if the store cannot take them it answers
451 so the sending MTA retries. Recipients that are not ours get 550 5.1.1 at RCPT time, mail
over ``smtp_intake.max_message_bytes`` gets 552, and nothing is ever relayed. At most
``smtp_intake.max_sessions`` sessions are open at once: one more is answered 421 4.3.2 and closed
(the sender retries later, and a flood of connections cannot take every descriptor).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable, Iterable
from typing import Any, Final, cast

import structlog
from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session, syntax

from intaked.channels.listening import close_listener
from intaked.channels.refusal import RefuseAndClose
from intaked.channels.smtpdata import read_message
from intaked.config import SmtpIntakeSettings
from intaked.intake.capture import CaptureUnavailable, CaptureWriter, RawItem
from intaked.logthrottle import ThrottledEvent
from intaked.metrics.counters import DEFERRED_REPLIES

log = structlog.get_logger(__name__)

# Reply lines (RFC 5321 codes with RFC 3463 enhanced status codes).
REPLY_RCPT_OK: Final = "250 2.1.5 Recipient ok"
REPLY_QUEUED: Final = "250 2.0.0 Ok: stored as item {item_id}"
REPLY_LMTP_DELIVERED: Final = "250 2.1.5 <{recipient}> Ok: stored as item {item_id}"
REPLY_NO_SUCH_RECIPIENT: Final = "550 5.1.1 <{recipient}>: recipient address rejected: not a helpdesk address"
REPLY_STORE_UNAVAILABLE: Final = "451 4.3.0 Temporary failure storing the message; try again later"
REPLY_SHUTTING_DOWN: Final = "421 4.3.2 Service shutting down; try again later"
REPLY_TOO_MANY_SESSIONS: Final = "421 4.3.2 Too many connections, try again later"
HANG_UP_SECONDS: Final = 3.0  # on stop, for the sessions' sockets to close
REPLY_NEED_RCPT: Final = "503 Error: need RCPT command"
REPLY_DATA_SYNTAX: Final = "501 Syntax: DATA"
REPLY_START_DATA: Final = "354 End data with <CR><LF>.<CR><LF>"
REPLY_TOO_MUCH_DATA: Final = "552 Error: Too much mail data"
NULL_REVERSE_PATH: Final = "<>"


# The path nearly every client sends in MAIL FROM and RCPT TO: <dot-atom@host.name>, ASCII only,
# perhaps followed by parameters. aiosmtpd hands every path to the e-mail package's header parser,
# which costs a fifth of a whole message's SMTP conversation; a path of this plain form parses to
# exactly what that parser would return, so it is taken apart here and anything else still goes
# to aiosmtpd (quoted local parts, the null path <>, address literals, UTF-8).
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN_PATH = re.compile(rf"<({_ATOM}(?:\.{_ATOM})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>")


class _IntakeSession:
    """Mixin for aiosmtpd's SMTP/LMTP: our line limit, and a callback when the session ends.

    RFC 5321 limits lines to 998 octets, but real clients send longer ones (the shared corpus has
    a single line over 1 MiB); a helpdesk must not refuse a report over its formatting, so a line
    may be as long as the message may be (``smtp_intake.max_message_bytes`` still holds: 552).
    """

    on_lost: Callable[[SMTP], None] | None = None

    def __init__(self, *args: Any, line_length_limit: int, **kwargs: Any) -> None:
        self.line_length_limit = line_length_limit  # read by SMTP.__init__ to size its reader
        super().__init__(*args, **kwargs)

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        plain = _PLAIN_PATH.match(arg)
        rest = arg[plain.end() :].lstrip(" \t") if plain else ""
        if plain is None or rest.startswith("("):  # a comment after the path: aiosmtpd's reading
            return super()._getaddr(arg)  # type: ignore[misc,no-any-return]
        address = plain.group(1)
        limit = cast(SMTP, self).local_part_limit
        if limit and len(address.rpartition("@")[0]) > limit:
            return None, None
        return address, rest

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        """DATA as aiosmtpd answers it, with the message read into one buffer (smtpdata.py)."""
        smtp = cast(SMTP, self)
        if await smtp.check_helo_needed() or await smtp.check_auth_needed("DATA"):
            return
        envelope = smtp.envelope
        assert envelope is not None
        if not envelope.rcpt_tos:
            await smtp.push(REPLY_NEED_RCPT)
            return
        if arg:
            await smtp.push(REPLY_DATA_SYNTAX)
            return
        await smtp.push(REPLY_START_DATA)
        # A connection lost meanwhile raises ConnectionResetError: aiosmtpd ends the session.
        content = await read_message(smtp._reader, smtp.data_size_limit)
        if content is None:
            smtp.envelope = smtp._create_envelope()
            await smtp.push(REPLY_TOO_MUCH_DATA)
            return
        envelope.content = envelope.original_content = content
        del content
        status = await smtp._call_handler_hook("DATA")
        smtp.envelope = smtp._create_envelope()  # the message is no longer referred to here
        await smtp.push(status)

    def connection_lost(self, error: Exception | None) -> None:
        if self.on_lost is not None:
            self.on_lost(cast(SMTP, self))
        super().connection_lost(error)  # type: ignore[misc]


class _IntakeSMTP(_IntakeSession, SMTP):
    pass


class _IntakeLMTP(_IntakeSession, LMTP):
    pass


def recipient_accepted(address: str, accepted: Iterable[str]) -> bool:
    """Is ``address`` one of ours? ``accepted`` holds addresses and ``@domain`` entries.

    An empty ``accepted`` list accepts every recipient (the built-in default, for trying intaked
    out); a deployment lists its helpdesk addresses.
    """
    accepted = list(accepted)
    if not accepted:
        return True
    address = address.strip().lower()
    domain = "@" + address.rpartition("@")[2]
    return address in accepted or domain in accepted


class IntakeHandler:
    """aiosmtpd handler: decides the RCPT and DATA replies."""

    def __init__(self, settings: SmtpIntakeSettings, writer: CaptureWriter) -> None:
        self._settings = settings
        self._writer = writer
        self.in_flight = 0
        self.idle = asyncio.Event()
        self.idle.set()

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if not recipient_accepted(address, self._settings.recipients):
            log.info("recipient_rejected", recipient=address, peer=str(session.peer))
            return REPLY_NO_SUCH_RECIPIENT.format(recipient=address)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return REPLY_RCPT_OK

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        # aiosmtpd keeps the null reverse-path (a bounce's MAIL FROM:<>) as "<>"; the ledger
        # stores it as the empty string, which is what tells the acknowledgements not to answer.
        mail_from = "" if envelope.mail_from == NULL_REVERSE_PATH else envelope.mail_from
        item = RawItem(
            channel=self._settings.protocol,
            raw=bytes(raw),
            envelope_from=mail_from,
            envelope_to=list(envelope.rcpt_tos),
            peer=str(session.peer[0]) if session.peer else None,
        )
        self.in_flight += 1
        self.idle.clear()
        try:
            item_id = await self._writer.submit(item)
        except CaptureUnavailable as exc:
            log.warning("message_deferred", peer=item.peer, size=len(raw), error=str(exc))
            DEFERRED_REPLIES.inc()
            return self._per_recipient(envelope, REPLY_STORE_UNAVAILABLE, None)
        finally:
            self.in_flight -= 1
            if not self.in_flight:
                self.idle.set()
        log.info("message_stored", inbound_item=item_id, size=len(raw), envelope_from=item.envelope_from)
        return self._per_recipient(envelope, None, item_id)

    def _per_recipient(self, envelope: Envelope, failure: str | None, item_id: int | None) -> str:
        """SMTP answers once; LMTP answers once per accepted recipient (RFC 2033 4.2)."""
        if self._settings.protocol == "smtp":
            return failure or REPLY_QUEUED.format(item_id=item_id)
        lines = [
            failure or REPLY_LMTP_DELIVERED.format(recipient=rcpt, item_id=item_id)
            for rcpt in envelope.rcpt_tos
        ]
        return "\r\n".join(lines)


class SmtpIntakeServer:
    """The listening socket and its sessions; stops accepting first, then lets DATA finish."""

    def __init__(self, settings: SmtpIntakeSettings, writer: CaptureWriter) -> None:
        self._settings = settings
        self.handler = IntakeHandler(settings, writer)
        self._server: asyncio.Server | None = None
        self._sessions: set[SMTP] = set()
        self._refused = ThrottledEvent(log, "smtp_session_refused_at_cap")

    def _make_protocol(self) -> asyncio.Protocol:
        if len(self._sessions) >= self._settings.max_sessions:
            self._refused.occurred(max_sessions=self._settings.max_sessions)
            return RefuseAndClose((REPLY_TOO_MANY_SESSIONS + "\r\n").encode("ascii"))
        return self._make_session()

    def _make_session(self) -> SMTP:
        cls = _IntakeLMTP if self._settings.protocol == "lmtp" else _IntakeSMTP
        kwargs: dict[str, Any] = {
            "data_size_limit": self._settings.max_message_bytes,
            "line_length_limit": self._settings.max_message_bytes + 2,
            "enable_SMTPUTF8": True,
            "decode_data": False,
            "timeout": self._settings.timeout_seconds,
            "ident": "intaked",
            "loop": asyncio.get_running_loop(),
        }
        if self._settings.hostname:
            kwargs["hostname"] = self._settings.hostname
        protocol = cls(self.handler, **kwargs)
        protocol.on_lost = self._sessions.discard
        self._sessions.add(protocol)
        return protocol

    async def start(self) -> tuple[str, int]:
        host, port = self._settings.host_port
        self._server = await asyncio.get_running_loop().create_server(
            self._make_protocol, host=host, port=port, reuse_address=True
        )
        bound = self._server.sockets[0].getsockname()
        log.info(
            "smtp_intake_listening",
            protocol=self._settings.protocol,
            host=bound[0],
            port=bound[1],
            max_sessions=self._settings.max_sessions,
        )
        return str(bound[0]), int(bound[1])

    async def stop(self, grace_seconds: float = 30.0) -> None:
        """Stop accepting connections, let messages being committed finish, then hang up on
        every session and wait (briefly) until their sockets are closed."""
        if self._server is None:
            return
        await close_listener(self._server)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.handler.idle.wait(), grace_seconds)
        try:
            async with asyncio.timeout(HANG_UP_SECONDS):
                while self._sessions:  # a session made but not yet connected is closed once it is
                    self._hang_up()
                    await asyncio.sleep(0.01)
        except TimeoutError:
            log.warning("smtp_sessions_left_open", count=len(self._sessions))
        await self._server.wait_closed()
        self._server = None
        self._refused.flush()

    def _hang_up(self) -> None:
        """Say 421 to every connected session and close it."""
        for session in list(self._sessions):
            transport = cast(asyncio.WriteTransport | None, session.transport)
            if transport is not None and not transport.is_closing():
                with contextlib.suppress(Exception):
                    transport.write((REPLY_SHUTTING_DOWN + "\r\n").encode("ascii"))
                transport.close()
