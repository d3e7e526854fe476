"""The schema of the phone side: ``[twilio]`` (the account), ``[webhooks]`` (the HTTP listener
Twilio calls back) and ``[hotline]`` (the IT hotline's numbers, menu and limits)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from intaked.config.fields import (
    E164,
    KEY_NAME,
    Duration,
    E164Number,
    NonBlank,
    NoTrailingSlash,
    Section,
    checked_by,
    e164_number,
    full_match,
    mail_address,
    matching,
    split_listen,
)

# The strings the phone side checks; a refused one is "'<value>' is not <the description>". Empty
# means "not set" unless ``optional=False``.
AccountSid = Annotated[str, matching(r"AC[0-9a-fA-F]{32}", "an Account Sid (AC followed by 32 hex digits)")]
PhoneNumber = Annotated[str, matching(E164.pattern, "an E.164 number such as +886212345678")]
TwilioBaseUrl = Annotated[
    str,
    matching(r"https?://[^/\s]+/?", "a base URL such as https://api.twilio.com", optional=False),
    NoTrailingSlash,
]
PublicBaseUrl = Annotated[
    str,
    matching(r"https?://[^/\s?#]+(/[^\s?#]*)?", "a base URL such as https://intaked.example.com"),
    NoTrailingSlash,
]
RecordingUrl = Annotated[str, matching(r"https?://\S+", "an http(s) URL of a recording")]
_caller_id_prefix = full_match(r"\+[0-9]{1,14}", "a caller-id prefix such as +8869")


class TwilioSettings(Section):
    """``[twilio]``: the account SMS and voice pages go through; paging is off while
    ``account_sid`` is empty."""

    account_sid: AccountSid = ""
    auth_token: SecretStr = SecretStr("")
    previous_auth_token: SecretStr = SecretStr("")
    from_number: PhoneNumber = ""
    api_base_url: TwilioBaseUrl = "https://api.twilio.com"
    calls_per_second: Annotated[float, Field(gt=0, le=100)] = 1.0
    timeout_seconds: Annotated[float, Field(gt=0, le=120)] = 10.0
    machine_detection: Literal["Enable", "DetectMessageEnd", ""] = "Enable"
    voice_zh: str = "Google.cmn-TW-Standard-A"
    language_zh: str = "cmn-TW"
    voice_en: str = "Polly.Joanna"
    language_en: str = "en-US"
    # Voicemail (intaked/hotline/recordings.py): the media format downloaded, its size limit, and
    # how many times a recording Twilio does not have yet (404 right after completion) is asked for.
    recording_format: Literal["wav", "mp3"] = "wav"
    recording_max_bytes: Annotated[int, Field(ge=1024, le=512 * 1024 * 1024)] = 50 * 1024 * 1024
    recording_not_found_retries: Annotated[int, Field(ge=0, le=50)] = 5

    @model_validator(mode="after")
    def _complete_when_enabled(self) -> TwilioSettings:
        if self.account_sid:
            if not self.auth_token.get_secret_value():
                raise ValueError("auth_token is required when account_sid is set")
            if not self.from_number:
                raise ValueError("from_number is required when account_sid is set")
        return self

    @property
    def enabled(self) -> bool:
        """Paging by SMS and voice is on."""
        return bool(self.account_sid)


class WebhookSettings(Section):
    """``[webhooks]``: the HTTP listener Twilio calls back (status callbacks, replies, keypresses)."""

    listen: Annotated[str, checked_by(split_listen, optional=True)] = "127.0.0.1:8088"  # "": no listener
    public_url: PublicBaseUrl = ""
    max_body_bytes: Annotated[int, Field(ge=1024, le=10 * 1024 * 1024)] = 64 * 1024
    # Connections open at once (each holds a descriptor); see intaked/channels/webhook_connections.py.
    max_connections: Annotated[int, Field(ge=1)] = 256
    header_timeout_seconds: Annotated[float, Field(gt=0)] = 10.0
    body_timeout_seconds: Annotated[float, Field(gt=0)] = 10.0
    keepalive_timeout_seconds: Annotated[float, Field(gt=0)] = 15.0

    @property
    def host_port(self) -> tuple[str, int]:
        return split_listen(self.listen)


DEFAULT_GREETING_ZH = (
    "您好，這裡是 IT 服務台專線。產線停工或全公司系統中斷，請按 1。"
    "其他 IT 問題，請按 2。資訊安全事件，請按 3。"
)
DEFAULT_GREETING_EN = (
    "Hello, this is the IT service desk. If a production line or a company-wide system is down, "
    "press 1. For any other IT problem, press 2. For an information security incident, press 3."
)


class HotlineSettings(Section):
    """``[hotline]``: the IT hotline answered through Twilio; every call files or joins a ticket
    (intaked/hotline/). Off while ``numbers`` is empty (and while ``[twilio]`` is off)."""

    numbers: list[E164Number] = Field(default_factory=list)
    greeting_zh: NonBlank = DEFAULT_GREETING_ZH
    greeting_en: NonBlank = DEFAULT_GREETING_EN
    greeting_url: RecordingUrl = ""
    menu_seconds: Annotated[int, Field(ge=3, le=60)] = 8
    speech_language: str = "zh-TW"
    repeat_window: Duration = "30m"
    record_max_seconds: Annotated[int, Field(ge=5, le=14400)] = 120
    desk_number: str = ""
    desk_dial_seconds: Annotated[int, Field(ge=5, le=600)] = 20
    desk_calendar: str = ""  # "" = sla.calendar
    sms_ack_prefixes: list[str] = Field(default_factory=lambda: ["+8869"])
    security_team: Annotated[str, Field(pattern=KEY_NAME)] = "security"
    security_notify: str = ""
    reconcile_interval: Duration = "5m"
    emergency_window: Duration = "15m"
    max_unconfirmed_emergency_pages: Annotated[int, Field(ge=1, le=100)] = 3

    @field_validator("desk_number")
    @classmethod
    def _check_desk_number(cls, value: str) -> str:
        return e164_number(value) if value else value

    @field_validator("sms_ack_prefixes")
    @classmethod
    def _check_prefixes(cls, value: list[str]) -> list[str]:
        for prefix in value:
            _caller_id_prefix(prefix)
        return value

    @field_validator("security_notify")
    @classmethod
    def _check_security_notify(cls, value: str) -> str:
        return mail_address(value) if value.strip() else ""

    @property
    def enabled(self) -> bool:
        """Calls to the hotline numbers are answered (with ``[twilio]`` on)."""
        return bool(self.numbers)
