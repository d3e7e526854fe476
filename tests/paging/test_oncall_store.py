"""Overrides in the database (SQLite and PostgreSQL) and the resolver the escalation engine calls."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine

from intaked.config import Settings, settings_from_mapping
from intaked.paging.oncall import (
    Person,
    UnknownTarget,
    add_override,
    list_overrides,
    load_overrides,
    remove_override,
    resolve_target,
    upcoming,
    who_is_on_duty,
)
from intaked.store.engine import make_engine
from intaked.store.migrate import upgrade

TAIPEI = ZoneInfo("Asia/Taipei")


def taipei(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=TAIPEI)  # type: ignore[misc]


def qrc_settings() -> Settings:
    """chen, lin, wang weekly from Monday 2026-11-02 09:00 Taipei (chen again from 11-23); huang directs."""
    return settings_from_mapping(
        {
            "people": {
                "chen": {"phone": "+886912345678", "email": "chen@example.com", "display_name": "陳志明"},
                "lin": {"phone": "+886912345679", "voice": False},
                "wang": {"phone": "+886912345680"},
                "zhang": {"phone": "+886912345681", "language": "en-US"},
                "huang": {"phone": "+886912345682"},
            },
            "oncall": {
                "qrc_duty": {"people": ["chen", "lin", "wang"], "start": "2026-11-02"},
                "qrc_backup": {"people": ["lin", "wang", "chen"], "start": "2026-11-02"},
                "qrc_director": {"people": ["huang"]},
            },
        },
        environ={},
    )


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def test_overrides_are_added_listed_loaded_and_removed(engine: Engine) -> None:
    first = add_override(
        engine,
        "qrc_duty",
        "zhang",
        taipei(2026, 11, 24, 0, 0),
        taipei(2026, 11, 25, 0, 0),
        note="sick",
        by="ops",
    )
    second = add_override(
        engine, "qrc_duty", "huang", taipei(2026, 12, 1, 0, 0), taipei(2026, 12, 2, 0, 0), replaces="lin"
    )
    other = add_override(engine, "qrc_backup", "chen", taipei(2026, 11, 20, 0, 0), taipei(2026, 11, 21, 0, 0))
    assert first < second < other

    every = list_overrides(engine)
    assert [o.id for o in every] == [other, first, second], "ordered by start"
    stored = every[1]
    assert (stored.schedule, stored.person, stored.replaces, stored.note, stored.created_by) == (
        "qrc_duty",
        "zhang",
        None,
        "sick",
        "ops",
    )
    assert stored.starts_at == taipei(2026, 11, 24, 0, 0) and stored.starts_at.tzinfo is not None
    assert [o.id for o in list_overrides(engine, "qrc_duty")] == [first, second]
    assert [o.id for o in list_overrides(engine, since=taipei(2026, 11, 24, 12, 0))] == [first, second]
    assert [o.id for o in list_overrides(engine, since=taipei(2026, 11, 25, 0, 0))] == [second], "ended"

    with engine.connect() as conn:
        assert [o.id for o in load_overrides(conn, "qrc_duty", taipei(2026, 11, 24, 0, 0))] == [first]
        assert load_overrides(conn, "qrc_duty", taipei(2026, 11, 25, 0, 0)) == [], "the end is exclusive"
        assert load_overrides(conn, "qrc_duty", taipei(2026, 11, 23, 23, 59, 59, 999999)) == []
        span = load_overrides(conn, "qrc_duty", taipei(2026, 11, 23, 0, 0), taipei(2026, 12, 1, 0, 0))
        assert sorted(o.id for o in span) == [first, second]

    assert remove_override(engine, first) is True
    assert remove_override(engine, first) is False
    assert [o.id for o in list_overrides(engine, "qrc_duty")] == [second]


def test_an_override_must_end_after_it_starts_and_know_its_time_zone(engine: Engine) -> None:
    with pytest.raises(ValueError, match="ends"):
        add_override(engine, "qrc_duty", "zhang", taipei(2026, 11, 25, 0, 0), taipei(2026, 11, 25, 0, 0))
    with pytest.raises(ValueError, match="naive"):
        add_override(engine, "qrc_duty", "zhang", dt.datetime(2026, 11, 25), taipei(2026, 11, 26, 0, 0))
    assert list_overrides(engine) == []


def test_who_is_on_duty_combines_the_rotation_and_stored_overrides(engine: Engine) -> None:
    settings = qrc_settings()
    at = taipei(2026, 11, 24, 12, 0)
    with engine.connect() as conn:
        plain = who_is_on_duty(conn, settings, "qrc_duty", at)
        assert (plain.person, plain.source, plain.until, plain.next_person) == (
            "chen",
            "rotation",
            taipei(2026, 11, 30, 9, 0),
            "lin",
        )
        assert who_is_on_duty(conn, settings, "qrc_backup", at).person == "lin"
        assert who_is_on_duty(conn, settings, "qrc_director", at).person == "huang"
    sick = add_override(engine, "qrc_duty", "zhang", taipei(2026, 11, 24, 0, 0), taipei(2026, 11, 25, 0, 0))
    # an override set later starting in the same shift: only it decides when zhang's stint ends
    newer = add_override(engine, "qrc_duty", "wang", taipei(2026, 11, 24, 18, 0), taipei(2026, 11, 24, 20, 0))
    with engine.connect() as conn:
        duty = who_is_on_duty(conn, settings, "qrc_duty", at)
        assert (duty.person, duty.source, duty.override_id, duty.since, duty.until, duty.next_person) == (
            "zhang",
            "override",
            sick,
            taipei(2026, 11, 24, 0, 0),
            taipei(2026, 11, 24, 18, 0),
            "wang",
        )
        evening = who_is_on_duty(conn, settings, "qrc_duty", taipei(2026, 11, 24, 19, 0))
        assert (evening.person, evening.override_id, evening.until, evening.next_person) == (
            "wang",
            newer,
            taipei(2026, 11, 24, 20, 0),
            "zhang",
        )
        later = who_is_on_duty(conn, settings, "qrc_duty", taipei(2026, 11, 24, 21, 0))
        assert (later.person, later.since, later.until) == (
            "zhang",
            taipei(2026, 11, 24, 20, 0),
            taipei(2026, 11, 25, 0, 0),
        )
        before = who_is_on_duty(conn, settings, "qrc_duty", taipei(2026, 11, 23, 12, 0))
        assert (before.person, before.until, before.next_person) == (
            "chen",
            taipei(2026, 11, 24, 0, 0),
            "zhang",
        )
        assert who_is_on_duty(conn, settings, "qrc_backup", at).person == "lin", "other schedules unchanged"
        shifts = upcoming(conn, settings, "qrc_duty", taipei(2026, 11, 23, 9, 0), taipei(2026, 12, 1, 0, 0))
        assert [s.person for s in shifts] == ["chen", "zhang", "wang", "zhang", "chen", "lin"]


def test_an_override_naming_someone_no_longer_configured_is_ignored(engine: Engine) -> None:
    add_override(
        engine, "qrc_duty", "left_the_company", taipei(2026, 11, 24, 0, 0), taipei(2026, 11, 25, 0, 0)
    )
    with engine.connect() as conn:
        assert who_is_on_duty(conn, qrc_settings(), "qrc_duty", taipei(2026, 11, 24, 12, 0)).person == "chen"


def test_resolve_target_gives_the_person_to_page(engine: Engine) -> None:
    settings = qrc_settings()
    add_override(
        engine, "qrc_backup", "zhang", taipei(2026, 11, 24, 0, 0), taipei(2026, 11, 25, 0, 0), replaces="lin"
    )
    at = taipei(2026, 11, 24, 3, 0)
    with engine.connect() as conn:
        assert resolve_target(conn, settings, {"oncall": "qrc_duty"}, at) == Person(
            name="chen",
            display_name="陳志明",
            phone="+886912345678",
            email="chen@example.com",
            sms=True,
            voice=True,
            language="zh-TW",
        )
        backup = resolve_target(conn, settings, {"oncall": "qrc_backup"}, at)
        assert (backup.name, backup.display_name, backup.language) == ("zhang", "zhang", "en-US")
        lin = resolve_target(conn, settings, {"person": "lin"}, at)
        assert (lin.name, lin.voice, lin.sms) == ("lin", False, True)
        with pytest.raises(UnknownTarget, match="no on-call schedule named 'qrc_night'"):
            resolve_target(conn, settings, {"oncall": "qrc_night"}, at)
        with pytest.raises(UnknownTarget, match="no person named 'nobody'"):
            resolve_target(conn, settings, {"person": "nobody"}, at)
        with pytest.raises(UnknownTarget, match="a target is"):
            resolve_target(conn, settings, {"team": "qrc"}, at)
