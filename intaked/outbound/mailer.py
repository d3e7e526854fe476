"""Sending mail through the configured relay (RFC 5321, STARTTLS RFC 3207, AUTH RFC 4954): the
SMTP implementation of the mail relay port (intaked/ports/mail.py).

Every outcome is classified with the port's failures: ``TemporaryFailure`` (4xx replies) is
retried later, and its subclass ``RelayUnavailable`` (refused or dropped connections, timeouts, a
relay that does not offer the STARTTLS we require or refuses our login, or an OAuth2 token
endpoint that refuses us or is out of reach, with ``auth = "xoauth2"``) says the relay itself is
out, not this message: the dispatcher then defers the whole batch and pauses;
``PermanentFailure`` (5xx replies) is not retried. STARTTLS, when configured, is required: intaked
never falls back to plaintext.
"""

from __future__ import annotations

import smtplib
import ssl
import time
from types import TracebackType

from intaked.config import OutboundMailSettings
from intaked.outbound.oauth2 import TokenRefused, TokenUnavailable, token_provider, with_token, xoauth2_string
from intaked.ports.mail import PermanentFailure, RelayUnavailable, TemporaryFailure

TRUST_SECONDS = 2.0  # a kept connection used this recently is used without a NOOP first


class _KeptConnectionGone(Exception):
    """The connection kept from an earlier mail was closed by the relay before this one began."""


def classify(code: int, text: str) -> Exception:
    return PermanentFailure(f"{code} {text}") if 500 <= code < 600 else TemporaryFailure(f"{code} {text}")


class SmtpMailer:
    """One connection to the relay, reused for a batch of messages (``with SmtpMailer(...) as m``)."""

    def __init__(self, settings: OutboundMailSettings) -> None:
        self._settings = settings
        self._client: smtplib.SMTP | None = None
        self._last_used = 0.0  # monotonic time of the last complete exchange with the relay

    def __enter__(self) -> SmtpMailer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _connect(self) -> smtplib.SMTP:
        cfg = self._settings
        try:
            client = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout_seconds)
            client.ehlo()
            if cfg.starttls:
                if not client.has_extn("starttls"):
                    client.close()
                    raise RelayUnavailable(
                        f"{cfg.host}:{cfg.port} does not offer STARTTLS; not sending in plaintext"
                    )
                client.starttls(context=ssl.create_default_context())
                client.ehlo()
            if cfg.username:
                self._login(client)
        except (TokenRefused, TokenUnavailable) as exc:
            client.close()
            raise RelayUnavailable(str(exc)) from None
        except smtplib.SMTPAuthenticationError as exc:
            raise RelayUnavailable(f"relay refused our login: {exc.smtp_code} {exc.smtp_error!r}") from None
        except smtplib.SMTPResponseException as exc:  # the greeting or EHLO refused: not this message's fault
            raise RelayUnavailable(f"relay refused the session: {exc.smtp_code} {exc.smtp_error!r}") from None
        except (TimeoutError, OSError, smtplib.SMTPException) as exc:
            raise RelayUnavailable(f"relay {cfg.host}:{cfg.port} unreachable: {exc}") from None
        return client

    def _login(self, client: smtplib.SMTP) -> None:
        """AUTH with the password, or AUTH XOAUTH2 with a token (renewed once if refused)."""
        cfg = self._settings
        if cfg.auth != "xoauth2" or cfg.oauth2 is None:
            client.login(cfg.username, cfg.password.get_secret_value())
            return

        def authenticate(token: str) -> None:
            # smtplib base64-encodes what the callback returns: the initial response, then an
            # empty answer to the error challenge (334) a refusing server sends first.
            client.auth(
                "XOAUTH2", lambda challenge=None: "" if challenge else xoauth2_string(cfg.username, token)
            )

        provider = token_provider(cfg.oauth2, "outbound_mail.oauth2")
        with_token(provider, authenticate, (smtplib.SMTPAuthenticationError,))

    def send(self, message: bytes, sender: str, recipient: str) -> str:
        """Send one message; returns the relay's reply (its queue id, usually).

        An address that is not ASCII (josé@example.com) is sent with SMTPUTF8 (RFC 6531); a relay
        that does not offer it refuses the message for good (:class:`PermanentFailure` saying so).

        A kept connection that the relay closed meanwhile is replaced once, at once: an idle
        timeout on the relay's side is no reason to delay a mail. (A connection used within the
        last few seconds is trusted without asking: a NOOP per mail would cost a round trip each.)
        """
        if self._client is not None and time.monotonic() - self._last_used > TRUST_SECONDS:
            try:
                status = self._client.noop()[0]
            except (OSError, smtplib.SMTPException):
                status = 0
            if status != 250:
                self.close()
        kept = self._client is not None
        if self._client is None:
            self._client = self._connect()
        try:
            return self._transaction(self._client, message, sender, recipient, kept=kept)
        except _KeptConnectionGone:
            self.close()
        self._client = self._connect()  # the relay dropped the connection we kept: once more, afresh
        return self._transaction(self._client, message, sender, recipient, kept=False)

    def _transaction(
        self, client: smtplib.SMTP, message: bytes, sender: str, recipient: str, *, kept: bool
    ) -> str:
        try:
            options: list[str] = []
            if not (sender + recipient).isascii():
                if not client.has_extn("smtputf8"):
                    cfg = self._settings
                    raise PermanentFailure(
                        f"the relay {cfg.host}:{cfg.port} does not offer SMTPUTF8, which the address "
                        f"{recipient if not recipient.isascii() else sender} needs (RFC 6531); not sent"
                    )
                options.append("SMTPUTF8")
            try:
                code, reply = client.mail(sender, options)
            except (OSError, smtplib.SMTPServerDisconnected) as exc:
                if kept:
                    raise _KeptConnectionGone(str(exc)) from None
                raise
            if code != 250:
                raise classify(code, reply.decode("utf-8", "replace"))
            code, reply = client.rcpt(recipient)
            if code not in (250, 251):
                client.rset()
                raise classify(code, reply.decode("utf-8", "replace"))
            code, reply = client.data(message)
            self._last_used = time.monotonic()
            if code != 250:
                raise classify(code, reply.decode("utf-8", "replace"))
            return reply.decode("utf-8", "replace")
        except (TemporaryFailure, PermanentFailure, _KeptConnectionGone):
            raise
        except smtplib.SMTPResponseException as exc:
            self.close()
            raise classify(exc.smtp_code, repr(exc.smtp_error)) from None
        except (OSError, smtplib.SMTPException) as exc:
            self.close()
            raise RelayUnavailable(f"connection to the relay failed: {exc}") from None

    def close(self) -> None:
        if self._client is not None:
            try:
                self._client.quit()
            except (OSError, smtplib.SMTPException):
                self._client.close()
            self._client = None
