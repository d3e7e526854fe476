"""Benchmark: SLA deadline computations per second on the default working calendar.

    .venv/bin/python bench/sla_deadlines.py [--pairs 200000] [--repeat 3] [--seed 1]

Random (start, priority) pairs: starts uniformly over 2026 (aware, UTC, as stored), priorities
P1-P4 mixed; each pair gets both its deadlines (response and resolution) from DEFAULT_POLICIES on
the default calendar (Asia/Taipei, TW holidays). Measured, best of ``--repeat`` passes:
- baseline (the 24x7 limit): plain ``start + timedelta`` on the same starts and lengths;
- ``Target.deadline`` for every target, both clocks mixed;
- ``WorkingCalendar.add_working_time`` alone, the working-clock targets only (4 h to 5 days);
- ``add_working_time`` for random amounts from 15 minutes to 5 working days;
- ``working_time_between`` back from each working-clock deadline (the inverse).
Printed too: the first deadline of a fresh calendar (it loads the year's holidays and intervals).
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from intaked.sla.calendar import CalendarSpec, WorkingCalendar  # noqa: E402
from intaked.sla.targets import DEFAULT_POLICIES, Target  # noqa: E402

YEAR_START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
SECONDS_IN_YEAR = 365 * 24 * 3600
PRIORITIES = sorted(DEFAULT_POLICIES)


def random_starts(rng: random.Random, count: int) -> list[dt.datetime]:
    return [YEAR_START + dt.timedelta(seconds=rng.randrange(SECONDS_IN_YEAR)) for _ in range(count)]


def best_seconds(run: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        began = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - began)
    return best


def first_deadline_ms() -> float:
    began = time.perf_counter()
    DEFAULT_POLICIES["P3"].resolution.deadline(WorkingCalendar(CalendarSpec()), YEAR_START)
    return (time.perf_counter() - began) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    cold_ms = first_deadline_ms()
    calendar = WorkingCalendar(CalendarSpec())
    starts = random_starts(rng, args.pairs)
    policies = [DEFAULT_POLICIES[rng.choice(PRIORITIES)] for _ in starts]
    jobs: list[tuple[Target, dt.datetime]] = [
        (target, start)
        for start, policy in zip(starts, policies, strict=True)
        for target in (policy.response, policy.resolution)
    ]
    lengths = [(start, target.length(calendar)) for target, start in jobs]
    working = [
        (start, length)
        for (target, start), (_, length) in zip(jobs, lengths, strict=True)
        if target.clock == "working"
    ]
    quarter_hours = [(start, rng.randrange(1, 5 * 8 * 4 + 1) * dt.timedelta(minutes=15)) for start in starts]
    deadlines = [
        (start, calendar.add_working_time(start, length)) for start, length in working
    ]  # also warms up

    def baseline() -> None:
        for start, length in lengths:
            _ = start + length

    def targets() -> None:
        for target, start in jobs:
            target.deadline(calendar, start)

    def add_working(pairs: list[tuple[dt.datetime, dt.timedelta]]) -> Callable[[], None]:
        def run() -> None:
            for start, length in pairs:
                calendar.add_working_time(start, length)

        return run

    def between() -> None:
        for start, end in deadlines:
            calendar.working_time_between(start, end)

    rows = [
        ("baseline: start + timedelta (24x7 limit)", len(lengths), baseline),
        ("Target.deadline, P1-P4 mixed, both targets", len(jobs), targets),
        ("add_working_time, working-clock targets", len(working), add_working(working)),
        ("add_working_time, 15 min .. 5 working days", len(quarter_hours), add_working(quarter_hours)),
        ("working_time_between (the inverse)", len(deadlines), between),
    ]
    results = [(label, count, best_seconds(run, args.repeat)) for label, count, run in rows]
    baseline_rate = results[0][1] / results[0][2]

    print(f"{args.pairs} (start, priority) pairs over 2026, default calendar; best of {args.repeat}")
    print(f"first deadline of a fresh calendar (loads 2026's holidays): {cold_ms:.1f} ms\n")
    print(
        f"{'computation':<46} {'count':>8} {'seconds':>8} {'per second':>12} {'µs each':>8} {'x slower':>10}"
    )
    for label, count, seconds in results:
        rate = count / seconds
        slower = baseline_rate / rate
        print(f"{label:<46} {count:>8} {seconds:>8.3f} {rate:>12,.0f} {1e6 / rate:>8.2f} {slower:>10.1f}")


if __name__ == "__main__":
    main()
