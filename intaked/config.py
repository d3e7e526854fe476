"""intaked's configuration: one validated schema, one TOML file, secrets from the environment.

Where the file comes from, first found wins: ``--config PATH``, ``$INTAKED_CONFIG``,
``/etc/intaked/intaked.toml``, else the built-in defaults (an embedded SQLite database and an SMTP
listener on 127.0.0.1:2525). Unknown keys are errors; every error names the key and the reason.

Secrets (the keys in :data:`SECRET_KEYS`, and each IMAP mailbox's password) may instead come from
systemd credentials (``$CREDENTIALS_DIRECTORY/<key>``, e.g. ``outbound_mail.password`` or
``imap.helpdesk.password``) or from the environment (``INTAKED_<SECTION>__<KEY>``, e.g.
``INTAKED_OUTBOUND_MAIL__PASSWORD``, ``INTAKED_IMAP__HELPDESK__PASSWORD``); the environment beats
a credential, which beats the file. With a single mailbox, ``imap.password`` /
``INTAKED_IMAP__PASSWORD`` work too.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import tomllib
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from intaked.sender_address import SenderAddress, parse_sender

DEFAULT_CONFIG_PATH = Path("/etc/intaked/intaked.toml")
ENV_CONFIG_PATH = "INTAKED_CONFIG"

#: Keys whose values may come from a credential file or an environment variable.
SECRET_KEYS: tuple[str, ...] = (
    "database.url",
    "outbound_mail.password",
    "twilio.auth_token",
    "twilio.previous_auth_token",
)


class ConfigError(Exception):
    """The configuration is unusable; the message names the key and the reason."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


def _split_listen(value: str) -> tuple[str, int]:
    """Split ``host:port`` (``[v6]:port`` for IPv6) into its parts, raising ValueError on anything else."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ValueError(f'expected "host:port", got {value!r}')
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    port = int(port_text)
    if not 0 <= port < 65536:
        raise ValueError(f"port {port} is out of range 0-65535 (0 picks a free port)")
    return host, port


def _time_zone(value: str) -> str:
    """``value`` if it names an IANA time zone, else a ValueError naming it."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r}") from None
    return value


#: An IANA time zone name, checked when the configuration is read.
TimeZoneName = Annotated[str, AfterValidator(_time_zone)]


class DatabaseSettings(_Section):
    """``[database]``: where the ticket store lives."""

    url: str = Field(default="", description="SQLAlchemy URL; empty means the embedded SQLite file")
    auto_migrate: bool = True
    sqlite_busy_timeout_ms: Annotated[int, Field(ge=0, le=600_000)] = 5000
    pool_size: Annotated[int, Field(ge=1, le=100)] = 5

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if not value:
            return value
        try:
            url = make_url(value)
        except ArgumentError as exc:
            raise ValueError(f"not a database URL: {exc}") from None
        backend = url.get_backend_name()
        if backend not in ("sqlite", "postgresql"):
            raise ValueError(f"unsupported database {backend!r}: use sqlite or postgresql")
        return value


class SmtpIntakeSettings(_Section):
    """``[smtp_intake]``: the SMTP/LMTP listener that receives mail for the helpdesk."""

    enabled: bool = True
    listen: str = "127.0.0.1:2525"
    protocol: Literal["smtp", "lmtp"] = "smtp"
    recipients: list[str] = Field(default_factory=list)
    max_message_bytes: Annotated[int, Field(ge=1024)] = 25 * 1024 * 1024
    hostname: str = ""
    timeout_seconds: Annotated[float, Field(gt=0)] = 300.0
    # Sessions open at once; one more is answered 421 and closed (each session holds a descriptor).
    max_sessions: Annotated[int, Field(ge=1)] = 100

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        _split_listen(value)
        return value

    @field_validator("recipients")
    @classmethod
    def _check_recipients(cls, value: list[str]) -> list[str]:
        for entry in value:
            if "@" not in entry or any(c.isspace() for c in entry):
                raise ValueError(f"{entry!r} is not an address or @domain")
        return [entry.strip().lower() for entry in value]

    @property
    def host_port(self) -> tuple[str, int]:
        return _split_listen(self.listen)


class OutboundMailSettings(_Section):
    """``[outbound_mail]``: the relay used for acknowledgements and notices."""

    host: str = "localhost"
    port: Annotated[int, Field(ge=1, le=65535)] = 25
    starttls: bool = False
    username: str = ""
    password: SecretStr = SecretStr("")
    # AUTH over a connection without TLS sends the password readable to anyone on the path.
    allow_plaintext_auth: bool = False
    from_address: str = "helpdesk@localhost"  # "helpdesk@example.com" or "IT 服務台 <helpdesk@example.com>"
    timeout_seconds: Annotated[float, Field(gt=0)] = 30.0

    @field_validator("from_address")
    @classmethod
    def _check_from(cls, value: str) -> str:
        parse_sender(value)
        return value

    @property
    def sender(self) -> SenderAddress:
        """``from_address`` parsed: the bare address, its domain, the display name."""
        return parse_sender(self.from_address)


class ImapMailboxSettings(_Section):
    """One ``[[imap]]`` mailbox (or the single ``[imap]`` table): where to pull mail from."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")] = "default"
    enabled: bool = True
    host: str
    port: Annotated[int, Field(ge=0, le=65535)] = 0
    tls: Literal["ssl", "starttls", "none"] = "ssl"
    tls_ca_file: str = ""
    username: str
    password: SecretStr = SecretStr("")
    folder: str = "INBOX"
    processed_folder: str = "Processed"
    idle: bool = True
    idle_renew_seconds: Annotated[float, Field(gt=0, le=29 * 60)] = 25 * 60
    poll_seconds: Annotated[float, Field(gt=0)] = 60.0
    fetch_batch: Annotated[int, Field(ge=1, le=1000)] = 100
    timeout_seconds: Annotated[float, Field(gt=0)] = 60.0
    reconnect_max_seconds: Annotated[float, Field(gt=0)] = 300.0
    auth_retry_seconds: Annotated[float, Field(gt=0)] = 300.0

    @property
    def effective_port(self) -> int:
        """The configured port, else 993 for ``ssl`` and 143 otherwise."""
        if self.port:
            return self.port
        return 993 if self.tls == "ssl" else 143


class AcknowledgementSettings(_Section):
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


class OutboxSettings(_Section):
    """``[outbox]``: how queued side effects are sent and retried."""

    poll_seconds: Annotated[float, Field(gt=0)] = 5.0
    batch_size: Annotated[int, Field(ge=1, le=1000)] = 50
    senders: Annotated[int, Field(ge=1, le=16)] = 2
    retry_base_seconds: Annotated[float, Field(gt=0)] = 10.0
    retry_max_seconds: Annotated[float, Field(gt=0)] = 1800.0
    give_up_after_seconds: Annotated[float, Field(gt=0)] = 2 * 24 * 3600.0
    claim_timeout_seconds: Annotated[float, Field(gt=0)] = 300.0


class TicketSettings(_Section):
    """``[tickets]``: how tickets are numbered."""

    number_prefix: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9]{0,15}$")] = "IT"
    timezone: TimeZoneName = "Asia/Taipei"


class IntakeSettings(_Section):
    """``[intake]``: how captured raw messages become tickets."""

    max_attempts: Annotated[int, Field(ge=1, le=100)] = 5
    batch_size: Annotated[int, Field(ge=1, le=1000)] = 100
    batch_max_bytes: Annotated[int, Field(ge=1)] = 32 * 1024 * 1024
    claim_timeout_seconds: Annotated[float, Field(gt=0)] = 600.0
    retry_base_seconds: Annotated[float, Field(gt=0)] = 5.0
    parse_workers: Annotated[int, Field(ge=0, le=32)] = 1
    parse_timeout_seconds: Annotated[float, Field(gt=0)] = 30.0


def _duration(value: str) -> str:
    """``value`` if it is a duration such as "15m", "4h" or "3 working days", else a ValueError."""
    from intaked.sla.targets import parse_duration

    parse_duration(value)
    return value


Duration = Annotated[str, AfterValidator(_duration)]
_HOURS = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")


def _iso_day(value: str) -> str:
    import datetime as dt

    try:
        dt.date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a date (YYYY-MM-DD)") from None
    return value


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def _monday_to_friday() -> list[Weekday]:
    return ["mon", "tue", "wed", "thu", "fri"]


class CalendarSettings(_Section):
    """``[calendars.<name>]``: when the working clock runs."""

    timezone: TimeZoneName = "Asia/Taipei"
    working_days: list[Weekday] = Field(default_factory=_monday_to_friday)
    hours: list[str] = Field(default_factory=lambda: ["08:30-12:00", "13:00-17:30"])
    country: str = "TW"
    subdivision: str = ""
    day_length: str = ""  # "" = the sum of the hours
    extra_holidays: dict[Annotated[str, AfterValidator(_iso_day)], str] = Field(default_factory=dict)
    extra_workdays: dict[Annotated[str, AfterValidator(_iso_day)], str] = Field(default_factory=dict)

    @field_validator("hours")
    @classmethod
    def _check_hours(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError('at least one working period is needed, e.g. "08:30-17:30"')
        previous = ""
        for period in value:
            if not _HOURS.match(period):
                raise ValueError(f'{period!r} is not a working period like "08:30-12:00"')
            start, end = period.split("-")
            if end <= start or start < previous:
                raise ValueError(f"{period!r}: periods must be in order and end after they start")
            previous = end
        return value

    @field_validator("day_length")
    @classmethod
    def _check_day_length(cls, value: str) -> str:
        return _duration(value) if value else value


class TargetSettings(_Section):
    """``[sla.P1]`` .. ``[sla.P4]``: the response and resolution targets of one priority."""

    response: Duration
    response_clock: Literal["24x7", "working"]
    resolution: Duration
    resolution_clock: Literal["24x7", "working"]


def _default_targets() -> dict[str, TargetSettings]:
    return {
        "P1": TargetSettings(response="15m", response_clock="24x7", resolution="4h", resolution_clock="24x7"),
        "P2": TargetSettings(
            response="1h", response_clock="24x7", resolution="8h", resolution_clock="working"
        ),
        "P3": TargetSettings(
            response="4h", response_clock="working", resolution="3d", resolution_clock="working"
        ),
        "P4": TargetSettings(
            response="8h", response_clock="working", resolution="5d", resolution_clock="working"
        ),
    }


class SlaSettings(_Section):
    """``[sla]``: the promises per priority, when to warn, and how often to look."""

    calendar: str = "default"
    warn_at: Annotated[float, Field(gt=0, lt=1)] = 0.75
    pending_pauses_resolution: bool = True
    check_seconds: Annotated[float, Field(gt=0)] = 5.0
    P1: TargetSettings = Field(default_factory=lambda: _default_targets()["P1"])
    P2: TargetSettings = Field(default_factory=lambda: _default_targets()["P2"])
    P3: TargetSettings = Field(default_factory=lambda: _default_targets()["P3"])
    P4: TargetSettings = Field(default_factory=lambda: _default_targets()["P4"])


#: Categories a routing rule may set (``tickets.category``).
Category = Literal["incident", "service_request", "security_incident"]
#: Priorities a routing rule may suggest (``tickets.suggested_priority``).
SuggestedPriority = Literal["P1", "P2", "P3", "P4"]


def _one_or_many(value: Any) -> Any:
    """A single string where a list is expected means a list of one."""
    return [value] if isinstance(value, str) else value


def _regular_expression(value: str) -> str:
    """``value`` if it compiles as a Python regular expression, else a ValueError saying why."""
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from None
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value.strip()


def _domain(value: str) -> str:
    value = value.strip().lower().removeprefix("@")
    if not value or "@" in value or any(c.isspace() for c in value):
        raise ValueError(f"{value!r} is not a domain name")
    return value


def _address(value: str) -> str:
    value = value.strip().lower()
    if "@" not in value or any(c.isspace() for c in value):
        raise ValueError(f"{value!r} is not an e-mail address")
    return value


NonBlank = Annotated[str, AfterValidator(_not_blank)]
RegularExpression = Annotated[str, AfterValidator(_regular_expression)]
DomainName = Annotated[str, AfterValidator(_domain)]
MailAddress = Annotated[str, AfterValidator(_address)]
_ROUTING_CONDITIONS = (
    "channel",
    "recipient",
    "hotline_choice",
    "sender",
    "sender_domain",
    "department",
    "site",
    "keywords",
    "patterns",
)
_ROUTING_ACTIONS = ("category", "team", "suggested_priority")


class RoutingRuleSettings(_Section):
    """One ``[[routing.rules]]`` table: conditions (all given ones must hold; a list means any of
    its entries) and the fields it sets (intaked/routing/rules.py)."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    channel: list[NonBlank] = Field(default_factory=list)
    recipient: list[MailAddress] = Field(default_factory=list)
    hotline_choice: list[NonBlank] = Field(default_factory=list)
    sender: list[MailAddress] = Field(default_factory=list)
    sender_domain: list[DomainName] = Field(default_factory=list)
    department: list[NonBlank] = Field(default_factory=list)
    site: list[NonBlank] = Field(default_factory=list)
    keywords: list[NonBlank] = Field(default_factory=list)
    patterns: list[RegularExpression] = Field(default_factory=list)
    subject_only: bool = False
    category: Category | None = None
    team: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")] | None = None
    suggested_priority: SuggestedPriority | None = None

    @field_validator(*_ROUTING_CONDITIONS, mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return _one_or_many(value)

    @field_validator("channel")
    @classmethod
    def _lower_channels(cls, value: list[str]) -> list[str]:
        return [entry.lower() for entry in value]

    @model_validator(mode="after")
    def _has_condition_and_action(self) -> RoutingRuleSettings:
        if not any(getattr(self, key) for key in _ROUTING_CONDITIONS):
            raise ValueError(
                f"rule {self.name!r} has no condition: give at least one of " + ", ".join(_ROUTING_CONDITIONS)
            )
        if all(getattr(self, key) is None for key in _ROUTING_ACTIONS):
            raise ValueError(
                f"rule {self.name!r} sets nothing: give at least one of " + ", ".join(_ROUTING_ACTIONS)
            )
        return self


class RoutingSettings(_Section):
    """``[routing]``: the routing rules, in order; for each field the first matching rule that
    sets it wins. No rules: nothing is routed."""

    rules: list[RoutingRuleSettings] = Field(default_factory=list)

    @field_validator("rules")
    @classmethod
    def _unique_rule_names(cls, value: list[RoutingRuleSettings]) -> list[RoutingRuleSettings]:
        names = [rule.name for rule in value]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"rule name {name!r} is used twice: give each rule its own name")
        return value


class DirectorySettings(_Section):
    """``[directory]``: the employee directory CSV that enriches requesters (intaked/routing/directory.py)."""

    path: str = ""
    reload_seconds: Annotated[float, Field(ge=0)] = 30.0
    country_code: Annotated[str, Field(pattern=r"^[1-9]\d{0,2}$")] = "886"


class SpamRuleSettings(_Section):
    """One ``[[trust.spam.rules]]`` table: a header field our MTA's spam filter writes, and when
    it means spam (intaked/routing/spam.py). The rule matches when ``pattern`` is found in the
    field's value (case-insensitive) and, with ``score_at_least``, the score is at least that: the
    score is the pattern's ``(?P<score>...)`` group, else the first number in the value."""

    header: str
    pattern: RegularExpression = "."
    score_at_least: float | None = None

    @field_validator("header")
    @classmethod
    def _spam_field_name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9-]+", value) or "spam" not in value.lower():
            raise ValueError(
                f"{value!r} is not the name of a spam filter's header field (letters, digits and"
                ' "-", containing "spam", e.g. X-Spam-Flag or X-Rspamd-Score)'
            )
        return value


#: SpamAssassin's verdict fields (also written by Amavis, MailScanner and others).
DEFAULT_SPAM_RULES: tuple[dict[str, Any], ...] = (
    {"header": "X-Spam-Flag", "pattern": r"^\s*yes\b"},
    {"header": "X-Spam-Status", "pattern": r"^\s*yes\b"},
)


class SpamSettings(_Section):
    """``[trust.spam]``: which header fields written by our MTA mark mail as spam. Spam is stored
    as a ticket in status ``spam``: no acknowledgement, no deadlines, no paging, never threaded
    into another ticket, until a person releases it. Only fields whose name contains "spam" are
    read (``X-Spam-*``, ``X-Spamd-Result``, ``X-Rspamd-*``, ``X-Microsoft-Antispam``...)."""

    enabled: bool = True
    rules: list[SpamRuleSettings] = Field(
        default_factory=lambda: [SpamRuleSettings(**rule) for rule in DEFAULT_SPAM_RULES]
    )


class TrustSettings(_Section):
    """``[trust]``: which suggestions are trusted enough to page before a person looks
    (intaked/routing/trust.py)."""

    internal_domains: list[DomainName] = Field(default_factory=list)
    authserv_id: str = ""
    authserv_fields: Annotated[int, Field(ge=1, le=10)] = 1
    hotline_emergency_choice: NonBlank = "1"
    spam: SpamSettings = Field(default_factory=SpamSettings)

    @field_validator("internal_domains", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return _one_or_many(value)

    @field_validator("authserv_id")
    @classmethod
    def _check_authserv_id(cls, value: str) -> str:
        value = value.strip().lower()
        if any(c.isspace() or c in '();"' for c in value):
            raise ValueError(
                f"{value!r} is not a host name (the first token of our MTA's Authentication-Results)"
            )
        return value


class TriageSettings(_Section):
    """``[triage]``: how soon a person must set the priority of a new ticket, and who does it."""

    within: Duration = "15m"
    clock: Literal["24x7", "working"] = "24x7"
    team: str = "field_service"


class LifecycleSettings(_Section):
    """``[lifecycle]``: resolved tickets close by themselves."""

    auto_close_after: Duration = "3 working days"
    auto_close_clock: Literal["24x7", "working"] = "working"
    sweep_interval: Duration = "5m"


_E164 = re.compile(r"^\+[1-9]\d{7,14}$")
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_SHIFT = re.compile(r"^\s*(\d+)\s*([hdw])\s*$")
_SHIFT_UNITS = {"h": 3600, "d": 86400, "w": 7 * 86400}
#: The weekdays a rotation may hand off on (``handoff_weekday``), Monday first.
WEEKDAY_NAMES: tuple[str, ...] = (
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
)
#: A Monday: the default ``start`` of every rotation (its first shift starts there at handoff time).
DEFAULT_ROTATION_START = dt.date(2024, 1, 1)
#: Names of people and schedules: they are stored in ``oncall_overrides`` and typed on the command line.
_NAME = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$"
PersonName = Annotated[str, Field(pattern=_NAME)]


def parse_shift(value: str) -> dt.timedelta:
    """The length of a rotation shift such as "1w", "1d" or "12h" (whole hours), else a ValueError."""
    match = _SHIFT.match(value)
    if not match or int(match.group(1)) == 0:
        raise ValueError(f'{value!r} is not a shift length such as "1w", "2w", "1d" or "12h"')
    return dt.timedelta(seconds=int(match.group(1)) * _SHIFT_UNITS[match.group(2)])


class PersonSettings(_Section):
    """``[people.<name>]``: someone who can be paged, by SMS and voice call, or e-mail."""

    display_name: str = ""  # "" = the key
    phone: str
    email: str = ""
    sms: bool = True
    voice: bool = True
    language: Annotated[str, Field(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")] = "zh-TW"

    @field_validator("phone")
    @classmethod
    def _check_phone(cls, value: str) -> str:
        compact = re.sub(r"[\s()-]", "", value)
        if not _E164.match(compact):
            raise ValueError(
                f"{value!r} is not an E.164 phone number (+, then 8 to 15 digits, e.g. +886912345678)"
            )
        return compact

    @field_validator("email")
    @classmethod
    def _check_email(cls, value: str) -> str:
        if value and ("@" not in value or any(c.isspace() for c in value)):
            raise ValueError(f"{value!r} is not an e-mail address")
        return value


class OncallScheduleSettings(_Section):
    """``[oncall.<schedule>]``: a rotation of people through one on-call role.

    The first person's first shift starts on ``start`` at ``handoff_time`` (local wall time in
    ``timezone``); every ``shift`` the next person in ``people`` takes over, and after the last
    the first again. The rotation is periodic in both directions, so it also answers for times
    before ``start``. Handoffs are computed in local wall time: across a daylight-saving change a
    weekly handoff stays at 09:00 local time.
    """

    timezone: TimeZoneName = "Asia/Taipei"
    people: Annotated[list[PersonName], Field(min_length=1)]
    handoff_time: str = "09:00"
    handoff_weekday: str = ""  # "" = the weekday of start
    shift: str = "1w"
    start: dt.date | None = None  # None = DEFAULT_ROTATION_START, moved to handoff_weekday if set

    @field_validator("handoff_time")
    @classmethod
    def _check_handoff_time(cls, value: str) -> str:
        if not _HHMM.match(value):
            raise ValueError(f'{value!r} is not a time of day like "09:00"')
        return value

    @field_validator("handoff_weekday")
    @classmethod
    def _check_weekday(cls, value: str) -> str:
        if not value:
            return value
        for name in WEEKDAY_NAMES:
            if value.lower() in (name, name[:3]):
                return name
        raise ValueError(f"{value!r} is not a weekday (monday .. sunday)")

    @field_validator("shift")
    @classmethod
    def _check_shift(cls, value: str) -> str:
        parse_shift(value)
        return value

    @model_validator(mode="after")
    def _weekday_fits(self) -> OncallScheduleSettings:
        if not self.handoff_weekday:
            return self
        if self.shift_length % dt.timedelta(weeks=1):
            raise ValueError(
                f"handoff_weekday needs a shift of whole weeks (got {self.shift!r}); "
                "leave handoff_weekday out for shorter shifts"
            )
        if self.start is not None and self.start.weekday() != WEEKDAY_NAMES.index(self.handoff_weekday):
            raise ValueError(
                f"start {self.start} is a {WEEKDAY_NAMES[self.start.weekday()]}, "
                f"but handoff_weekday is {self.handoff_weekday}"
            )
        return self

    @property
    def shift_length(self) -> dt.timedelta:
        """``shift`` as a length of local wall time."""
        return parse_shift(self.shift)

    @property
    def first_handoff(self) -> dt.datetime:
        """The first shift's start as a naive local wall time (in ``timezone``)."""
        day = self.start or DEFAULT_ROTATION_START
        if self.start is None and self.handoff_weekday:
            day += dt.timedelta(days=(WEEKDAY_NAMES.index(self.handoff_weekday) - day.weekday()) % 7)
        hour, minute = (int(part) for part in self.handoff_time.split(":"))
        return dt.datetime.combine(day, dt.time(hour, minute))

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class TeamSettings(_Section):
    """``[teams.<name>]``: who is told about a ticket's deadlines."""

    email: str = ""
    lead_email: str = ""
    calendar: str = ""


_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


class TwilioSettings(_Section):
    """``[twilio]``: the account SMS and voice pages go through; paging is off while
    ``account_sid`` is empty."""

    account_sid: str = ""
    auth_token: SecretStr = SecretStr("")
    previous_auth_token: SecretStr = SecretStr("")
    from_number: str = ""
    api_base_url: str = "https://api.twilio.com"
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

    @field_validator("account_sid")
    @classmethod
    def _check_account_sid(cls, value: str) -> str:
        if value and not re.fullmatch(r"AC[0-9a-fA-F]{32}", value):
            raise ValueError(f"{value!r} is not an Account Sid (AC followed by 32 hex digits)")
        return value

    @field_validator("from_number")
    @classmethod
    def _check_from_number(cls, value: str) -> str:
        if value and not _E164.match(value):
            raise ValueError(f"{value!r} is not an E.164 number such as +886212345678")
        return value

    @field_validator("api_base_url")
    @classmethod
    def _check_api_base_url(cls, value: str) -> str:
        if not re.fullmatch(r"https?://[^/\s]+/?", value):
            raise ValueError(f"{value!r} is not a base URL such as https://api.twilio.com")
        return value.rstrip("/")

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


class WebhookSettings(_Section):
    """``[webhooks]``: the HTTP listener Twilio calls back (status callbacks, replies, keypresses)."""

    listen: str = "127.0.0.1:8088"
    public_url: str = ""
    max_body_bytes: Annotated[int, Field(ge=1024, le=10 * 1024 * 1024)] = 64 * 1024
    # Connections open at once (each holds a descriptor); see intaked/channels/webhook_connections.py.
    max_connections: Annotated[int, Field(ge=1)] = 256
    header_timeout_seconds: Annotated[float, Field(gt=0)] = 10.0
    body_timeout_seconds: Annotated[float, Field(gt=0)] = 10.0
    keepalive_timeout_seconds: Annotated[float, Field(gt=0)] = 15.0

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        if value:
            _split_listen(value)
        return value

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str) -> str:
        if value and not re.fullmatch(r"https?://[^/\s?#]+(/[^\s?#]*)?", value):
            raise ValueError(f"{value!r} is not a base URL such as https://intaked.example.com")
        return value.rstrip("/")

    @property
    def host_port(self) -> tuple[str, int]:
        return _split_listen(self.listen)


class DaemonSettings(_Section):
    """``[daemon]``: how ``intaked run`` divides its work."""

    back_office: Literal["process", "inline"] = "process"
    outbox: Literal["process", "inline"] = "process"
    # How much lower the back office's CPU priority is than the front's (added niceness, as
    # nice(1)); 0 = the same. The outbox sender keeps the front's priority.
    back_office_nice: Annotated[int, Field(ge=0, le=19)] = 10
    # Liveness (intaked/store/liveness.py): each process that claims work writes a heartbeat
    # every ``heartbeat_seconds``; one silent for ``lease_seconds`` is taken for dead and its
    # claims are taken up again. A process this node sees exit is known dead at once.
    node_name: Annotated[str, Field(max_length=64, pattern=r"^[^\s/]*$")] = ""  # "" = the host name
    heartbeat_seconds: Annotated[float, Field(gt=0, le=60)] = 1.0
    lease_seconds: Annotated[float, Field(gt=0, le=600)] = 5.0

    @model_validator(mode="after")
    def _lease_outlasts_heartbeats(self) -> DaemonSettings:
        if self.lease_seconds < 2 * self.heartbeat_seconds:
            raise ValueError("lease_seconds must be at least twice heartbeat_seconds")
        return self


PageChannel = Literal["sms", "call", "email"]


def _sms_and_call() -> list[PageChannel]:
    return ["sms", "call"]


class PageTargetSettings(_Section):
    """One target of an escalation step: whoever an on-call schedule names, or a person."""

    oncall: str = ""
    person: str = ""

    @model_validator(mode="after")
    def _exactly_one(self) -> PageTargetSettings:
        if bool(self.oncall) == bool(self.person):
            raise ValueError('give exactly one of oncall = "<schedule>" or person = "<name>"')
        return self


class PageStepSettings(_Section):
    """``[[paging.policies.<P>.steps]]``: who is paged how, ``after`` the previous step."""

    after: Duration = "0m"
    targets: Annotated[list[PageTargetSettings], Field(min_length=1)]
    channels: Annotated[list[PageChannel], Field(min_length=1)] = Field(default_factory=_sms_and_call)


class PagePolicySettings(_Section):
    """``[paging.policies.<P>]``: the escalation chain for one priority, frozen onto each page."""

    steps: Annotated[list[PageStepSettings], Field(min_length=1)]
    repeat: Annotated[int, Field(ge=1, le=10)] = 3
    give_up_after: Duration = "10m"


class PagingSettings(_Section):
    """``[paging]``: paging the Quick Response Center for P1/P2, escalated until someone acknowledges."""

    policies: dict[Literal["P1", "P2", "P3", "P4"], PagePolicySettings] = Field(default_factory=dict)
    check_seconds: Annotated[float, Field(gt=0)] = 1.0
    fallback_after: Duration = "2m"
    fallback_email: str = ""
    call_retries: Annotated[int, Field(ge=0, le=5)] = 1
    call_retry_after: Duration = "1m"
    gather_seconds: Annotated[int, Field(ge=3, le=60)] = 8


DEFAULT_GREETING_ZH = (
    "您好，這裡是 IT 服務台專線。產線停工或全公司系統中斷，請按 1。"
    "其他 IT 問題，請按 2。資訊安全事件，請按 3。"
)
DEFAULT_GREETING_EN = (
    "Hello, this is the IT service desk. If a production line or a company-wide system is down, "
    "press 1. For any other IT problem, press 2. For an information security incident, press 3."
)


def _e164_number(value: str) -> str:
    """``value`` without spaces and dashes if it is an E.164 number, else a ValueError."""
    number = re.sub(r"[\s-]", "", value)
    if not _E164.match(number):
        raise ValueError(f"{value!r} is not an E.164 number such as +886212345678")
    return number


E164Number = Annotated[str, AfterValidator(_e164_number)]


class HotlineSettings(_Section):
    """``[hotline]``: the IT hotline answered through Twilio; every call files or joins a ticket
    (intaked/hotline/). Off while ``numbers`` is empty (and while ``[twilio]`` is off)."""

    numbers: list[E164Number] = Field(default_factory=list)
    greeting_zh: NonBlank = DEFAULT_GREETING_ZH
    greeting_en: NonBlank = DEFAULT_GREETING_EN
    greeting_url: str = ""
    menu_seconds: Annotated[int, Field(ge=3, le=60)] = 8
    speech_language: str = "zh-TW"
    repeat_window: Duration = "30m"
    record_max_seconds: Annotated[int, Field(ge=5, le=14400)] = 120
    desk_number: str = ""
    desk_dial_seconds: Annotated[int, Field(ge=5, le=600)] = 20
    desk_calendar: str = ""  # "" = sla.calendar
    sms_ack_prefixes: list[str] = Field(default_factory=lambda: ["+8869"])
    security_team: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")] = "security"
    security_notify: str = ""
    reconcile_interval: Duration = "5m"
    emergency_window: Duration = "15m"
    max_unconfirmed_emergency_pages: Annotated[int, Field(ge=1, le=100)] = 3

    @field_validator("desk_number")
    @classmethod
    def _check_desk_number(cls, value: str) -> str:
        return _e164_number(value) if value else value

    @field_validator("greeting_url")
    @classmethod
    def _check_greeting_url(cls, value: str) -> str:
        if value and not re.fullmatch(r"https?://\S+", value):
            raise ValueError(f"{value!r} is not an http(s) URL of a recording")
        return value

    @field_validator("sms_ack_prefixes")
    @classmethod
    def _check_prefixes(cls, value: list[str]) -> list[str]:
        for prefix in value:
            if not re.fullmatch(r"\+[0-9]{1,14}", prefix):
                raise ValueError(f"{prefix!r} is not a caller-id prefix such as +8869")
        return value

    @field_validator("security_notify")
    @classmethod
    def _check_security_notify(cls, value: str) -> str:
        return _address(value) if value.strip() else ""

    @property
    def enabled(self) -> bool:
        """Calls to the hotline numbers are answered (with ``[twilio]`` on)."""
        return bool(self.numbers)


class LoggingSettings(_Section):
    """``[logging]``: structlog output."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


class Settings(_Section):
    """The whole configuration, one section per table of the TOML file."""

    @field_validator("imap", mode="before")
    @classmethod
    def _one_or_many_mailboxes(cls, value: Any) -> Any:
        return [value] if isinstance(value, Mapping) else value

    @model_validator(mode="after")
    def _oncall_people_exist(self) -> Settings:
        for schedule, rotation in self.oncall.items():
            for index, name in enumerate(rotation.people):
                if name not in self.people:
                    known = ", ".join(sorted(self.people)) or "none"
                    raise ValueError(
                        f"oncall.{schedule}.people[{index}]: no person named {name!r} "
                        f"(defined: {known}; add [people.{name}])"
                    )
        return self

    @model_validator(mode="after")
    def _page_targets_exist(self) -> Settings:
        for priority, policy in self.paging.policies.items():
            for s, step in enumerate(policy.steps):
                for t, target in enumerate(step.targets):
                    key = f"paging.policies.{priority}.steps[{s}].targets[{t}]"
                    if target.oncall and target.oncall not in self.oncall:
                        known = ", ".join(sorted(self.oncall)) or "none"
                        raise ValueError(
                            f"{key}.oncall: no schedule named {target.oncall!r} "
                            f"(defined: {known}; add [oncall.{target.oncall}])"
                        )
                    if target.person and target.person not in self.people:
                        known = ", ".join(sorted(self.people)) or "none"
                        raise ValueError(
                            f"{key}.person: no person named {target.person!r} "
                            f"(defined: {known}; add [people.{target.person}])"
                        )
        return self

    @model_validator(mode="after")
    def _calendars_exist(self) -> Settings:
        named = [("sla.calendar", self.sla.calendar)]
        named += [
            (f"teams.{team}.calendar", cfg.calendar) for team, cfg in self.teams.items() if cfg.calendar
        ]
        if self.hotline.desk_calendar:
            named.append(("hotline.desk_calendar", self.hotline.desk_calendar))
        for key, name in named:
            if name not in self.calendars:
                known = ", ".join(sorted(self.calendars)) or "none"
                raise ValueError(
                    f"{key}: no calendar named {name!r} (defined: {known}; add [calendars.{name}])"
                )
        return self

    @model_validator(mode="after")
    def _no_smtp_password_in_clear(self) -> Settings:
        mail = self.outbound_mail
        if mail.username and not mail.starttls and not mail.allow_plaintext_auth:
            raise ValueError(
                "outbound_mail.username: logging in to the relay without TLS would send the password "
                "in clear (outbound_mail.starttls is false); set outbound_mail.starttls = true, or, "
                "on a network you trust, outbound_mail.allow_plaintext_auth = true"
            )
        return self

    @model_validator(mode="after")
    def _webhooks_reachable(self) -> Settings:
        if self.twilio.enabled and self.webhooks.listen and not self.webhooks.public_url:
            raise ValueError(
                "webhooks.public_url: required when twilio.account_sid is set (the URL Twilio calls back)"
            )
        return self

    @model_validator(mode="after")
    def _hotline_needs_twilio(self) -> Settings:
        if self.hotline.enabled and not (self.twilio.enabled and self.webhooks.listen):
            raise ValueError(
                "hotline.numbers: the hotline needs [twilio] (account_sid) and a webhook listener "
                "(webhooks.listen): Twilio reaches it there"
            )
        return self

    @field_validator("imap")
    @classmethod
    def _unique_mailbox_names(cls, value: list[ImapMailboxSettings]) -> list[ImapMailboxSettings]:
        names = [mailbox.name for mailbox in value]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"mailbox name {name!r} is used twice: give each [[imap]] its own name")
        return value

    database: DatabaseSettings = DatabaseSettings()
    smtp_intake: SmtpIntakeSettings = SmtpIntakeSettings()
    outbound_mail: OutboundMailSettings = OutboundMailSettings()
    imap: list[ImapMailboxSettings] = Field(default_factory=list)
    acknowledgements: AcknowledgementSettings = AcknowledgementSettings()
    outbox: OutboxSettings = OutboxSettings()
    twilio: TwilioSettings = TwilioSettings()
    webhooks: WebhookSettings = WebhookSettings()
    tickets: TicketSettings = TicketSettings()
    routing: RoutingSettings = RoutingSettings()
    directory: DirectorySettings = DirectorySettings()
    trust: TrustSettings = TrustSettings()
    intake: IntakeSettings = IntakeSettings()
    daemon: DaemonSettings = DaemonSettings()
    calendars: dict[str, CalendarSettings] = Field(default_factory=lambda: {"default": CalendarSettings()})
    sla: SlaSettings = SlaSettings()
    triage: TriageSettings = TriageSettings()
    lifecycle: LifecycleSettings = LifecycleSettings()
    paging: PagingSettings = PagingSettings()
    hotline: HotlineSettings = HotlineSettings()
    teams: dict[str, TeamSettings] = Field(default_factory=dict)
    people: dict[Annotated[str, Field(pattern=_NAME)], PersonSettings] = Field(default_factory=dict)
    oncall: dict[Annotated[str, Field(pattern=_NAME)], OncallScheduleSettings] = Field(default_factory=dict)
    logging: LoggingSettings = LoggingSettings()


def default_state_dir() -> Path:
    """Where the embedded database lives when ``database.url`` is empty."""
    if state := os.environ.get("STATE_DIRECTORY"):  # systemd StateDirectory=
        return Path(state.split(":")[0])
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "state"
    return base / "intaked"


def effective_database_url(settings: Settings) -> str:
    """The database URL to connect to: the configured one, or the embedded SQLite file."""
    if settings.database.url:
        return settings.database.url
    return f"sqlite:///{default_state_dir() / 'intaked.db'}"


def find_config_path(explicit: str | os.PathLike[str] | None) -> Path | None:
    """The config file to read, or None for built-in defaults."""
    if explicit:
        return Path(explicit)
    if env := os.environ.get(ENV_CONFIG_PATH):
        return Path(env)
    if DEFAULT_CONFIG_PATH.exists():
        return DEFAULT_CONFIG_PATH
    return None


def _secret_overrides(environ: Mapping[str, str]) -> dict[str, str]:
    found: dict[str, str] = {}
    cred_dir = environ.get("CREDENTIALS_DIRECTORY")
    for key in SECRET_KEYS:
        if cred_dir:
            path = Path(cred_dir) / key
            if path.is_file():
                found[key] = path.read_text(encoding="utf-8").rstrip("\r\n")
        section, _, name = key.partition(".")
        env_name = f"INTAKED_{section.upper()}__{name.upper()}"
        if env_name in environ:
            found[key] = environ[env_name]
    return found


def _env_name(*parts: str) -> str:
    return "INTAKED_" + "__".join(re.sub(r"[^A-Za-z0-9]", "_", part).upper() for part in parts)


def _apply_imap_secrets(merged: dict[str, Any], environ: Mapping[str, str]) -> None:
    """``imap.password`` (one mailbox) or ``imap.<name>.password`` from a credential or the environment."""
    mailboxes = merged.get("imap")
    entries = [mailboxes] if isinstance(mailboxes, dict) else mailboxes
    if not isinstance(entries, list):
        return
    cred_dir = environ.get("CREDENTIALS_DIRECTORY")
    single = len(entries) == 1
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            continue
        entry = dict(entry)
        name = str(entry.get("name", "default"))
        candidates = [(f"imap.{name}.password", _env_name("imap", name, "password"))]
        if single:
            candidates.insert(0, ("imap.password", _env_name("imap", "password")))
        for cred_key, env_key in candidates:
            if cred_dir and (Path(cred_dir) / cred_key).is_file():
                entry["password"] = (Path(cred_dir) / cred_key).read_text(encoding="utf-8").rstrip("\r\n")
            if env_key in environ:
                entry["password"] = environ[env_key]
        entries[index] = entry
    merged["imap"] = entries


def _format_loc(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + item)
    return "".join(parts) or "(top level)"


@lru_cache(maxsize=1)
def _secret_field_names(model: type[BaseModel]) -> frozenset[str]:
    """The names of the SecretStr fields anywhere under ``model`` (password, auth_token, ...)."""
    names: set[str] = set()
    seen: set[type[BaseModel]] = set()

    def walk(annotation: Any) -> None:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if annotation in seen:
                return
            seen.add(annotation)
            for name, info in annotation.model_fields.items():
                if info.annotation is SecretStr:
                    names.add(name)
                walk(info.annotation)
        for arg in get_args(annotation):
            walk(arg)

    walk(model)
    return frozenset(names)


def _is_secret(loc: tuple[int | str, ...]) -> bool:
    """Whether the value at ``loc`` is a secret (a SecretStr field or one of :data:`SECRET_KEYS`,
    wherever it came from: file, credential or environment): an error never shows it."""
    names = [part for part in loc if isinstance(part, str)]
    return bool(names) and (names[-1] in _secret_field_names(Settings) or ".".join(names) in SECRET_KEYS)


def _may_echo(value: Any) -> bool:
    """Whether an error may show its value: a scalar, not a table or list that may hold a secret."""
    return value is None or isinstance(value, str | int | float | bool)


def _format_validation_error(exc: ValidationError, source: str) -> str:
    lines = []
    for err in exc.errors():
        key = _format_loc(err["loc"])
        if err["type"] == "extra_forbidden":
            reason = "unknown key"
        elif err["type"] == "missing":
            reason = "required key is missing"
        else:
            reason = err["msg"].removeprefix("Value error, ")
            if _is_secret(err["loc"]):
                reason += " (the value is a secret: not shown)"
            elif err["type"] not in ("value_error",) and "input" in err and _may_echo(err["input"]):
                reason += f" (got {err['input']!r})"
        if not err["loc"] and re.match(r"^[a-z][\w.\[\]-]*: ", reason):  # a cross-key check names its key
            lines.append(f"{source}: {reason}")
        else:
            lines.append(f"{source}: {key}: {reason}")
    return "\n".join(lines)


def settings_from_mapping(
    data: Mapping[str, Any], *, source: str = "config", environ: Mapping[str, str] | None = None
) -> Settings:
    """Validate a parsed config mapping (plus secret overrides) into :class:`Settings`."""
    merged: dict[str, Any] = {
        k: dict(v) if isinstance(v, Mapping) else list(v) if isinstance(v, list) else v
        for k, v in data.items()
    }
    for key, value in _secret_overrides(os.environ if environ is None else environ).items():
        section, _, name = key.partition(".")
        target = merged.setdefault(section, {})
        if isinstance(target, dict):
            target[name] = value
    _apply_imap_secrets(merged, os.environ if environ is None else environ)
    try:
        return Settings.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc, source)) from None


def load_settings(
    path: str | os.PathLike[str] | None = None, *, environ: Mapping[str, str] | None = None
) -> tuple[Settings, Path | None]:
    """Find, read and validate the configuration; returns the settings and the file used."""
    found = find_config_path(path)
    if found is None:
        return settings_from_mapping({}, source="defaults", environ=environ), None
    try:
        text = found.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{found}: no such config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{found}: cannot read: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{found}: not valid TOML: {exc}") from None
    return settings_from_mapping(data, source=str(found), environ=environ), found


def masked_dump(settings: Settings) -> dict[str, Any]:
    """The effective settings as plain data, with secrets and URL passwords masked."""
    data = settings.model_dump(mode="json")
    if data["outbound_mail"]["password"]:
        data["outbound_mail"]["password"] = "********"
    for key in ("auth_token", "previous_auth_token"):
        if data["twilio"][key]:
            data["twilio"][key] = "********"
    for mailbox in data["imap"]:
        if mailbox["password"]:
            mailbox["password"] = "********"
    url = settings.database.url
    data["database"]["url"] = make_url(url).render_as_string(hide_password=True) if url else ""
    data["database"]["effective_url"] = make_url(effective_database_url(settings)).render_as_string(
        hide_password=True
    )
    return data
