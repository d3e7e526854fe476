"""The service-level report over the fixed two-week scenario (tests/reports/scenario.py), on
SQLite and PostgreSQL: every figure of the JSON against values worked out by hand, seed 003's
example among them (5 handled, 3 on time, 2 late: completion rate 1.0, service level 0.6), and
the period's edges in Asia/Taipei."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine

from intaked.config import Settings, settings_from_mapping
from intaked.reports.service_level import ReportError, build_report, period_bounds
from intaked.store.engine import make_engine
from intaked.store.migrate import upgrade
from tests.reports.scenario import WEEK1, WEEK2, load

NONE = {"triage_met": None, "triage_count": 0, "response_met": None, "response_count": 0}
NO_SLA = {**NONE, "resolution_met": None, "resolution_count": 0}


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    upgrade(engine)
    load(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def settings(db_url: str) -> Settings:
    return settings_from_mapping({"database": {"url": db_url}}, environ={})


def sla(**priorities: tuple[int, int, int, int, int, int]) -> dict[str, dict[str, Any]]:
    """The ``sla`` object: per priority (met, decided) of triage, response and resolution, as
    counts (the fractions follow); priorities not given decided nothing. ``untriaged`` stands
    for ``(untriaged)``."""
    out: dict[str, dict[str, Any]] = {}
    for priority in ("P1", "P2", "P3", "P4", "untriaged"):
        figures = priorities.get(priority, (0, 0, 0, 0, 0, 0))
        clocks: dict[str, Any] = {}
        for i, clock in enumerate(("triage", "response", "resolution")):
            met, decided = figures[2 * i], figures[2 * i + 1]
            clocks[f"{clock}_met"] = round(met / decided, 4) if decided else None
            clocks[f"{clock}_count"] = decided
        out["(untriaged)" if priority == "untriaged" else priority] = clocks
    return out


def row(group: str, **figures: Any) -> dict[str, Any]:
    """A report row: every key, in order, with the figures given."""
    keys = ROW_KEYS_IN_ORDER
    assert set(figures) == set(keys), set(keys) ^ set(figures)
    return {"group": group, **{key: figures[key] for key in keys}}


ROW_KEYS_IN_ORDER = [
    "carried_over",
    "new",
    "handled",
    "on_time",
    "open_not_overdue",
    "late",
    "escalated_once",
    "escalated_twice",
    "escalated_3_plus",
    "completion_rate",
    "avg_escalations",
    "service_level",
    "commitment_kept_rate",
    "first_commitment_kept_rate",
    "standard_met_rate",
    "satisfaction_responses",
    "satisfaction_avg",
    "satisfaction_distribution",
    "sla",
]


def scores(**counts: int) -> dict[str, int]:
    return {str(score): counts.get(f"s{score}", 0) for score in range(1, 6)}


# Week 2, team desk: seed 003's example. D1-D3 on time, D4 and D5 late; D4 escalated once, D5
# twice (avg (1 + 2) / 5); first commitment and standard kept by D1 and D2 only; surveys 5, 4, 2.
DESK_WEEK2 = row(
    "desk",
    carried_over=0,
    new=5,
    handled=5,
    on_time=3,
    open_not_overdue=0,
    late=2,
    escalated_once=1,
    escalated_twice=1,
    escalated_3_plus=0,
    completion_rate=1.0,
    avg_escalations=0.6,
    service_level=0.6,
    commitment_kept_rate=0.6,
    first_commitment_kept_rate=0.4,
    standard_met_rate=0.4,
    satisfaction_responses=3,
    satisfaction_avg=3.6667,
    satisfaction_distribution=scores(s2=1, s4=1, s5=1),
    # triage: D3 met (P2); D1, D4 met, D2 late (P3); D5 late (P4). Response: all met.
    # Resolution: D3 (P2), D4 (P3), D5 (P4) missed; D1, D2 met.
    sla=sla(P2=(1, 1, 1, 1, 0, 1), P3=(2, 3, 3, 3, 2, 3), P4=(0, 1, 1, 1, 0, 1)),
)
# Week 2, team network: N1, N2 carried over; N3, N4 (23:30 on the last day), N8 new; N5 (00:00
# the next day) out; N6 spam. Completed: N1 (by its extended commitment) and N8 (closed): both
# on time. Open: N2 (commitment after the week) and N4 (none) not overdue, N3 overdue.
# Escalations: N2 3, N3 1 (avg 4 / 5). First commitment and standard: N8 kept them, N1 not.
# Surveys in week 2: N7 (completed in week 1) 3 and N8 1.
NETWORK_WEEK2 = row(
    "network",
    carried_over=2,
    new=3,
    handled=5,
    on_time=2,
    open_not_overdue=2,
    late=0,
    escalated_once=1,
    escalated_twice=0,
    escalated_3_plus=1,
    completion_rate=0.4,
    avg_escalations=0.8,
    service_level=0.4,
    commitment_kept_rate=1.0,
    first_commitment_kept_rate=0.5,
    standard_met_rate=0.5,
    satisfaction_responses=2,
    satisfaction_avg=2.0,
    satisfaction_distribution=scores(s1=1, s3=1),
    # P3: N3 triaged in time, its response and resolution missed, N2's resolution missed (N2's
    # triage and response were in week 1); P4: N8 met all three; N4's triage missed at 23:45.
    sla=sla(P3=(1, 1, 0, 1, 0, 2), P4=(1, 1, 1, 1, 1, 1), untriaged=(0, 1, 0, 0, 0, 0)),
)
TOTAL_WEEK2 = row(
    "all",
    carried_over=2,
    new=8,
    handled=10,
    on_time=5,
    open_not_overdue=2,
    late=2,
    escalated_once=2,
    escalated_twice=1,
    escalated_3_plus=1,
    completion_rate=0.7,
    avg_escalations=0.7,
    service_level=0.5,
    commitment_kept_rate=0.7143,
    first_commitment_kept_rate=0.4286,
    standard_met_rate=0.4286,
    satisfaction_responses=5,
    satisfaction_avg=3.0,
    satisfaction_distribution=scores(s1=1, s2=1, s3=1, s4=1, s5=1),
    sla=sla(
        P2=(1, 1, 1, 1, 0, 1), P3=(3, 4, 3, 4, 2, 5), P4=(1, 2, 2, 2, 1, 2), untriaged=(0, 1, 0, 0, 0, 0)
    ),
)
# Week 1: N1, N2, N7 new; N7 completed on time; N1 and N2 open, their commitments (as they stand
# now) after the week; N2 escalated three times. N1's resolution target was missed in week 1.
NETWORK_WEEK1 = row(
    "network",
    carried_over=0,
    new=3,
    handled=3,
    on_time=1,
    open_not_overdue=2,
    late=0,
    escalated_once=0,
    escalated_twice=0,
    escalated_3_plus=1,
    completion_rate=0.3333,
    avg_escalations=1.0,
    service_level=0.3333,
    commitment_kept_rate=1.0,
    first_commitment_kept_rate=1.0,
    standard_met_rate=1.0,
    satisfaction_responses=0,
    satisfaction_avg=None,
    satisfaction_distribution=scores(),
    sla=sla(P2=(1, 1, 1, 1, 0, 1), P3=(1, 1, 1, 1, 0, 0), P4=(1, 1, 1, 1, 1, 1)),
)


def test_week_two_by_team_every_figure(engine: Engine, settings: Settings) -> None:
    report = build_report(engine, settings, *WEEK2)
    assert [list(r) for r in report["rows"]] == [list(TOTAL_WEEK2)] * 2  # the keys, in order
    assert list(report["total"]) == ["group", *ROW_KEYS_IN_ORDER]
    assert report == {
        "period": {"from": "2026-11-09", "to": "2026-11-15"},
        "by": "team",
        "timezone": "Asia/Taipei",
        "rows": [DESK_WEEK2, NETWORK_WEEK2],
        "total": TOTAL_WEEK2,
        # six calls started in week 2 (the one at 00:00 on the 16th did not); the desk's answer
        # times 20 s and 40 s (one answered call has none)
        "hotline": {
            "calls": 6,
            "answered_by_desk": 3,
            "voicemail": 1,
            "missed": 2,
            "missed_rate": 0.3333,
            "avg_answer_seconds": 30.0,
        },
        "rca": [],  # no major incident was resolved
    }


def test_seed_example_five_handled_three_on_time_two_late(engine: Engine, settings: Settings) -> None:
    (desk, _) = build_report(engine, settings, *WEEK2)["rows"]
    assert (desk["handled"], desk["on_time"], desk["late"]) == (5, 3, 2)
    assert (desk["completion_rate"], desk["service_level"]) == (1.0, 0.6)


def test_week_one_every_figure(engine: Engine, settings: Settings) -> None:
    report = build_report(engine, settings, *WEEK1)
    assert report["period"] == {"from": "2026-11-02", "to": "2026-11-08"}
    assert report["rows"] == [NETWORK_WEEK1]
    assert report["total"] == {**NETWORK_WEEK1, "group": "all"}
    assert report["hotline"] == {
        "calls": 1,
        "answered_by_desk": 1,
        "voicemail": 0,
        "missed": 0,
        "missed_rate": 0.0,
        "avg_answer_seconds": 10.0,
    }


def test_by_handler_and_by_priority_regroup_the_same_total(engine: Engine, settings: Settings) -> None:
    by_handler = build_report(engine, settings, *WEEK2, by="handler")
    handled = {
        r["group"]: (r["handled"], r["on_time"], r["late"], r["satisfaction_responses"])
        for r in by_handler["rows"]
    }
    # chen: D1, D2, D5; lin: D3, D4; wang: N1, N2, N8 (+ N7's survey); nobody took N3 and N4
    assert handled == {
        "(none)": (2, 0, 0, 0),
        "chen": (3, 2, 1, 2),
        "lin": (2, 1, 1, 1),
        "wang": (3, 2, 0, 2),
    }
    assert by_handler["total"] == TOTAL_WEEK2
    by_priority = build_report(engine, settings, *WEEK2, by="priority")
    handled = {
        r["group"]: (r["handled"], r["on_time"], r["late"], r["satisfaction_responses"])
        for r in by_priority["rows"]
    }
    # P2: D3, N1; P3: D1, D2, D4, N2, N3; P4: D5, N8 (+ N7's survey); untriaged: N4
    assert handled == {
        "(untriaged)": (1, 0, 0, 0),
        "P2": (2, 2, 0, 0),
        "P3": (5, 2, 1, 3),
        "P4": (2, 1, 1, 2),
    }
    assert by_priority["total"] == TOTAL_WEEK2
    # grouped by priority, a group's SLA figures are its own priority's
    p3 = next(r for r in by_priority["rows"] if r["group"] == "P3")
    assert p3["sla"]["P3"] == TOTAL_WEEK2["sla"]["P3"] and p3["sla"]["P4"]["triage_count"] == 0


def test_the_period_is_local_days_and_23_30_on_the_last_day_is_in(engine: Engine, settings: Settings) -> None:
    bounds = period_bounds(*WEEK2, "Asia/Taipei", now=dt.datetime(2027, 1, 1, tzinfo=dt.UTC))
    assert bounds.start == dt.datetime(2026, 11, 8, 16, tzinfo=dt.UTC)  # Mon 00:00 in Taipei
    assert bounds.end == dt.datetime(2026, 11, 15, 16, tzinfo=dt.UTC)  # Mon 16th 00:00: out
    last_day = build_report(engine, settings, dt.date(2026, 11, 15), dt.date(2026, 11, 15))
    (network,) = last_day["rows"]
    assert (network["carried_over"], network["new"]) == (2, 1)  # N2, N3 carried; N4 (23:30) new
    next_day = build_report(engine, settings, dt.date(2026, 11, 16), dt.date(2026, 11, 16))
    (network,) = next_day["rows"]
    assert (network["carried_over"], network["new"]) == (3, 1)  # N2, N3, N4 carried; N5 (00:00) new
    assert next_day["hotline"]["calls"] == 1 and last_day["hotline"]["calls"] == 1


def test_a_period_without_tickets_has_no_rows_and_null_rates(engine: Engine, settings: Settings) -> None:
    report = build_report(engine, settings, dt.date(2026, 10, 1), dt.date(2026, 10, 31))
    assert report["rows"] == []
    assert report["total"] == row(
        "all",
        carried_over=0,
        new=0,
        handled=0,
        on_time=0,
        open_not_overdue=0,
        late=0,
        escalated_once=0,
        escalated_twice=0,
        escalated_3_plus=0,
        completion_rate=None,
        avg_escalations=None,
        service_level=None,
        commitment_kept_rate=None,
        first_commitment_kept_rate=None,
        standard_met_rate=None,
        satisfaction_responses=0,
        satisfaction_avg=None,
        satisfaction_distribution=scores(),
        sla=sla(),
    )
    assert report["hotline"]["missed_rate"] is None and report["hotline"]["avg_answer_seconds"] is None


def test_a_period_ending_before_it_starts_or_an_unknown_grouping_is_refused(
    engine: Engine, settings: Settings
) -> None:
    with pytest.raises(ReportError, match="ends"):
        build_report(engine, settings, dt.date(2026, 11, 9), dt.date(2026, 11, 8))
    with pytest.raises(ReportError, match="team, handler, priority"):
        build_report(engine, settings, *WEEK2, by="site")


def test_while_the_period_runs_only_deadlines_already_past_count_as_missed() -> None:
    running = period_bounds(*WEEK2, "Asia/Taipei", now=dt.datetime(2026, 11, 12, 4, tzinfo=dt.UTC))
    assert running.decided_before == dt.datetime(2026, 11, 12, 4, tzinfo=dt.UTC)
    ahead = period_bounds(*WEEK2, "Asia/Taipei", now=dt.datetime(2026, 11, 1, tzinfo=dt.UTC))
    assert ahead.decided_before == ahead.start
    past = period_bounds(*WEEK2, "Asia/Taipei", now=dt.datetime(2027, 1, 1, tzinfo=dt.UTC))
    assert past.decided_before == past.end
