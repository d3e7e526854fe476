"""Who is on call: QRC rotations from the configuration, overrides from the database.

A rotation (``[oncall.<schedule>]``) hands the role from one person to the next every ``shift``,
starting with the first person on ``start`` at ``handoff_time``. Handoffs are computed in the
schedule's local wall time, so a weekly handoff stays at Monday 09:00 across a daylight-saving
change; a handoff whose wall time does not exist that day (spring forward) happens as if the
clock had not moved yet (02:30 becomes 03:30 summer time), and one whose wall time occurs twice
(fall back) happens at the first. Shifts are whole hours, so handoffs never go backwards. The rotation
is periodic in both directions: it also names someone before ``start``. The handoff instant
itself belongs to the new person.

An override (table ``oncall_overrides``, ``intaked oncall override``) gives the role to someone
else for ``[starts_at, ends_at)``. Without ``replaces`` it takes the whole role; with ``replaces``
it applies only while the rotation names that person. Where several apply, the newest (the
highest id: the one set last) wins.

:func:`on_duty` is the pure resolver; :func:`who_is_on_duty` and :func:`resolve_target` read the
overrides they need from the database and are what the escalation engine calls.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import structlog
from sqlalchemy import Engine, delete, insert, select
from sqlalchemy.engine import Connection, RowMapping

from intaked.config import OncallScheduleSettings, Settings
from intaked.store.models import oncall_override_table
from intaked.store.types import utcnow

log = structlog.get_logger(__name__)

Source = Literal["rotation", "override"]
_TICK = dt.timedelta(microseconds=1)


class UnknownTarget(LookupError):
    """A schedule or person that the configuration does not define; the message says which."""


@dataclass(frozen=True)
class Person:
    """Someone who can be paged: ``[people.<name>]`` of the configuration."""

    name: str
    display_name: str
    phone: str
    email: str
    sms: bool
    voice: bool
    language: str


@dataclass(frozen=True)
class Override:
    """One row of ``oncall_overrides``: ``person`` holds the role during ``[starts_at, ends_at)``."""

    id: int
    schedule: str
    person: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    replaces: str | None = None
    note: str = ""
    created_at: dt.datetime | None = None
    created_by: str | None = None

    def covers(self, at: dt.datetime) -> bool:
        return self.starts_at <= at < self.ends_at


@dataclass(frozen=True)
class OnDuty:
    """Who holds an on-call role at an instant, since and until when, and who comes next.

    ``since``/``until`` bound the stint: the time around the instant in which the same person
    holds the role the same way (the same rotation shift, or the same override). ``until`` is the
    next handoff, to ``next_person``.
    """

    person: str
    source: Source
    since: dt.datetime
    until: dt.datetime
    next_person: str
    rotation_person: str
    override_id: int | None = None

    @property
    def next_handoff_at(self) -> dt.datetime:
        return self.until


class Rotation:
    """A schedule's rotation: which shift an instant falls in, and when shifts start."""

    def __init__(self, schedule: OncallScheduleSettings) -> None:
        self.people = tuple(schedule.people)
        self.zone = schedule.zone
        self.first_local = schedule.first_handoff
        self.shift = schedule.shift_length

    def handoff(self, index: int) -> dt.datetime:
        """When shift ``index`` starts (shift 0 is the first person's first shift), in UTC."""
        local = self.first_local + index * self.shift
        return local.replace(tzinfo=self.zone).astimezone(dt.UTC)

    def index_at(self, at: dt.datetime) -> int:
        """The shift holding ``at``: ``handoff(i) <= at < handoff(i + 1)``."""
        local = at.astimezone(self.zone).replace(tzinfo=None)
        index = (local - self.first_local) // self.shift
        while self.handoff(index) > at:
            index -= 1
        while self.handoff(index + 1) <= at:
            index += 1
        return index

    def person(self, index: int) -> str:
        return self.people[index % len(self.people)]


@dataclass(frozen=True)
class _Holder:
    person: str
    source: Source
    override_id: int | None
    rotation_person: str
    shift: int

    @property
    def stint(self) -> tuple[str, Source, int | None, int | None]:
        """Equal for two instants of one stint: a rotation stint ends at its shift's end."""
        return (self.person, self.source, self.override_id, self.shift if self.source == "rotation" else None)


def _require_aware(at: dt.datetime, what: str = "instant") -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"naive {what} {at.isoformat()}: give a time zone or UTC offset")


class _Resolver:
    def __init__(self, schedule: OncallScheduleSettings, overrides: Iterable[Override]) -> None:
        self.rotation = Rotation(schedule)
        self.newest_first = sorted(overrides, key=lambda o: o.id, reverse=True)
        self.boundaries = sorted({t for o in self.newest_first for t in (o.starts_at, o.ends_at)})

    def holder(self, at: dt.datetime) -> _Holder:
        shift = self.rotation.index_at(at)
        named = self.rotation.person(shift)
        for override in self.newest_first:
            if override.covers(at) and override.replaces in (None, named):
                return _Holder(override.person, "override", override.id, named, shift)
        return _Holder(named, "rotation", None, named, shift)

    def boundary_at_or_before(self, at: dt.datetime) -> dt.datetime:
        handoff = self.rotation.handoff(self.rotation.index_at(at))
        earlier = [t for t in self.boundaries if handoff < t <= at]
        return max(earlier, default=handoff)

    def boundary_after(self, at: dt.datetime) -> dt.datetime:
        handoff = self.rotation.handoff(self.rotation.index_at(at) + 1)
        later = [t for t in self.boundaries if at < t < handoff]
        return min(later, default=handoff)

    def on_duty(self, at: dt.datetime) -> OnDuty:
        now = self.holder(at)
        since = self.boundary_at_or_before(at)
        while self.holder(since - _TICK).stint == now.stint:
            since = self.boundary_at_or_before(since - _TICK)
        until = self.boundary_after(at)
        while (following := self.holder(until)).stint == now.stint:
            until = self.boundary_after(until)
        return OnDuty(
            person=now.person,
            source=now.source,
            since=since,
            until=until,
            next_person=following.person,
            rotation_person=now.rotation_person,
            override_id=now.override_id,
        )


def on_duty(schedule: OncallScheduleSettings, overrides: Iterable[Override], at: dt.datetime) -> OnDuty:
    """Who holds the role of ``schedule`` at ``at`` (timezone-aware), given these overrides.

    Pass every override of the schedule that overlaps the stint around ``at`` (more do no harm):
    those covering ``at`` decide who, the others only where the stint begins and ends.
    """
    _require_aware(at)
    return _Resolver(schedule, overrides).on_duty(at.astimezone(dt.UTC))


def stints(
    schedule: OncallScheduleSettings, overrides: Iterable[Override], start: dt.datetime, end: dt.datetime
) -> list[OnDuty]:
    """The successive stints from the one holding ``start`` until the one holding ``end``, exclusive."""
    _require_aware(start)
    _require_aware(end)
    resolver = _Resolver(schedule, overrides)
    found: list[OnDuty] = []
    at = start.astimezone(dt.UTC)
    while at < end:
        stint = resolver.on_duty(at)
        found.append(stint)
        at = stint.until
    return found


# --- the database side -----------------------------------------------------------------------


def _override(row: RowMapping) -> Override:
    return Override(
        id=int(row["id"]),
        schedule=row["schedule"],
        person=row["person"],
        starts_at=row["starts_at"],
        ends_at=row["ends_at"],
        replaces=row["replaces"],
        note=row["note"] or "",
        created_at=row["created_at"],
        created_by=row["created_by"],
    )


def add_override(
    engine: Engine,
    schedule: str,
    person: str,
    starts_at: dt.datetime,
    ends_at: dt.datetime,
    replaces: str | None = None,
    note: str = "",
    by: str | None = None,
) -> int:
    """Store an override and return its id. The caller checks the names against the configuration."""
    _require_aware(starts_at, "start")
    _require_aware(ends_at, "end")
    if ends_at <= starts_at:
        raise ValueError(
            f"the override ends ({ends_at.isoformat()}) before it starts ({starts_at.isoformat()})"
        )
    with engine.begin() as conn:
        result = conn.execute(
            insert(oncall_override_table).values(
                schedule=schedule,
                person=person,
                replaces=replaces,
                starts_at=starts_at,
                ends_at=ends_at,
                note=note,
                created_at=utcnow(),
                created_by=by,
            )
        )
        key = result.inserted_primary_key
        assert key is not None
        new_id = int(key[0])
    log.info("oncall override added", schedule=schedule, person=person, override_id=new_id, by=by)
    return new_id


def list_overrides(
    engine: Engine, schedule: str | None = None, since: dt.datetime | None = None
) -> list[Override]:
    """Overrides (of one schedule) that end after ``since`` (all of them without it), by start."""
    table = oncall_override_table
    query = select(table).order_by(table.c.starts_at, table.c.id)
    if schedule is not None:
        query = query.where(table.c.schedule == schedule)
    if since is not None:
        _require_aware(since)
        query = query.where(table.c.ends_at > since)
    with engine.connect() as conn:
        return [_override(row) for row in conn.execute(query).mappings()]


def remove_override(engine: Engine, override_id: int) -> bool:
    """Delete an override; False when there is none with that id."""
    with engine.begin() as conn:
        removed = conn.execute(
            delete(oncall_override_table).where(oncall_override_table.c.id == override_id)
        ).rowcount
    if removed:
        log.info("oncall override removed", override_id=override_id)
    return bool(removed)


def load_overrides(
    conn: Connection, schedule: str, at: dt.datetime, until: dt.datetime | None = None
) -> list[Override]:
    """The schedule's overrides covering ``at`` (or overlapping ``[at, until]``).

    Uses the (schedule, starts_at) index; a schedule holds a few overrides a week, so the rows
    left to filter on ``ends_at`` are few.
    """
    _require_aware(at)
    table = oncall_override_table
    query = select(table).where(
        table.c.schedule == schedule,
        table.c.starts_at <= (at if until is None else until),
        table.c.ends_at > at,
    )
    return [_override(row) for row in conn.execute(query).mappings()]


def _schedule(settings: Settings, schedule: str) -> OncallScheduleSettings:
    try:
        return settings.oncall[schedule]
    except KeyError:
        known = ", ".join(sorted(settings.oncall)) or "none"
        raise UnknownTarget(f"no on-call schedule named {schedule!r} (defined: {known})") from None


def _known_people(settings: Settings, overrides: Sequence[Override]) -> list[Override]:
    """The overrides naming a configured person; a stored override naming someone since removed
    from the configuration is skipped (and logged), so a page still reaches the rotation."""
    usable = []
    for override in overrides:
        if override.person in settings.people:
            usable.append(override)
        else:
            log.warning(
                "oncall override names an unknown person: ignored",
                schedule=override.schedule,
                person=override.person,
                override_id=override.id,
            )
    return usable


def who_is_on_duty(conn: Connection, settings: Settings, schedule: str, at: dt.datetime) -> OnDuty:
    """Who holds ``schedule`` at ``at``, with the overrides stored in the database.

    Two cheap indexed reads: the overrides covering ``at``, then those overlapping the stint's
    widest possible extent, so ``since``, ``until`` and ``next_person`` are exact too.
    """
    _require_aware(at)
    config = _schedule(settings, schedule)
    rotation = Rotation(config)
    shift = rotation.index_at(at)
    covering = load_overrides(conn, schedule, at)
    low = min([rotation.handoff(shift), *(o.starts_at for o in covering)])
    high = max([rotation.handoff(shift + 1), *(o.ends_at for o in covering)])
    nearby = load_overrides(conn, schedule, low, high)
    return on_duty(config, _known_people(settings, nearby), at)


def upcoming(
    conn: Connection, settings: Settings, schedule: str, start: dt.datetime, end: dt.datetime
) -> list[OnDuty]:
    """The stints of ``schedule`` from the one holding ``start`` until ``end``, overrides applied."""
    _require_aware(end)
    found: list[OnDuty] = []
    at = start
    while at < end:
        stint = who_is_on_duty(conn, settings, schedule, at)
        found.append(stint)
        at = stint.until
    return found


def find_person(settings: Settings, name: str) -> Person:
    """``[people.<name>]`` as a :class:`Person`."""
    try:
        entry = settings.people[name]
    except KeyError:
        raise UnknownTarget(f"no person named {name!r} in [people]") from None
    return Person(
        name=name,
        display_name=entry.display_name or name,
        phone=entry.phone,
        email=entry.email,
        sms=entry.sms,
        voice=entry.voice,
        language=entry.language,
    )


def resolve_target(
    conn: Connection, settings: Settings, target: Mapping[str, str], at: dt.datetime
) -> Person:
    """The person a page target means at ``at``: ``{"oncall": "<schedule>"}`` or ``{"person": "<name>"}``."""
    if set(target) == {"oncall"}:
        return find_person(settings, who_is_on_duty(conn, settings, target["oncall"], at).person)
    if set(target) == {"person"}:
        return find_person(settings, target["person"])
    raise UnknownTarget(f'a target is {{"oncall": SCHEDULE}} or {{"person": NAME}}, got {dict(target)!r}')
