"""An SMTP relay stand-in that speaks AUTH XOAUTH2 (as Exchange Online does): the initial response
``user=<user>^Aauth=Bearer <token>^A^A`` is decoded and the token checked with the token
endpoint stand-in's introspection; a refused token gets the error challenge, then 535."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult

from tests.support.smtpsink import SmtpSink
from tests.support.token_endpoint import TokenEndpoint


@dataclass
class Xoauth2Relay(SmtpSink):
    """``endpoint`` validates tokens; ``tokens`` records each token offered, in order."""

    endpoint: TokenEndpoint | None = None
    tokens: list[str] = field(default_factory=list)

    @property
    def offers_auth(self) -> bool:
        return True

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        if len(args) < 2:  # no initial response: ask for it
            blob = await server.challenge_auth("", encode_to_b64=False)
            if not isinstance(blob, bytes):
                return AuthResult(success=False)
            initial = blob
        else:
            initial = base64.b64decode(args[1])
        fields = dict(part.split("=", 1) for part in initial.decode().split("\x01") if "=" in part)
        user, token = fields.get("user", ""), fields.get("auth", "").removeprefix("Bearer ")
        with self._lock:
            self.tokens.append(token)
        assert self.endpoint is not None
        answer: dict[str, Any] = self.endpoint.introspect(token)
        if answer.get("active") and answer.get("username") == user:
            with self._lock:
                self.logins.append(user)
            return AuthResult(success=True)
        error = json.dumps(
            {"status": "401", "schemes": "bearer", "scope": "https://outlook.office365.com/.default"}
        )
        await server.challenge_auth(error)  # the client answers with an empty line
        return AuthResult(success=False, handled=False, message="535 5.7.3 Authentication unsuccessful")
