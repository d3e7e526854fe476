"""Durations as people write them in the configuration ("15m", "1h30m", "3 working days").

Parsed here, in the configuration package, so that checking a config file needs nothing else of
intaked; the SLA clocks (intaked/sla/targets.py) read the same parts when they count.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping

# One part of a duration: a number, optionally "working"/"business", a unit ("1h", "30 minutes").
_PART = re.compile(r"(\d{1,12})\s*(?:(?:working|business)\s+)?([a-z]+)\s*")
_UNITS = {
    **dict.fromkeys(("d", "day", "days"), "days"),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), "hours"),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), "minutes"),
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), "seconds"),
}
_UNIT_ORDER = ("days", "hours", "minutes", "seconds")
_MAX_DAYS = 36_500


def _not_a_duration(text: str) -> ValueError:
    return ValueError(f"{text!r} is not a duration: use e.g. 15m, 4h, 3d, 1h30m or '3 working days'")


def _comes_after(unit: str, seen: Mapping[str, int]) -> bool:
    """Whether ``unit`` is smaller than every unit already seen (so "1h30m", not "30m1h" or "1h1h")."""
    return all(_UNIT_ORDER.index(unit) > _UNIT_ORDER.index(other) for other in seen)


def parse_duration(text: str) -> tuple[dt.timedelta, int]:
    """Split a configured duration into its hours/minutes/seconds part and its number of days.

    Accepts e.g. "15m", "1h30m", "90s", "2d4h", "15 min", "8 working hours", "3 working days"
    (case and spaces do not matter); units at most once each, largest first.
    """
    lowered = text.strip().lower()
    amounts: dict[str, int] = {}
    position = 0
    while position < len(lowered):
        part = _PART.match(lowered, position)
        unit = _UNITS.get(part[2]) if part else None
        if part is None or unit is None or not _comes_after(unit, amounts):
            raise _not_a_duration(text)
        amounts[unit] = int(part[1])
        position = part.end()
    days = amounts.pop("days", 0)
    if not lowered or days > _MAX_DAYS or sum(amounts.values()) > _MAX_DAYS * 24 * 3600:
        raise _not_a_duration(text)
    return dt.timedelta(**amounts), days
