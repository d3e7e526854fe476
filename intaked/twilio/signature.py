"""Twilio's request signature (``X-Twilio-Signature``), checked with twilio-python's
``RequestValidator`` under the current and the previous auth token (rotation).

The signature is base64(HMAC-SHA1(auth token, URL + every parameter's key and value, keys
sorted, each key's distinct values sorted)); the validator also accepts the URL with its
scheme's default port added or removed, as Twilio signs either. Every token is tried, with no
early exit, so a request costs the same work whichever token (if any) signed it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from multidict import MultiDict
from twilio.request_validator import RequestValidator

from intaked.config import TwilioSettings

SIGNATURE_HEADER = "X-Twilio-Signature"


def _form(params: Sequence[tuple[str, str]]) -> MultiDict[str]:
    """The form's pairs, repeated keys kept (the validator signs each value of a key)."""
    return MultiDict(params)


def compute_signature(url: str, params: Sequence[tuple[str, str]], token: str) -> str:
    """Twilio's X-Twilio-Signature of a form POST to ``url``."""
    return str(RequestValidator(token).compute_signature(url, _form(params)))


def signature_valid(
    url: str, params: Sequence[tuple[str, str]], signature: str | None, tokens: Sequence[str]
) -> bool:
    """Whether ``signature`` is Twilio's for ``url`` and ``params`` under any of ``tokens``."""
    return SignatureCheck(tuple(RequestValidator(token) for token in tokens if token)).valid(
        url, params, signature
    )


@dataclass(frozen=True, slots=True)
class SignatureCheck:
    """The validators of the configured tokens."""

    validators: tuple[RequestValidator, ...]

    @classmethod
    def from_settings(cls, twilio: TwilioSettings) -> SignatureCheck:
        tokens = (twilio.auth_token.get_secret_value(), twilio.previous_auth_token.get_secret_value())
        return cls(tuple(RequestValidator(token) for token in tokens if token))

    def valid(self, url: str, params: Sequence[tuple[str, str]], signature: str | None) -> bool:
        """Whether ``signature`` is Twilio's for ``url`` and ``params`` under any token."""
        if not signature:
            return False
        form = _form(params)
        results = [bool(validator.validate(url, form, signature)) for validator in self.validators]
        return any(results)
