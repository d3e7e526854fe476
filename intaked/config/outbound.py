"""The schema of what goes out: ``[outbound_mail]`` (the relay), ``[outbox]`` (sending and
retrying queued side effects) and ``[acknowledgements]`` (the mail a new ticket's requester gets)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator, model_validator

from intaked.config.addresses import SenderAddress, parse_sender
from intaked.config.fields import Section, TimeZoneName, checked_by
from intaked.config.oauth2 import AuthMode, OAuth2Settings, check_auth


class OutboundMailSettings(Section):
    """``[outbound_mail]``: the relay used for acknowledgements and notices."""

    host: str = "localhost"
    port: Annotated[int, Field(ge=1, le=65535)] = 25
    starttls: bool = False
    username: str = ""
    password: SecretStr = SecretStr("")
    auth: AuthMode = "password"  # "xoauth2": AUTH XOAUTH2 as ``username`` with a token (Microsoft 365)
    oauth2: OAuth2Settings | None = None
    # AUTH over a connection without TLS sends the password readable to anyone on the path.
    allow_plaintext_auth: bool = False
    from_address: Annotated[str, checked_by(parse_sender)] = (
        "helpdesk@localhost"  # "helpdesk@example.com" or "IT 服務台 <helpdesk@example.com>"
    )
    timeout_seconds: Annotated[float, Field(gt=0)] = 30.0

    @model_validator(mode="after")
    def _oauth2_when_needed(self) -> OutboundMailSettings:
        check_auth(self.auth, self.oauth2)
        if self.auth == "xoauth2" and not self.username:
            raise ValueError('auth = "xoauth2" needs username (the mailbox the relay sends as)')
        return self

    @property
    def sender(self) -> SenderAddress:
        """``from_address`` parsed: the bare address, its domain, the display name."""
        return parse_sender(self.from_address)


class OutboxSettings(Section):
    """``[outbox]``: how queued side effects are sent and retried."""

    poll_seconds: Annotated[float, Field(gt=0)] = 5.0
    batch_size: Annotated[int, Field(ge=1, le=1000)] = 50
    senders: Annotated[int, Field(ge=1, le=16)] = 2
    retry_base_seconds: Annotated[float, Field(gt=0)] = 10.0
    retry_max_seconds: Annotated[float, Field(gt=0)] = 1800.0
    give_up_after_seconds: Annotated[float, Field(gt=0)] = 2 * 24 * 3600.0
    claim_timeout_seconds: Annotated[float, Field(gt=0)] = 300.0


class AcknowledgementSettings(Section):
    """``[acknowledgements]``: the mail every new ticket's requester gets, and when they do not."""

    enabled: bool = True
    max_per_sender_per_hour: Annotated[int, Field(ge=0)] = 10
    notify_on_reply: bool = False
    templates_dir: str = ""
    timezone: TimeZoneName = "Asia/Taipei"
    our_addresses: list[str] = Field(default_factory=list)

    @field_validator("templates_dir")
    @classmethod
    def _check_templates_dir(cls, value: str) -> str:
        if value and not Path(value).is_dir():
            raise ValueError(f"{value!r} is not a directory")
        return value
