"""The webhook listener: Twilio's status callbacks, SMS replies and keypresses reach intaked here.

An ``aiohttp.web`` server on the front process's event loop (``webhooks.listen``), its
connections capped and their request heads timed (intaked/twilio/connections.py). Each request
passes, in this order: POST only (405), a body of at most ``webhooks.max_body_bytes`` (413)
complete within ``webhooks.body_timeout_seconds`` (408, and the connection is closed), and
Twilio's signature (403, intaked/twilio/signature.py), checked against ``webhooks.public_url``
followed by the path and query string exactly as received (never the socket's address: a TLS
proxy sits in between), with the current and the previous auth token. Only then is the route's
handler run, on the daemon's database threads, never on the loop. Unknown paths answer 404
after the signature check.

A handler is a plain function ``handler(engine, request) -> WebhookResponse``; the table of every
path and its handler is intaked/twilio/routes.py. It makes its change in one transaction and
calls :func:`intaked.store.receipts.record_receipt` inside it first, so a replayed or retried
request (same Sid, same event) changes nothing the second time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import parse_qsl

import structlog
from aiohttp import web
from sqlalchemy import Engine

from intaked.channels.listening import close_listener
from intaked.config import Settings
from intaked.store.settle import describe_error, store_unavailable
from intaked.store.types import utcnow
from intaked.twilio.connections import ConnectionPool
from intaked.twilio.signature import SIGNATURE_HEADER, SignatureCheck

log = structlog.get_logger(__name__)

TWIML_CONTENT_TYPE = "application/xml"
SHUTDOWN_TIMEOUT_SECONDS = 3.0
LISTEN_BACKLOG = 128


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """A signed request, as a handler sees it."""

    path: str
    query: str  # the raw query string, as received
    params: tuple[tuple[str, str], ...]  # the form's (key, value) pairs in order, repeated keys kept
    received_at: dt.datetime
    remote: str | None = None

    def get(self, key: str) -> str | None:
        """The first value of form parameter ``key``."""
        for name, value in self.params:
            if name == key:
                return value
        return None

    def query_get(self, key: str) -> str | None:
        """The first value of query parameter ``key`` (e.g. ``attempt`` of our callback URLs)."""
        for name, value in parse_qsl(self.query, keep_blank_values=True):
            if name == key:
                return value
        return None


@dataclass(frozen=True, slots=True)
class WebhookResponse:
    """What to answer: TwiML XML, or an empty body."""

    status: int = HTTPStatus.OK
    content_type: str = "text/plain"
    body: str = ""

    @classmethod
    def twiml(cls, xml: str) -> WebhookResponse:
        return cls(HTTPStatus.OK, TWIML_CONTENT_TYPE, xml)

    @classmethod
    def empty(cls) -> WebhookResponse:
        return cls(HTTPStatus.OK, "text/plain", "")


Handler = Callable[[Engine, WebhookRequest], WebhookResponse]


@dataclass
class WebhookRoutes:
    """Path → handler."""

    handlers: dict[str, Handler] = field(default_factory=dict)

    def register(self, path: str, handler: Handler) -> None:
        """Route POSTs to ``path`` (exact, e.g. ``/twilio/status/call``) to ``handler``."""
        if not path.startswith("/"):
            raise ValueError(f"webhook path {path!r} must start with /")
        known = self.handlers.get(path)
        if known is not None and known is not handler:
            raise ValueError(f"webhook path {path} already has a handler ({known!r})")
        self.handlers[path] = handler

    def resolve(self, path: str) -> Handler | None:
        return self.handlers.get(path)


class WebhookServer:
    """The listener; ``start()`` returns the bound (host, port), ``stop()`` closes it."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        executor: Executor,
        routes: WebhookRoutes,
        *,
        on_handled: Callable[[], None] = lambda: None,
    ) -> None:
        self._settings = settings
        self._engine = engine
        self._executor = executor
        self._on_handled = on_handled  # after a handler's commit: it may have queued outbox rows
        self.routes = routes
        self._signatures = SignatureCheck.from_settings(settings.twilio)
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.Server | None = None
        self._connections: ConnectionPool | None = None

    async def start(self) -> tuple[str, int]:
        hooks = self._settings.webhooks
        host, port = hooks.host_port
        app = web.Application(client_max_size=hooks.max_body_bytes)
        app.router.add_route("*", "/{tail:.*}", self._handle_guarded)
        # Handlers are short transactions: on stop, wait for them, not for idle keep-alive peers.
        # keepalive_timeout also closes a connection that sent no complete request that long.
        self._runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS,
            keepalive_timeout=hooks.keepalive_timeout_seconds,
        )
        await self._runner.setup()
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()
        self._connections = ConnectionPool(
            server,
            max_connections=hooks.max_connections,
            header_timeout_seconds=hooks.header_timeout_seconds,
        )
        # Our own listening socket (not web.TCPSite): its connections go through the pool.
        self._listener = await loop.create_server(
            self._connections.protocol_factory, host, port, reuse_address=True, backlog=LISTEN_BACKLOG
        )
        bound = self._listener.sockets[0].getsockname()
        address = (str(bound[0]), int(bound[1]))
        log.info(
            "webhooks_listening",
            host=address[0],
            port=address[1],
            public_url=hooks.public_url,
            max_connections=hooks.max_connections,
        )
        return address

    async def stop(self) -> None:
        if self._listener is not None:
            await close_listener(self._listener)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._connections is not None:
            # what aiohttp's cleanup left open (not yet a request), each socket closed before we return
            await self._connections.close_all(SHUTDOWN_TIMEOUT_SECONDS)
        if self._listener is not None:
            await self._listener.wait_closed()
            self._listener = None
        if self._connections is not None:
            self._connections.flush_logs()

    async def _handle_guarded(self, request: web.Request) -> web.Response:
        """The head is in: the connection leaves its head deadline for the body's (and the
        handler's); once answered it is idle."""
        assert self._connections is not None
        connection = self._connections.connection_of(request.protocol)
        if connection is not None:
            connection.request_started()
        try:
            return await self._handle(request)
        finally:
            if connection is not None:
                connection.request_finished()

    async def _handle(self, request: web.Request) -> web.Response:
        remote = request.remote
        bound = log.bind(path=request.path, remote=remote)
        if request.method != "POST":
            return web.Response(status=HTTPStatus.METHOD_NOT_ALLOWED, headers={"Allow": "POST"})
        limit = self._settings.webhooks.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            bound.warning("webhook_too_large", length=request.content_length)
            return web.Response(status=HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        try:
            async with asyncio.timeout(self._settings.webhooks.body_timeout_seconds):
                body = await _read_body(request, limit)
        except TimeoutError:
            return await self._body_timed_out(request)
        except ConnectionError:  # the peer left mid-body: nobody to answer, nothing to log each time
            assert self._connections is not None
            self._connections.peers_gone.occurred(path=request.path, peer=remote)
            return web.Response(status=HTTPStatus.BAD_REQUEST)
        if len(body) > limit:
            bound.warning("webhook_too_large", length=len(body))
            return web.Response(status=HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        try:
            params = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
        except (UnicodeDecodeError, ValueError):
            params = None
        url = self._settings.webhooks.public_url + request.raw_path
        signature = request.headers.get(SIGNATURE_HEADER)
        if params is None or not self._signatures.valid(url, params, signature):
            bound.warning("webhook_signature_rejected", signed=signature is not None, url=url)
            return web.Response(status=HTTPStatus.FORBIDDEN)
        handler = self.routes.resolve(request.path)
        if handler is None:
            bound.warning("webhook_unknown_path")
            return web.Response(status=HTTPStatus.NOT_FOUND)
        signed = WebhookRequest(
            path=request.path,
            query=request.raw_path.partition("?")[2],
            params=tuple(params),
            received_at=utcnow(),
            remote=remote,
        )
        loop = asyncio.get_running_loop()
        try:
            answer = await loop.run_in_executor(self._executor, handler, self._engine, signed)
        except Exception as exc:
            if store_unavailable(exc):  # Twilio retries; the traceback would say nothing more
                bound.error("webhook_handler_failed", error=describe_error(exc))
            else:
                bound.exception("webhook_handler_failed", error=describe_error(exc))
            return web.Response(status=HTTPStatus.INTERNAL_SERVER_ERROR)
        self._on_handled()
        return web.Response(
            status=answer.status,
            body=answer.body.encode("utf-8"),
            content_type=answer.content_type,
            charset="utf-8",
        )

    async def _body_timed_out(self, request: web.Request) -> web.Response:
        """Answer 408 and close: the rest of a body that is this late is not waited for."""
        assert self._connections is not None
        self._connections.body_timeouts.occurred(
            body_timeout_seconds=self._settings.webhooks.body_timeout_seconds,
            path=request.path,
            peer=request.remote,
        )
        response = web.Response(status=HTTPStatus.REQUEST_TIMEOUT)
        response.force_close()
        await response.prepare(request)
        await response.write_eof()
        request.protocol.force_close()  # flushes the 408, then closes; no lingering read of the body
        return response


async def _read_body(request: web.Request, limit: int) -> bytes:
    """The whole body, however many packets it came in; one byte more than ``limit`` at most."""
    body = b""
    while len(body) <= limit:
        chunk = await request.content.read(limit + 1 - len(body))
        if not chunk:
            break
        body += chunk
    return body
