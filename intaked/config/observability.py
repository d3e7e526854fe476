"""The schema of ``[metrics]`` (the listener that serves Prometheus metrics and the health
endpoints ``/metrics``, ``/healthz``, ``/readyz``) and of ``[health]`` (intaked's own alarm when
its pipeline stalls, and the heartbeat URL of a dead-man's switch)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field

from intaked.config.fields import Section, checked_by, mail_address, split_listen

DEFAULT_METRICS_LISTEN = "127.0.0.1:9464"


class MetricsSettings(Section):
    """``[metrics]``: the metrics and health listener of the front process."""

    listen: Annotated[str, checked_by(split_listen, optional=True)] = DEFAULT_METRICS_LISTEN  # "": off

    @property
    def enabled(self) -> bool:
        return bool(self.listen)

    @property
    def host_port(self) -> tuple[str, int]:
        return split_listen(self.listen)


def _http_url(value: str) -> None:
    """A ValueError unless ``value`` is an http(s) URL with a host."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{value!r} is not an http:// or https:// URL")


Seconds = Annotated[float, Field(gt=0, le=86_400)]


class HealthSettings(Section):
    """``[health]``: the front's own alarm (a stalled pipeline, told by mail and SMS once per
    incident, then a recovery notice) and its heartbeat URL."""

    alarm_email: Annotated[str, checked_by(mail_address, optional=True)] = ""  # "": no alarm mail
    alarm_person: str = ""  # a name under [people], who also gets the alarm by SMS
    check_seconds: Seconds = 30.0
    ledger_stall_seconds: Seconds = 300.0
    outbox_stall_seconds: Seconds = 600.0
    mailbox_failing_seconds: Seconds = 600.0
    worker_silent_seconds: Seconds = 60.0
    heartbeat_url: Annotated[str, checked_by(_http_url, optional=True)] = ""  # "": off
    heartbeat_seconds: Seconds = 60.0

    @property
    def alarm_enabled(self) -> bool:
        return bool(self.alarm_email or self.alarm_person)
