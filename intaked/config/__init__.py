"""intaked's configuration: one validated schema, one TOML file, secrets from the environment.

The package imports nothing else of intaked. Its modules:

- ``fields``: the section base class and the checked value types; ``durations``: "15m", "3 working
  days"; ``addresses``: the helpdesk's From address.
- one schema module per group of sections: ``store`` (database, daemon, logging), ``mail``
  (smtp_intake, imap, intake), ``outbound`` (outbound_mail, outbox, acknowledgements), ``service``
  (tickets, calendars, sla, triage, lifecycle), ``routing`` (routing, directory, trust), ``paging``
  (people, oncall, teams, paging), ``telephony`` (twilio, webhooks, hotline), ``observability``
  (metrics, health), ``surveys`` (surveys); ``reports`` (the scheduled reports by mail);
- ``oauth2``: the ``auth`` mode and ``oauth2`` table of a mailbox and of the relay (Microsoft 365);
- ``dburl``: ``database.url`` as SQLAlchemy needs it (libpq's several PostgreSQL hosts);
- ``model``: :class:`Settings`, the whole file, with the checks that look across sections;
- ``loader``: the file, systemd credentials and the environment layered with pydantic-settings;
  ``errors``: :class:`ConfigError` and its messages; ``redaction``: which values are secrets.

Unknown keys are errors; every error names the key and the reason, never a secret's value.
"""

from intaked.config.addresses import DEFAULT_DISPLAY_NAME, SenderAddress, parse_sender
from intaked.config.dburl import connectable_url, host_count, masked_url
from intaked.config.errors import ConfigError
from intaked.config.fields import Duration, TimeZoneName
from intaked.config.loader import (
    DEFAULT_CONFIG_PATH,
    ENV_CONFIG_PATH,
    find_config_path,
    load_settings,
    settings_from_mapping,
)
from intaked.config.mail import ImapMailboxSettings, IntakeSettings, SmtpIntakeSettings
from intaked.config.model import Settings, effective_database_url
from intaked.config.oauth2 import DEFAULT_SCOPE, AuthMode, OAuth2Settings
from intaked.config.observability import DEFAULT_METRICS_LISTEN, HealthSettings, MetricsSettings
from intaked.config.outbound import AcknowledgementSettings, OutboundMailSettings, OutboxSettings
from intaked.config.paging import (
    DEFAULT_ROTATION_START,
    WEEKDAY_NAMES,
    OncallScheduleSettings,
    PageChannel,
    PagePolicySettings,
    PageStepSettings,
    PageTargetSettings,
    PagingSettings,
    PersonSettings,
    TeamSettings,
    parse_shift,
)
from intaked.config.redaction import SECRET_KEYS, masked_dump
from intaked.config.reports import ReportGrouping, ReportsSettings, ScheduledReportSettings
from intaked.config.routing import (
    DEFAULT_SPAM_RULES,
    Category,
    DirectorySettings,
    RoutingRuleSettings,
    RoutingSettings,
    SpamRuleSettings,
    SpamSettings,
    SuggestedPriority,
    TrustSettings,
)
from intaked.config.service import (
    CalendarSettings,
    LifecycleSettings,
    SlaSettings,
    TargetSettings,
    TicketSettings,
    TriageSettings,
    Weekday,
)
from intaked.config.store import DaemonSettings, DatabaseSettings, LoggingSettings, default_state_dir
from intaked.config.surveys import SurveyChannel, SurveySettings
from intaked.config.telephony import (
    DEFAULT_GREETING_EN,
    DEFAULT_GREETING_ZH,
    HotlineSettings,
    TwilioSettings,
    WebhookSettings,
)

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "DEFAULT_DISPLAY_NAME",
    "DEFAULT_GREETING_EN",
    "DEFAULT_GREETING_ZH",
    "DEFAULT_METRICS_LISTEN",
    "DEFAULT_ROTATION_START",
    "DEFAULT_SCOPE",
    "DEFAULT_SPAM_RULES",
    "ENV_CONFIG_PATH",
    "SECRET_KEYS",
    "WEEKDAY_NAMES",
    "AcknowledgementSettings",
    "AuthMode",
    "CalendarSettings",
    "Category",
    "ConfigError",
    "DaemonSettings",
    "DatabaseSettings",
    "DirectorySettings",
    "Duration",
    "HealthSettings",
    "HotlineSettings",
    "ImapMailboxSettings",
    "IntakeSettings",
    "LifecycleSettings",
    "LoggingSettings",
    "MetricsSettings",
    "OAuth2Settings",
    "OncallScheduleSettings",
    "OutboundMailSettings",
    "OutboxSettings",
    "PageChannel",
    "PagePolicySettings",
    "PageStepSettings",
    "PageTargetSettings",
    "PagingSettings",
    "PersonSettings",
    "ReportGrouping",
    "ReportsSettings",
    "RoutingRuleSettings",
    "RoutingSettings",
    "ScheduledReportSettings",
    "SenderAddress",
    "Settings",
    "SlaSettings",
    "SmtpIntakeSettings",
    "SpamRuleSettings",
    "SpamSettings",
    "SuggestedPriority",
    "SurveyChannel",
    "SurveySettings",
    "TargetSettings",
    "TeamSettings",
    "TicketSettings",
    "TimeZoneName",
    "TriageSettings",
    "TrustSettings",
    "TwilioSettings",
    "WebhookSettings",
    "Weekday",
    "connectable_url",
    "default_state_dir",
    "effective_database_url",
    "find_config_path",
    "host_count",
    "load_settings",
    "masked_dump",
    "masked_url",
    "parse_sender",
    "parse_shift",
    "settings_from_mapping",
]
