"""The schema of routing and trust: ``[[routing.rules]]`` (which team, category and priority a
ticket gets), ``[directory]`` (the employee CSV) and ``[trust]`` (spam verdicts, what may page)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from intaked.config.fields import (
    KEY_NAME,
    DomainName,
    MailAddress,
    NonBlank,
    RegularExpression,
    Section,
    one_or_many,
    unique_names,
)

#: Categories a routing rule may set (``tickets.category``).
Category = Literal["incident", "service_request", "security_incident"]
#: Priorities a routing rule may suggest (``tickets.suggested_priority``).
SuggestedPriority = Literal["P1", "P2", "P3", "P4"]


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


class RoutingRuleSettings(Section):
    """One ``[[routing.rules]]`` table: conditions (all given ones must hold; a list means any of
    its entries) and the fields it sets (intaked/routing/rules.py)."""

    name: Annotated[str, Field(pattern=KEY_NAME)]
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
    team: Annotated[str, Field(pattern=KEY_NAME)] | None = None
    suggested_priority: SuggestedPriority | None = None

    @field_validator(*_ROUTING_CONDITIONS, mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return one_or_many(value)

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


class RoutingSettings(Section):
    """``[routing]``: the routing rules, in order; for each field the first matching rule that
    sets it wins. No rules: nothing is routed."""

    rules: Annotated[list[RoutingRuleSettings], unique_names("rule", "rule")] = Field(default_factory=list)


class DirectorySettings(Section):
    """``[directory]``: the employee directory CSV that enriches requesters (intaked/routing/directory.py)."""

    path: str = ""
    reload_seconds: Annotated[float, Field(ge=0)] = 30.0
    country_code: Annotated[str, Field(pattern=r"^[1-9]\d{0,2}$")] = "886"


class SpamRuleSettings(Section):
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


class SpamSettings(Section):
    """``[trust.spam]``: which header fields written by our MTA mark mail as spam. Spam is stored
    as a ticket in status ``spam``: no acknowledgement, no deadlines, no paging, never threaded
    into another ticket, until a person releases it. Only fields whose name contains "spam" are
    read (``X-Spam-*``, ``X-Spamd-Result``, ``X-Rspamd-*``, ``X-Microsoft-Antispam``...)."""

    enabled: bool = True
    rules: list[SpamRuleSettings] = Field(
        default_factory=lambda: [SpamRuleSettings(**rule) for rule in DEFAULT_SPAM_RULES]
    )


class TrustSettings(Section):
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
        return one_or_many(value)

    @field_validator("authserv_id")
    @classmethod
    def _check_authserv_id(cls, value: str) -> str:
        value = value.strip().lower()
        if any(c.isspace() or c in '();"' for c in value):
            raise ValueError(
                f"{value!r} is not a host name (the first token of our MTA's Authentication-Results)"
            )
        return value
