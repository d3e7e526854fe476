"""Who is on call (placeholder until the on-call schedules land): resolves no one."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Connection

from intaked.config import Settings


def resolve_target(conn: Connection, settings: Settings, target: dict[str, str], at: dt.datetime) -> Any:
    raise LookupError(f"no on-call schedules configured for {target}")
