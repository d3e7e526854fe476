"""A real SMTP server on loopback (aiosmtpd) that records what arrives, and can refuse or be down."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from tests.support.workers import free_port


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.raw, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class SmtpSink:
    """``mode``: "accept", "tempfail" (451 at DATA) or "permfail" (550 at RCPT).
    ``smtputf8``: offer SMTPUTF8 (RFC 6531). ``login``: (user, password) that AUTH accepts
    (offered without TLS); ``logins`` records who logged in."""

    port: int = field(default_factory=free_port)
    mode: str = "accept"
    received: list[Received] = field(default_factory=list)
    attempts: int = 0
    smtputf8: bool = True
    login: tuple[str, str] | None = None
    logins: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._sessions: list[SMTP] = []

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if self.mode == "permfail":
            with self._lock:
                self.attempts += 1
            return f"550 5.1.1 <{address}>: no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self._lock:
            self.attempts += 1
        if self.mode == "tempfail":
            return "451 4.3.0 try again later"
        with self._lock:
            self.received.append(
                Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.original_content))
            )
        return f"250 2.0.0 Ok: queued as SINK{len(self.received)}"

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and self.login == (
            data.login.decode("utf-8"),
            data.password.decode("utf-8"),
        )
        if ok:
            with self._lock:
                self.logins.append(data.login.decode("utf-8"))
        return AuthResult(success=ok)

    @property
    def offers_auth(self) -> bool:
        """Whether sessions offer AUTH (without TLS); subclasses with their own mechanism say so."""
        return self.login is not None

    def start(self) -> SmtpSink:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop

            async def serve() -> None:
                def session() -> SMTP:
                    auth: dict[str, Any] = {}
                    if self.offers_auth:
                        auth = {  # offered, not required: aiosmtpd warns on requiring AUTH without TLS
                            "auth_require_tls": False,
                            "authenticator": self._authenticate,
                        }
                    protocol = SMTP(self, enable_SMTPUTF8=self.smtputf8, decode_data=False, loop=loop, **auth)
                    self._sessions.append(protocol)
                    return protocol

                self._server = await loop.create_server(
                    session,
                    "127.0.0.1",
                    self.port,
                )
                ready.set()

            loop.run_until_complete(serve())
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, daemon=True, name="smtp-sink")
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the SMTP sink did not start")
        return self

    def stop(self) -> None:
        """Down: the port refuses connections until :meth:`start` again."""
        if self._loop is None or self._server is None:
            return
        loop, server = self._loop, self._server

        async def close() -> None:
            server.close()
            for session in self._sessions:  # hang up on connected clients too: the relay is down
                if session.transport is not None:
                    session.transport.close()
            self._sessions.clear()
            await server.wait_closed()
            await asyncio.sleep(0.05)  # let the transports finish closing

        asyncio.run_coroutine_threadsafe(close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop = self._server = None

    def messages(self) -> list[Received]:
        with self._lock:
            return list(self.received)
