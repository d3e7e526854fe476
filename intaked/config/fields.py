"""The building blocks every schema module shares: the section base class and the checked value
types (a listen address, a time zone, a duration, an address, a domain, an E.164 number...).

Each checker raises a ValueError whose message says what is wrong; the loader puts the key in front.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any, Protocol, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from intaked.config.durations import parse_duration


class Section(BaseModel):
    """One table of the TOML file: unknown keys are errors, values are checked even when defaulted."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


def split_listen(value: str) -> tuple[str, int]:
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


def checked_by(check: Callable[[str], object], *, optional: bool = False) -> AfterValidator:
    """A string kept as it is once ``check`` (which raises a ValueError saying what is wrong) accepts
    it; ``optional``: an empty string means "not set" and is not checked."""

    def validate(value: str) -> str:
        if value or not optional:
            check(value)
        return value

    return AfterValidator(validate)


def full_match(pattern: str, description: str) -> Callable[[str], None]:
    """A check that a string matches ``pattern`` in full, else a ValueError "'<value>' is not
    <description>"."""
    compiled = re.compile(pattern)

    def check(value: str) -> None:
        if not compiled.fullmatch(value):
            raise ValueError(f"{value!r} is not {description}")

    return check


def matching(pattern: str, description: str, *, optional: bool = True) -> AfterValidator:
    """:func:`full_match` as a field's check; by default an empty string (not set) passes."""
    return checked_by(full_match(pattern, description), optional=optional)


def _without_trailing_slash(value: str) -> str:
    return value.rstrip("/")


def _time_zone(value: str) -> str:
    """``value`` if it names an IANA time zone, else a ValueError naming it."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r}") from None
    return value


def check_duration(value: str) -> str:
    """``value`` if it is a duration such as "15m", "4h" or "3 working days", else a ValueError."""
    parse_duration(value)
    return value


def one_or_many(value: Any) -> Any:
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


def mail_address(value: str) -> str:
    """``value`` trimmed and in lower case if it looks like an e-mail address, else a ValueError."""
    value = value.strip().lower()
    if "@" not in value or any(c.isspace() for c in value):
        raise ValueError(f"{value!r} is not an e-mail address")
    return value


#: A phone number in E.164 form: "+", then up to 15 digits.
E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


def e164_number(value: str) -> str:
    """``value`` without spaces and dashes if it is an E.164 number, else a ValueError."""
    number = re.sub(r"[\s-]", "", value)
    if not E164.match(number):
        raise ValueError(f"{value!r} is not an E.164 number such as +886212345678")
    return number


class _Named(Protocol):
    @property
    def name(self) -> str: ...


_NamedT = TypeVar("_NamedT", bound=_Named)


def unique_names(what: str, each: str) -> AfterValidator:
    """A check of a list of named tables: no ``name`` is used twice ("<what> name 'x' is used
    twice: give each <each> its own name")."""

    def check(entries: list[_NamedT]) -> list[_NamedT]:
        names = [entry.name for entry in entries]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"{what} name {name!r} is used twice: give each {each} its own name")
        return entries

    return AfterValidator(check)


#: An IANA time zone name, checked when the configuration is read.
TimeZoneName = Annotated[str, AfterValidator(_time_zone)]
Duration = Annotated[str, AfterValidator(check_duration)]
NonBlank = Annotated[str, AfterValidator(_not_blank)]
RegularExpression = Annotated[str, AfterValidator(_regular_expression)]
DomainName = Annotated[str, AfterValidator(_domain)]
MailAddress = Annotated[str, AfterValidator(mail_address)]
E164Number = Annotated[str, AfterValidator(e164_number)]
#: A listen address, "host:port" (``[v6]:port`` for IPv6).
ListenAddress = Annotated[str, checked_by(split_listen)]
#: A base URL, kept without its trailing slash.
NoTrailingSlash = AfterValidator(_without_trailing_slash)
#: Names of people and schedules: they are stored in ``oncall_overrides`` and typed on the command line.
NAME = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$"
PersonName = Annotated[str, Field(pattern=NAME)]
#: Names of mailboxes, rules and teams.
KEY_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
