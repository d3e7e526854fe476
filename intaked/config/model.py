"""The whole configuration: one field per table of the TOML file, and the checks that look across
sections (a schedule names people that exist, a policy pages schedules that exist, the hotline
needs Twilio and a webhook listener...). Each section's own schema lives in its group's module."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator

from intaked.config.fields import NAME, Section, unique_names
from intaked.config.mail import ImapMailboxSettings, IntakeSettings, SmtpIntakeSettings
from intaked.config.observability import HealthSettings, MetricsSettings
from intaked.config.outbound import AcknowledgementSettings, OutboundMailSettings, OutboxSettings
from intaked.config.paging import OncallScheduleSettings, PagingSettings, PersonSettings, TeamSettings
from intaked.config.reports import ReportsSettings
from intaked.config.routing import DirectorySettings, RoutingSettings, TrustSettings
from intaked.config.security import SecuritySettings
from intaked.config.service import (
    CalendarSettings,
    LifecycleSettings,
    SlaSettings,
    TicketSettings,
    TriageSettings,
)
from intaked.config.store import DaemonSettings, DatabaseSettings, LoggingSettings, default_state_dir
from intaked.config.surveys import SurveySettings
from intaked.config.telephony import HotlineSettings, TwilioSettings, WebhookSettings

#: The table that defines each kind of name the sections refer to.
_TABLES = {"person": "people", "schedule": "oncall", "calendar": "calendars"}


def _must_exist(key: str, kind: str, name: str, defined: Mapping[str, object]) -> None:
    """A ValueError for ``key`` unless ``name`` is one of the ``defined`` tables of its ``kind``."""
    if name not in defined:
        known = ", ".join(sorted(defined)) or "none"
        table = _TABLES[kind]
        raise ValueError(f"{key}: no {kind} named {name!r} (defined: {known}; add [{table}.{name}])")


class Settings(Section):
    """The whole configuration, one section per table of the TOML file."""

    @field_validator("imap", mode="before")
    @classmethod
    def _one_or_many_mailboxes(cls, value: Any) -> Any:
        return [value] if isinstance(value, Mapping) else value

    @model_validator(mode="after")
    def _oncall_people_exist(self) -> Settings:
        for schedule, rotation in self.oncall.items():
            for index, name in enumerate(rotation.people):
                _must_exist(f"oncall.{schedule}.people[{index}]", "person", name, self.people)
        return self

    @model_validator(mode="after")
    def _page_targets_exist(self) -> Settings:
        for priority, policy in self.paging.policies.items():
            for s, step in enumerate(policy.steps):
                for t, target in enumerate(step.targets):
                    key = f"paging.policies.{priority}.steps[{s}].targets[{t}]"
                    if target.oncall:
                        _must_exist(f"{key}.oncall", "schedule", target.oncall, self.oncall)
                    if target.person:
                        _must_exist(f"{key}.person", "person", target.person, self.people)
        return self

    @model_validator(mode="after")
    def _team_pagers_exist(self) -> Settings:
        for team, cfg in self.teams.items():
            if cfg.oncall:
                _must_exist(f"teams.{team}.oncall", "schedule", cfg.oncall, self.oncall)
            if cfg.policy and cfg.policy not in self.paging.policies:
                known = ", ".join(sorted(self.paging.policies)) or "none"
                raise ValueError(
                    f"teams.{team}.policy: no [paging.policies.{cfg.policy}] is configured "
                    f"(configured: {known})"
                )
        return self

    @model_validator(mode="after")
    def _alarm_person_exists(self) -> Settings:
        if name := self.health.alarm_person:
            _must_exist("health.alarm_person", "person", name, self.people)
            if not self.twilio.enabled:
                raise ValueError(
                    "health.alarm_person: the alarm's SMS needs [twilio] (account_sid); "
                    "leave it empty to send the alarm by mail only"
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
            _must_exist(key, "calendar", name, self.calendars)
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

    database: DatabaseSettings = DatabaseSettings()
    smtp_intake: SmtpIntakeSettings = SmtpIntakeSettings()
    outbound_mail: OutboundMailSettings = OutboundMailSettings()
    imap: Annotated[list[ImapMailboxSettings], unique_names("mailbox", "[[imap]]")] = Field(
        default_factory=list
    )
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
    people: dict[Annotated[str, Field(pattern=NAME)], PersonSettings] = Field(default_factory=dict)
    oncall: dict[Annotated[str, Field(pattern=NAME)], OncallScheduleSettings] = Field(default_factory=dict)
    logging: LoggingSettings = LoggingSettings()
    metrics: MetricsSettings = MetricsSettings()
    health: HealthSettings = HealthSettings()
    surveys: SurveySettings = SurveySettings()
    reports: ReportsSettings = ReportsSettings()
    security: SecuritySettings = SecuritySettings()


def effective_database_url(settings: Settings) -> str:
    """The database URL to connect to: the configured one, or the embedded SQLite file."""
    if settings.database.url:
        return settings.database.url
    return f"sqlite:///{default_state_dir() / 'intaked.db'}"
