"""A small HTTP load balancer in front of the nodes' webhook listeners, as an operator puts one in
front of a cluster: each request goes to the next node in turn; a node that refuses the
connection is skipped for the next one. A request whose node dies while answering gets 502 (the
caller, Twilio, retries or gives up as it would)."""

from __future__ import annotations

import contextlib
import http.client
import itertools
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class Balancer:
    """``with Balancer(backends) as lb:``; ``backends()`` returns the ``(host, port)`` of the
    nodes that should be up now; ``lb.url`` is where Twilio is pointed."""

    def __init__(self, backends: Callable[[], list[tuple[str, int]]]) -> None:
        self._backends = backends
        self._turn = itertools.count()
        self.forwarded: list[tuple[int, str, int]] = []  # (port, path, status)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="balancer")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> Balancer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        backends = self._backends()
        start = next(self._turn)
        for index in range(len(backends)):
            host, port = backends[(start + index) % len(backends)]
            connection = http.client.HTTPConnection(host, port, timeout=30)
            try:
                connection.request(method, path, body=body, headers=headers)
                answer = connection.getresponse()
                data = answer.read()
            except ConnectionRefusedError:
                continue  # this node is down: the next one
            except (OSError, http.client.HTTPException):
                return 502, [], b"the node died while answering"
            finally:
                with contextlib.suppress(OSError):
                    connection.close()
            with self._lock:
                self.forwarded.append((port, path, answer.status))
            kept = [(k, v) for k, v in answer.getheaders() if k.lower() not in HOP_BY_HOP]
            return answer.status, kept, data
        return 503, [], b"no node is up"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        balancer = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                status, kept, data = balancer.forward(self.command, self.path, headers, body)
                self.send_response(status)
                for key, value in kept:
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _serve

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler
