"""A local stand-in for the Microsoft identity platform's token endpoint (client credentials) and
an RFC 7662 introspection endpoint that Dovecot's ``oauth2`` passdb validates tokens with.

``POST /<tenant>/oauth2/v2.0/token`` (any path ending in ``/token``) issues ``access_token`` for
the configured client id and secret with ``expires_in = lifetime``, or, as Entra ID does for an
app with a certificate, for a client assertion (an RS256 JWT naming the certificate by its SHA-1
thumbprint in ``x5t``, for the token URL as audience, issued by and about the client id) whose
signature the registered certificate verifies; a wrong secret or assertion gets the OAuth2 error
JSON (``invalid_client``, HTTP 401). ``POST /introspect`` (form ``token=...``) answers
``{"active": true, "username": USER}`` for a token issued and neither expired nor revoked.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

CLIENT_ID = "intaked-test-app"
CLIENT_SECRET = "s3cret-client-value"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass
class TokenEndpoint:
    """Start with ``with TokenEndpoint(user) as endpoint:``; ``endpoint.token_url``."""

    user: str
    lifetime: int = 3600
    issued: list[str] = field(default_factory=list)
    introspected: list[str] = field(default_factory=list)
    revoked: set[str] = field(default_factory=set)
    requests: list[dict[str, str]] = field(default_factory=list)
    certificate_pem: bytes | None = None  # the certificate uploaded to the app, if any

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
            if form.get("client_assertion_type") == ASSERTION_TYPE:
                refusal = self._assertion_refusal(form.get("client_assertion", ""))
            elif form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
                refusal = "Invalid client secret provided."
            else:
                refusal = None
            if refusal is not None:
                return 401, {"error": "invalid_client", "error_description": refusal}
            token = f"tok-{len(self.issued) + 1}-{secrets.token_hex(8)}"
            self.issued.append(token)
            self._expiry[token] = time.time() + self.lifetime
            return 200, {"token_type": "Bearer", "expires_in": self.lifetime, "access_token": token}

    def _assertion_refusal(self, assertion: str) -> str | None:
        """Why the client assertion does not prove the app, or None."""
        from cryptography import x509
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding, rsa

        if self.certificate_pem is None:
            return "No certificate is registered for the app."
        certificate = x509.load_pem_x509_certificate(self.certificate_pem)
        try:
            head, body, signature = assertion.split(".")
            header, claims = json.loads(_unpad(head)), json.loads(_unpad(body))
        except ValueError:
            return "The client assertion is not a JWT."
        thumbprint = base64.urlsafe_b64encode(certificate.fingerprint(hashes.SHA1())).rstrip(b"=").decode()
        if header.get("alg") != "RS256" or header.get("x5t") != thumbprint:
            return f"AADSTS700027: no certificate with thumbprint {header.get('x5t')} is registered."
        public = certificate.public_key()
        assert isinstance(public, rsa.RSAPublicKey)
        try:
            public.verify(_unpad(signature), f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            return "AADSTS700027: the client assertion's signature does not verify."
        if claims.get("iss") != CLIENT_ID or claims.get("sub") != CLIENT_ID:
            return "AADSTS700016: the assertion names another application."
        if claims.get("aud") != self.token_url or float(claims.get("exp", 0)) < time.time():
            return "AADSTS700024: the assertion is expired or for another audience."
        return None

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


def _unpad(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def self_signed_certificate() -> tuple[bytes, bytes]:
    """(the PEM of a new RSA private key, the PEM of its self-signed certificate), as an operator
    makes with ``openssl req -x509`` for an Entra ID app."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "intaked")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    return key_pem, certificate.public_bytes(serialization.Encoding.PEM)
