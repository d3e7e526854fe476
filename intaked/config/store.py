"""The schema of ``[database]``, ``[daemon]`` and ``[logging]``: where the store lives, how the
daemon divides its work, what it logs; and where the embedded database goes when none is configured."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from intaked.config.dburl import connectable_url
from intaked.config.fields import Section


class DatabaseSettings(Section):
    """``[database]``: where the ticket store lives."""

    url: str = Field(
        default="",
        description="SQLAlchemy URL (PostgreSQL: libpq's several hosts too); empty: the embedded SQLite file",
    )
    auto_migrate: bool = True
    sqlite_busy_timeout_ms: Annotated[int, Field(ge=0, le=600_000)] = 5000
    pool_size: Annotated[int, Field(ge=1, le=100)] = 5

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if not value:
            return value
        url = connectable_url(value)  # ValueError: what is wrong, never the URL itself
        backend = url.get_backend_name()
        if backend not in ("sqlite", "postgresql"):
            raise ValueError(f"unsupported database {backend!r}: use sqlite or postgresql")
        return value


class DaemonSettings(Section):
    """``[daemon]``: how ``intaked run`` divides its work."""

    back_office: Literal["process", "inline"] = "process"
    outbox: Literal["process", "inline"] = "process"
    # How much lower the back office's CPU priority is than the front's (added niceness, as
    # nice(1)); 0 = the same. The outbox sender keeps the front's priority.
    back_office_nice: Annotated[int, Field(ge=0, le=19)] = 10
    # Liveness (intaked/store/liveness.py): each process that claims work writes a heartbeat
    # every ``heartbeat_seconds``; one silent for ``lease_seconds`` is taken for dead and its
    # claims are taken up again. A process this node sees exit is known dead at once.
    node_name: Annotated[str, Field(max_length=64, pattern=r"^[^\s/]*$")] = ""  # "" = host-pid
    heartbeat_seconds: Annotated[float, Field(gt=0, le=60)] = 1.0
    lease_seconds: Annotated[float, Field(gt=0, le=600)] = 5.0

    @model_validator(mode="after")
    def _lease_outlasts_heartbeats(self) -> DaemonSettings:
        if self.lease_seconds < 2 * self.heartbeat_seconds:
            raise ValueError("lease_seconds must be at least twice heartbeat_seconds")
        return self


class LoggingSettings(Section):
    """``[logging]``: structlog output."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


def default_state_dir() -> Path:
    """Where the embedded database lives when ``database.url`` is empty."""
    if state := os.environ.get("STATE_DIRECTORY"):  # systemd StateDirectory=
        return Path(state.split(":")[0])
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "state"
    return base / "intaked"
