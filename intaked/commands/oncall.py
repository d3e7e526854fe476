"""``intaked oncall now|override|overrides|remove-override|show``: who is on duty, overrides, the
upcoming shifts.

Times given without a UTC offset are read in the schedule's time zone; times are printed in it.
Exit codes follow :mod:`intaked.commands.shared`: 1 a looked-up override does not exist, 2 wrong
usage (unknown schedule or person, a span that ends before it starts).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from intaked.commands.shared import EXIT_NOT_FOUND, EXIT_USAGE, iso, open_engine
from intaked.config import Settings
from intaked.paging.oncall import (
    OnDuty,
    Override,
    UnknownTarget,
    add_override,
    list_overrides,
    remove_override,
    upcoming,
    who_is_on_duty,
)
from intaked.store.engine import read_only
from intaked.store.migrate import ensure_schema
from intaked.store.types import utcnow

# The fields of an on-duty stint and of an override that ``--json`` shows as they are (their
# times in the schedule's zone), in the order it shows them.
DUTY_FIELDS = ("source", "override_id", "rotation_person", "since", "until", "next_person")
OVERRIDE_FIELDS = ("id", "schedule", "person", "replaces", "starts_at", "ends_at", "note")


class UsageError(Exception):
    """The command cannot run as given; the message says why (exit 2)."""


def _moment(text: str) -> dt.datetime:
    """An ISO 8601 date and time, with or without a UTC offset (naive: the schedule's time zone)."""
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 date and time (e.g. 2026-12-24T18:00 or 2026-12-24T18:00+08:00)"
        ) from None


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) == 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


def add_parser(sub: Any, config_parent: argparse.ArgumentParser) -> None:
    oncall = sub.add_parser("oncall", help="QRC on-call schedules").add_subparsers(
        dest="oncall_command", required=True
    )
    now = oncall.add_parser("now", parents=[config_parent], help="who is on duty")
    now.add_argument("--at", type=_moment, help="at this time instead of now (ISO 8601)")
    now.add_argument("--schedule", help="only this schedule")
    now.add_argument("--json", action="store_true", help="JSON output")

    override = oncall.add_parser(
        "override",
        parents=[config_parent],
        help="someone else holds a role for a while (stored in the database)",
    )
    override.add_argument(
        "--schedule",
        help="the role taken over (default: the only schedule, or the duty commander's: the first "
        "step of the P1 policy)",
    )
    override.add_argument("--person", required=True, help="who holds the role: a [people.<name>]")
    override.add_argument("--from", dest="starts_at", required=True, type=_moment, metavar="ISO")
    override.add_argument("--to", dest="ends_at", required=True, type=_moment, metavar="ISO")
    override.add_argument(
        "--replaces", help="only while the rotation names this person (default: the whole role)"
    )
    override.add_argument("--note", default="")
    override.add_argument("--by", default="operator")

    overrides = oncall.add_parser("overrides", parents=[config_parent], help="current and future overrides")
    overrides.add_argument("--schedule")
    overrides.add_argument("--json", action="store_true", help="JSON output")

    remove = oncall.add_parser("remove-override", parents=[config_parent], help="delete an override")
    remove.add_argument("id", type=int)

    show = oncall.add_parser("show", parents=[config_parent], help="the upcoming shifts, overrides applied")
    show.add_argument("--schedule", required=True)
    show.add_argument("--days", type=_positive, default=14)
    show.add_argument("--from", dest="start", type=_moment, metavar="ISO", help="instead of now")
    show.add_argument("--json", action="store_true", help="JSON output")


def run(settings: Settings, args: argparse.Namespace) -> int:
    try:
        command = args.oncall_command
        if command == "override":
            return _override(settings, args)
        if command == "remove-override":
            return _remove(settings, args.id)
        if command == "overrides":
            return _list(settings, args)
        if command == "show":
            return _show(settings, args)
        return _now(settings, args)
    except (UsageError, UnknownTarget) as exc:
        print(f"intaked: {exc.args[0]}", file=sys.stderr)
        return EXIT_USAGE


def _engine(settings: Settings) -> Engine:
    engine = open_engine(settings)
    try:
        ensure_schema(engine, auto_migrate=settings.database.auto_migrate)
    except BaseException:
        engine.dispose()
        raise
    return engine


def _zone(settings: Settings, schedule: str) -> ZoneInfo:
    config = settings.oncall.get(schedule)
    return config.zone if config is not None else ZoneInfo("UTC")


def _in_zone(moment: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """``moment`` made timezone-aware: a naive one is a wall time in ``zone``."""
    return moment.replace(tzinfo=zone) if moment.tzinfo is None else moment


def _show_time(moment: dt.datetime, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).strftime("%Y-%m-%d %a %H:%M%z")


def _check_schedule(settings: Settings, schedule: str) -> None:
    if schedule not in settings.oncall:
        known = ", ".join(sorted(settings.oncall)) or "none; add [oncall.<schedule>] to the configuration"
        raise UsageError(f"no on-call schedule named {schedule!r} (defined: {known})")


def _check_person(settings: Settings, option: str, name: str) -> None:
    if name not in settings.people:
        known = ", ".join(sorted(settings.people)) or "none; add [people.<name>] to the configuration"
        raise UsageError(f"{option} {name}: no person named {name!r} (defined: {known})")


def _label(settings: Settings, name: str) -> str:
    entry = settings.people.get(name)
    if entry is None or not entry.display_name or entry.display_name == name:
        return name
    return f"{name} ({entry.display_name})"


def _how(duty: OnDuty) -> str:
    if duty.source == "rotation":
        return "rotation"
    if duty.person == duty.rotation_person:
        return f"override #{duty.override_id}"
    return f"override #{duty.override_id}, instead of {duty.rotation_person}"


def _fields_json(record: object, names: Sequence[str], zone: ZoneInfo) -> dict[str, Any]:
    """The attributes ``names`` of ``record``, a date and time among them in ISO 8601 in ``zone``."""
    values = {name: getattr(record, name) for name in names}
    return {
        name: value.astimezone(zone).isoformat() if isinstance(value, dt.datetime) else value
        for name, value in values.items()
    }


def _duty_json(settings: Settings, schedule: str, duty: OnDuty) -> dict[str, Any]:
    zone = _zone(settings, schedule)
    entry = settings.people.get(duty.person)
    return {
        "schedule": schedule,
        "timezone": str(zone),
        "person": duty.person,
        "display_name": (entry.display_name or duty.person) if entry else duty.person,
        "phone": entry.phone if entry else None,
        **_fields_json(duty, DUTY_FIELDS, zone),
    }


def _now(settings: Settings, args: argparse.Namespace) -> int:
    if args.schedule is not None:
        _check_schedule(settings, args.schedule)
    names = [args.schedule] if args.schedule else sorted(settings.oncall)
    if not names:
        print("no on-call schedule is configured ([oncall.<schedule>] in the configuration)", file=sys.stderr)
        if args.json:
            print("[]")
        return 0
    engine = _engine(settings)
    try:
        with read_only(engine).connect() as conn:
            duties = [
                (
                    name,
                    who_is_on_duty(
                        conn, settings, name, _in_zone(args.at or utcnow(), _zone(settings, name))
                    ),
                )
                for name in names
            ]
    finally:
        engine.dispose()
    if args.json:
        print(json.dumps([_duty_json(settings, n, d) for n, d in duties], ensure_ascii=False, indent=2))
        return 0
    for name, duty in duties:
        zone = _zone(settings, name)
        print(f"{name}: {_label(settings, duty.person)} [{_how(duty)}]")
        print(f"  since {_show_time(duty.since, zone)}")
        print(f"  until {_show_time(duty.until, zone)}, then {_label(settings, duty.next_person)}")
    return 0


def _default_schedule(settings: Settings) -> str:
    """The schedule ``oncall override`` means without ``--schedule``."""
    if len(settings.oncall) == 1:
        return next(iter(settings.oncall))
    p1 = settings.paging.policies.get("P1")
    first = p1.steps[0].targets[0].oncall if p1 is not None else ""
    if first:
        return first
    known = ", ".join(sorted(settings.oncall)) or "none"
    raise UsageError(f"several on-call schedules ({known}): name one with --schedule")


def _override(settings: Settings, args: argparse.Namespace) -> int:
    if args.schedule is None:
        args.schedule = _default_schedule(settings)
    _check_schedule(settings, args.schedule)
    _check_person(settings, "--person", args.person)
    if args.replaces is not None:
        _check_person(settings, "--replaces", args.replaces)
        if args.replaces not in settings.oncall[args.schedule].people:
            raise UsageError(
                f"--replaces {args.replaces}: {args.replaces!r} is not in the rotation of {args.schedule!r}, "
                "so the override would never apply"
            )
    zone = _zone(settings, args.schedule)
    starts_at = _in_zone(args.starts_at, zone)
    ends_at = _in_zone(args.ends_at, zone)
    if ends_at <= starts_at:
        raise UsageError(
            f"--to {_show_time(ends_at, zone)} is not after --from {_show_time(starts_at, zone)}"
        )
    engine = _engine(settings)
    try:
        new_id = add_override(
            engine,
            args.schedule,
            args.person,
            starts_at,
            ends_at,
            replaces=args.replaces,
            note=args.note,
            by=args.by,
        )
    finally:
        engine.dispose()
    scope = f"instead of {args.replaces}" if args.replaces else "the whole role"
    print(
        f"override {new_id}: {args.person} holds {args.schedule} ({scope}) "
        f"from {_show_time(starts_at, zone)} until {_show_time(ends_at, zone)}"
    )
    if ends_at <= utcnow():
        print("intaked: note: this override is entirely in the past", file=sys.stderr)
    return 0


def _override_json(settings: Settings, override: Override) -> dict[str, Any]:
    # ``created_at`` is printed as stored: when the row was written, not a time of the schedule.
    return {
        **_fields_json(override, OVERRIDE_FIELDS, _zone(settings, override.schedule)),
        "created_at": iso(override.created_at),
        "created_by": override.created_by,
    }


def _list(settings: Settings, args: argparse.Namespace) -> int:
    if args.schedule is not None:
        _check_schedule(settings, args.schedule)
    engine = _engine(settings)
    try:
        found = list_overrides(engine, args.schedule, since=utcnow())
    finally:
        engine.dispose()
    if args.json:
        print(json.dumps([_override_json(settings, o) for o in found], ensure_ascii=False, indent=2))
        return 0
    if not found:
        print("no current or future overrides")
        return 0
    print(f"{'ID':>5} {'SCHEDULE':<14} {'PERSON':<12} {'REPLACES':<12} {'FROM':<26} {'TO':<26} BY / NOTE")
    for o in found:
        zone = _zone(settings, o.schedule)
        print(
            f"{o.id:>5} {o.schedule:<14} {o.person:<12} {o.replaces or '(whole role)':<12} "
            f"{_show_time(o.starts_at, zone):<26} {_show_time(o.ends_at, zone):<26} "
            f"{o.created_by or '-'}{' / ' + o.note if o.note else ''}"
        )
    return 0


def _remove(settings: Settings, override_id: int) -> int:
    engine = _engine(settings)
    try:
        removed = remove_override(engine, override_id)
    finally:
        engine.dispose()
    if not removed:
        print(f"intaked: no override {override_id}", file=sys.stderr)
        return EXIT_NOT_FOUND
    print(f"override {override_id} removed")
    return 0


def _show(settings: Settings, args: argparse.Namespace) -> int:
    _check_schedule(settings, args.schedule)
    zone = _zone(settings, args.schedule)
    start = _in_zone(args.start, zone) if args.start else utcnow()
    end = start + dt.timedelta(days=args.days)
    engine = _engine(settings)
    try:
        with read_only(engine).connect() as conn:
            shifts = upcoming(conn, settings, args.schedule, start, end)
    finally:
        engine.dispose()
    if args.json:
        print(
            json.dumps([_duty_json(settings, args.schedule, d) for d in shifts], ensure_ascii=False, indent=2)
        )
        return 0
    print(f"{args.schedule} ({zone}), {args.days} day(s) from {_show_time(start, zone)}")
    for duty in shifts:
        print(
            f"  {_show_time(duty.since, zone)} -> {_show_time(duty.until, zone)}  "
            f"{_label(settings, duty.person)} [{_how(duty)}]"
        )
    return 0
