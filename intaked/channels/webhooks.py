"""The webhook listener: Twilio's status callbacks, SMS replies and keypresses reach intaked here.

An ``aiohttp.web`` server on the front process's event loop (``webhooks.listen``), its
connections capped and their request heads timed (intaked/channels/webhook_connections.py). Each
request passes, in this order: POST only (405), a body of at most ``webhooks.max_body_bytes``
(413) complete within ``webhooks.body_timeout_seconds`` (408, and the connection is closed), and
Twilio's signature (403): ``X-Twilio-Signature`` must be base64(HMAC-SHA1(auth token, URL +
every parameter's key and value, sorted)), where the URL is ``webhooks.public_url`` followed by
the path and query string exactly as received (never the socket's address: a TLS proxy sits in
between), computed with the current and the previous auth token (rotation) and compared in
constant time. Only then is the route's handler run, on the daemon's database threads, never on
the loop. Unknown paths answer 404 after the signature check.

A handler is a plain function ``handler(engine, request) -> WebhookResponse`` registered with
:func:`register` (or on a :class:`WebhookRoutes` of one's own). It makes its change in one
transaction and calls :func:`record_receipt` inside it first, so a replayed or retried request
(same Sid, same event) changes nothing the second time.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import structlog
from aiohttp import web
from sqlalchemy import Connection, Engine

from intaked.channels.webhook_connections import ConnectionPool
from intaked.config import Settings
from intaked.store.dialect import insert_or_merge
from intaked.store.models import webhook_receipt_table
from intaked.store.settle import describe_error, store_unavailable
from intaked.store.types import utcnow

log = structlog.get_logger(__name__)

SIGNATURE_HEADER = "X-Twilio-Signature"
HTTP_OK = 200
HTTP_BAD_REQUEST = 400
HTTP_FORBIDDEN = 403
HTTP_NOT_FOUND = 404
HTTP_METHOD_NOT_ALLOWED = 405
HTTP_REQUEST_TIMEOUT = 408
HTTP_TOO_LARGE = 413
HTTP_INTERNAL_ERROR = 500
TWIML_CONTENT_TYPE = "application/xml"
SHUTDOWN_TIMEOUT_SECONDS = 3.0
LISTEN_BACKLOG = 128
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


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

    status: int = HTTP_OK
    content_type: str = "text/plain"
    body: str = ""

    @classmethod
    def twiml(cls, xml: str) -> WebhookResponse:
        return cls(HTTP_OK, TWIML_CONTENT_TYPE, xml)

    @classmethod
    def empty(cls) -> WebhookResponse:
        return cls(HTTP_OK, "text/plain", "")


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
            raise ValueError(f"webhook path {path} already has a handler ({known.__qualname__})")
        self.handlers[path] = handler

    def resolve(self, path: str) -> Handler | None:
        return self.handlers.get(path)


#: The daemon's routes; modules add theirs with :func:`register`.
ROUTES = WebhookRoutes()


def register(path: str, handler: Handler) -> None:
    """Add a route to the daemon's webhook listener (see :class:`WebhookRoutes`)."""
    ROUTES.register(path, handler)


def compute_signature(url: str, params: Sequence[tuple[str, str]], token: str) -> str:
    """Twilio's X-Twilio-Signature for a form POST: keys sorted, each key's distinct values sorted."""
    values: dict[str, set[str]] = {}
    for key, value in params:
        values.setdefault(key, set()).add(value)
    data = url + "".join(key + value for key in sorted(values) for value in sorted(values[key]))
    digest = hmac.new(token.encode("utf-8"), data.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def _url_variants(url: str) -> list[str]:
    """``url`` as given, and with its scheme's default port added or removed (Twilio signs either)."""
    parts = urlsplit(url)
    default = {"https": 443, "http": 80}.get(parts.scheme)
    host = parts.hostname or ""
    if default is None or not host:
        return [url]
    if parts.port is None:
        other = f"{parts.netloc}:{default}"
    elif parts.port == default:
        other = parts.netloc.rsplit(":", 1)[0]
    else:
        return [url]
    return [url, urlunsplit((parts.scheme, other, parts.path, parts.query, parts.fragment))]


def signature_valid(
    url: str, params: Sequence[tuple[str, str]], signature: str | None, tokens: Sequence[str]
) -> bool:
    """Whether ``signature`` is Twilio's for ``url`` and ``params`` under any of ``tokens``."""
    if not signature:
        return False
    given = signature.encode("ascii", "replace")
    ok = False
    for token in tokens:
        if not token:
            continue
        for variant in _url_variants(url):
            expected = compute_signature(variant, params, token).encode("ascii")
            ok |= hmac.compare_digest(expected, given)  # no early exit: constant work per request
    return ok


def record_receipt(
    conn: Connection,
    endpoint: str,
    sid: str,
    event: str,
    params: Sequence[tuple[str, str]],
    now: dt.datetime | None = None,
) -> bool:
    """Remember, in the caller's transaction, that ``endpoint`` acted on ``event`` of ``sid``.
    False when it already had: the caller then changes nothing."""
    result = conn.execute(
        insert_or_merge(conn, webhook_receipt_table)
        .values(
            dedupe_key=f"{endpoint}:{sid}:{event}"[:255],
            endpoint=endpoint[:64],
            sid=sid[:64],
            params=json.dumps(list(params), ensure_ascii=False),
            received_at=now or utcnow(),
        )
        .on_conflict_do_nothing(index_elements=[webhook_receipt_table.c.dedupe_key])
        .returning(webhook_receipt_table.c.id)
    )
    return result.first() is not None


class WebhookServer:
    """The listener; ``start()`` returns the bound (host, port), ``stop()`` closes it."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        executor: Executor,
        routes: WebhookRoutes | None = None,
        *,
        on_handled: Callable[[], None] = lambda: None,
    ) -> None:
        self._settings = settings
        self._engine = engine
        self._executor = executor
        self._on_handled = on_handled  # after a handler's commit: it may have queued outbox rows
        self.routes = routes if routes is not None else ROUTES
        twilio = settings.twilio
        self._tokens = [
            token
            for token in (twilio.auth_token.get_secret_value(), twilio.previous_auth_token.get_secret_value())
            if token
        ]
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
            self._listener.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
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
            return web.Response(status=HTTP_METHOD_NOT_ALLOWED, headers={"Allow": "POST"})
        limit = self._settings.webhooks.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            bound.warning("webhook_too_large", length=request.content_length)
            return web.Response(status=HTTP_TOO_LARGE)
        try:
            async with asyncio.timeout(self._settings.webhooks.body_timeout_seconds):
                body = await _read_body(request, limit)
        except TimeoutError:
            return await self._body_timed_out(request)
        except ConnectionError:  # the peer left mid-body: nobody to answer, nothing to log each time
            assert self._connections is not None
            self._connections.peers_gone.occurred(path=request.path, peer=remote)
            return web.Response(status=HTTP_BAD_REQUEST)
        if len(body) > limit:
            bound.warning("webhook_too_large", length=len(body))
            return web.Response(status=HTTP_TOO_LARGE)
        try:
            params = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
        except (UnicodeDecodeError, ValueError):
            params = None
        url = self._settings.webhooks.public_url + request.raw_path
        signature = request.headers.get(SIGNATURE_HEADER)
        if params is None or not signature_valid(url, params, signature, self._tokens):
            bound.warning("webhook_signature_rejected", signed=signature is not None, url=url)
            return web.Response(status=HTTP_FORBIDDEN)
        handler = self.routes.resolve(request.path)
        if handler is None:
            bound.warning("webhook_unknown_path")
            return web.Response(status=HTTP_NOT_FOUND)
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
            return web.Response(status=HTTP_INTERNAL_ERROR)
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
        response = web.Response(status=HTTP_REQUEST_TIMEOUT)
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
