"""OAuth2 access tokens by the client-credentials flow (Microsoft 365 / Exchange Online), for the
IMAP channel's XOAUTH2 login and the relay's SMTP AUTH XOAUTH2.

Built on authlib (its requests client) rather than msal: authlib posts to the configured
``token_url`` and nothing else, so the endpoint is one key an operator (or a test's local
stand-in) sets, while msal derives every endpoint from an https authority's OpenID discovery.
Caching is ours and small: a token is kept until a renewal margin before it expires (five
minutes, or half its lifetime when that is shorter), and one the server refused is dropped
(:func:`with_token` then fetches a new one and tries once more).

A refused token request raises :class:`TokenRefused` naming the config key (e.g.
``imap[0].oauth2.client_secret refused by the token endpoint: invalid_client``); the secret is
never part of a message. An endpoint out of reach raises :class:`TokenUnavailable`.

It sits in ``outbound/`` (row 8), the lowest layer both users import: ``channels/`` lies above it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import requests
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT

from intaked.config import OAuth2Settings

#: Renew this long before the token expires, at the most (half the lifetime for short-lived ones).
RENEW_MARGIN_SECONDS = 300.0
#: Which key an OAuth2 error code points at; others name the ``oauth2`` table itself.
_ERROR_KEYS = {
    "invalid_client": "client_secret",
    "unauthorized_client": "client_id",
    "invalid_scope": "scope",
}
_CERTIFICATE_ERROR_KEYS = {**_ERROR_KEYS, "invalid_client": "certificate_file"}

T = TypeVar("T")


class TokenRefused(Exception):
    """The token endpoint refused our request (a wrong secret or client id, a scope not granted)."""


class TokenUnavailable(Exception):
    """The token endpoint could not be reached or did not answer with a token."""


@dataclass(frozen=True)
class AccessToken:
    value: str
    renew_at: float  # time.monotonic() after which a new one is fetched
    fresh: bool = True  # fetched for this use, not taken from the cache


class TokenProvider:
    """Tokens for one ``oauth2`` table; ``key`` is where it is configured (``imap[0].oauth2``)."""

    def __init__(self, settings: OAuth2Settings, key: str, *, timeout: float = 30.0) -> None:
        self.settings = settings
        self.key = key
        self.timeout = timeout
        self._lock = threading.Lock()
        self._cached: AccessToken | None = None

    def get(self) -> AccessToken:
        """The cached token while it is not due for renewal, else a new one."""
        with self._lock:
            cached = self._cached
            if cached is not None and time.monotonic() < cached.renew_at:
                return AccessToken(cached.value, cached.renew_at, fresh=False)
            self._cached = self._fetch()
            return self._cached

    def drop(self, token: str) -> None:
        """Forget ``token`` (the server refused it) unless a newer one replaced it meanwhile."""
        with self._lock:
            if self._cached is not None and self._cached.value == token:
                self._cached = None

    def _fetch(self) -> AccessToken:
        cfg = self.settings
        secret = cfg.client_secret.get_secret_value()
        session = self._session(secret)
        started = time.monotonic()
        try:
            token = session.fetch_token(
                cfg.effective_token_url,
                grant_type="client_credentials",
                scope=cfg.scope,
                timeout=self.timeout,
            )
        except AuthlibBaseError as exc:  # the OAuth2 error answer (OAuthError)
            raise TokenRefused(self._refusal(exc.error, exc.description, secret)) from None
        except (requests.RequestException, ValueError) as exc:
            reason = _without(str(exc), secret)
            raise TokenUnavailable(f"{self.key}.token_url {cfg.effective_token_url}: {reason}") from None
        finally:
            session.close()
        value = token.get("access_token")
        if not isinstance(value, str) or not value:
            raise TokenUnavailable(
                f"{self.key}.token_url {cfg.effective_token_url}: no access_token in the answer"
            )
        lifetime = float(token.get("expires_in") or 3600)
        margin = min(RENEW_MARGIN_SECONDS, lifetime / 2)
        return AccessToken(value, started + lifetime - margin)

    def _session(self, secret: str) -> OAuth2Session:
        """A session that proves who we are by the secret (``client_secret_post``) or by a
        client assertion signed with the certificate's key (``private_key_jwt``, RS256, the
        certificate named by its thumbprint in ``x5t``)."""
        cfg = self.settings
        try:
            certificate = cfg.certificate()
        except ValueError as exc:  # the file changed since the configuration was read
            raise TokenUnavailable(f"{self.key}.{exc}") from None
        if certificate is None:
            return OAuth2Session(cfg.client_id, secret, token_endpoint_auth_method="client_secret_post")
        session = OAuth2Session(
            cfg.client_id,
            certificate.private_key_pem.decode("ascii"),
            token_endpoint_auth_method="private_key_jwt",
        )
        session.register_client_auth_method(
            PrivateKeyJWT(cfg.effective_token_url, headers={"x5t": certificate.thumbprint}, alg="RS256")
        )
        return session

    def _refusal(self, error: str | None, description: str | None, secret: str) -> str:
        code = error or "error"
        keys = _ERROR_KEYS if not self.settings.certificate_file else _CERTIFICATE_ERROR_KEYS
        message = f"{self.key}.{keys.get(code, '')}".rstrip(".")
        message += f" refused by the token endpoint: {code}"
        if description:
            message += f" ({_without(description, secret)[:300]})"
        return message


def _without(text: str, secret: str) -> str:
    """``text`` with ``secret`` blanked out, should an endpoint or library echo it."""
    return text.replace(secret, "********") if secret else text


def with_token(provider: TokenProvider, use: Callable[[str], T], refused: tuple[type[Exception], ...]) -> T:
    """``use(token)``; when the server refuses a cached token (``refused``), drop it, fetch a new
    one and try once more. A freshly fetched token that is refused is not retried."""
    token = provider.get()
    try:
        return use(token.value)
    except refused:
        if token.fresh:
            raise
        provider.drop(token.value)
    return use(provider.get().value)


_PROVIDERS: dict[tuple[str, OAuth2Settings], TokenProvider] = {}
_PROVIDERS_LOCK = threading.Lock()


def token_provider(settings: OAuth2Settings, key: str) -> TokenProvider:
    """The process's one provider for these settings, so its cache outlives a connection."""
    with _PROVIDERS_LOCK:
        return _PROVIDERS.setdefault((key, settings), TokenProvider(settings, key))


def xoauth2_string(user: str, token: str) -> str:
    """The XOAUTH2 initial client response (before base64): ``user=..^Aauth=Bearer ..^A^A``."""
    return f"user={user}\x01auth=Bearer {token}\x01\x01"
