"""A local stand-in for the Microsoft identity platform's token endpoint (client credentials) and
an RFC 7662 introspection endpoint that Dovecot's ``oauth2`` passdb validates tokens with.

``POST /<tenant>/oauth2/v2.0/token`` (any path ending in ``/token``) issues ``access_token`` for
the configured client id and secret with ``expires_in = lifetime``; a wrong secret gets the OAuth2
error JSON (``invalid_client``, HTTP 401). ``POST /introspect`` (form ``token=...``) answers
``{"active": true, "username": USER}`` for a token issued and neither expired nor revoked.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

CLIENT_ID = "intaked-test-app"
CLIENT_SECRET = "s3cret-client-value"


@dataclass
class TokenEndpoint:
    """Start with ``with TokenEndpoint(user) as endpoint:``; ``endpoint.token_url``."""

    user: str
    lifetime: int = 3600
    issued: list[str] = field(default_factory=list)
    introspected: list[str] = field(default_factory=list)
    revoked: set[str] = field(default_factory=set)
    requests: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._expiry: dict[str, float] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="token-endpoint")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/contoso.test/oauth2/v2.0/token"

    @property
    def introspection_url(self) -> str:
        return f"{self.base_url}/introspect"

    def __enter__(self) -> TokenEndpoint:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def issue(self, form: dict[str, str]) -> tuple[int, dict[str, object]]:
        with self._lock:
            self.requests.append(form)
            if form.get("grant_type") != "client_credentials":
                return 400, {"error": "unsupported_grant_type"}
            if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
                return 401, {
                    "error": "invalid_client",
                    "error_description": "Invalid client secret provided.",
                }
            token = f"tok-{len(self.issued) + 1}-{secrets.token_hex(8)}"
            self.issued.append(token)
            self._expiry[token] = time.time() + self.lifetime
            return 200, {"token_type": "Bearer", "expires_in": self.lifetime, "access_token": token}

    def introspect(self, token: str) -> dict[str, object]:
        with self._lock:
            self.introspected.append(token)
            active = token not in self.revoked and self._expiry.get(token, 0) > time.time()
        return {"active": True, "username": self.user} if active else {"active": False}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                if self.path.endswith("/token"):
                    status, body = endpoint.issue(form)
                elif self.path == "/introspect":
                    status, body = 200, endpoint.introspect(form.get("token", ""))
                else:
                    status, body = 404, {"error": "not_found"}
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler
