"""The schema of mail intake: ``[smtp_intake]`` (the SMTP/LMTP listener), ``[[imap]]`` (the
mailboxes pulled from) and ``[intake]`` (how captured messages become tickets)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from intaked.config.fields import KEY_NAME, ListenAddress, Section, split_listen
from intaked.config.oauth2 import AuthMode, OAuth2Settings, check_auth


class SmtpIntakeSettings(Section):
    """``[smtp_intake]``: the SMTP/LMTP listener that receives mail for the helpdesk."""

    enabled: bool = True
    listen: ListenAddress = "127.0.0.1:2525"
    protocol: Literal["smtp", "lmtp"] = "smtp"
    recipients: list[str] = Field(default_factory=list)
    max_message_bytes: Annotated[int, Field(ge=1024)] = 25 * 1024 * 1024
    hostname: str = ""
    timeout_seconds: Annotated[float, Field(gt=0)] = 300.0
    # Sessions open at once; one more is answered 421 and closed (each session holds a descriptor).
    max_sessions: Annotated[int, Field(ge=1)] = 100

    @field_validator("recipients")
    @classmethod
    def _check_recipients(cls, value: list[str]) -> list[str]:
        for entry in value:
            if "@" not in entry or any(c.isspace() for c in entry):
                raise ValueError(f"{entry!r} is not an address or @domain")
        return [entry.strip().lower() for entry in value]

    @property
    def host_port(self) -> tuple[str, int]:
        return split_listen(self.listen)


class ImapMailboxSettings(Section):
    """One ``[[imap]]`` mailbox (or the single ``[imap]`` table): where to pull mail from."""

    name: Annotated[str, Field(pattern=KEY_NAME)] = "default"
    enabled: bool = True
    host: str
    port: Annotated[int, Field(ge=0, le=65535)] = 0
    tls: Literal["ssl", "starttls", "none"] = "ssl"
    tls_ca_file: str = ""
    username: str
    password: SecretStr = SecretStr("")
    auth: AuthMode = "password"
    oauth2: OAuth2Settings | None = None
    folder: str = "INBOX"
    processed_folder: str = "Processed"
    idle: bool = True
    idle_renew_seconds: Annotated[float, Field(gt=0, le=29 * 60)] = 25 * 60
    poll_seconds: Annotated[float, Field(gt=0)] = 60.0
    fetch_batch: Annotated[int, Field(ge=1, le=1000)] = 100
    timeout_seconds: Annotated[float, Field(gt=0)] = 60.0
    reconnect_max_seconds: Annotated[float, Field(gt=0)] = 300.0
    auth_retry_seconds: Annotated[float, Field(gt=0)] = 300.0
    # Several daemons on one database: the mailbox is pulled by one of them at a time, under a
    # lease of this many seconds renewed every third of it (intaked/store/leases.py).
    lease_seconds: Annotated[float, Field(ge=1, le=600)] = 15.0

    @model_validator(mode="after")
    def _oauth2_when_needed(self) -> ImapMailboxSettings:
        check_auth(self.auth, self.oauth2)
        return self

    @property
    def effective_port(self) -> int:
        """The configured port, else 993 for ``ssl`` and 143 otherwise."""
        if self.port:
            return self.port
        return 993 if self.tls == "ssl" else 143


class IntakeSettings(Section):
    """``[intake]``: how captured raw messages become tickets."""

    max_attempts: Annotated[int, Field(ge=1, le=100)] = 5
    batch_size: Annotated[int, Field(ge=1, le=1000)] = 100
    batch_max_bytes: Annotated[int, Field(ge=1)] = 32 * 1024 * 1024
    claim_timeout_seconds: Annotated[float, Field(gt=0)] = 600.0
    retry_base_seconds: Annotated[float, Field(gt=0)] = 5.0
    parse_workers: Annotated[int, Field(ge=0, le=32)] = 1
    parse_timeout_seconds: Annotated[float, Field(gt=0)] = 30.0
