"""Webhooks of one caller racing on several database threads (and daemons): the same CallSid,
or two calls from one number, still file one ticket."""

from __future__ import annotations

import datetime as dt
import threading
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import Engine, func, select

from intaked.config import Settings
from intaked.hotline.calls import CallFacts, FiledCall, record_call
from intaked.store.models import call_table, outbox_table, ticket_table
from tests.hotline.conftest import HOTLINE, MOBILE_UNKNOWN

RACERS = 6


def count(engine: Engine, table: object) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def race(engine: Engine, settings: Settings, sids: list[str]) -> list[FiledCall]:
    barrier = threading.Barrier(len(sids))
    now = dt.datetime.now(dt.UTC)

    def file(sid: str) -> FiledCall:
        barrier.wait()
        with engine.begin() as conn:
            return record_call(
                conn, settings, CallFacts(sid, MOBILE_UNKNOWN, HOTLINE, None, now, "ringing"), now
            )

    with ThreadPoolExecutor(len(sids)) as pool:
        return list(pool.map(file, sids))


def test_the_same_callsid_racing_files_one_ticket(engine: Engine, settings: Settings) -> None:
    filed = race(engine, settings, ["CA" + "c" * 32] * RACERS)
    assert sum(f.created for f in filed) == 1 and len({f.ticket_id for f in filed}) == 1
    assert (count(engine, ticket_table), count(engine, call_table), count(engine, outbox_table)) == (1, 1, 1)


def test_calls_of_one_number_racing_join_one_ticket(engine: Engine, settings: Settings) -> None:
    filed = race(engine, settings, [f"CA{n:032x}" for n in range(RACERS)])
    assert all(f.created for f in filed) and sum(not f.joined for f in filed) == 1
    assert len({f.ticket_id for f in filed}) == 1
    assert (count(engine, ticket_table), count(engine, call_table), count(engine, outbox_table)) == (
        1,
        RACERS,
        1,
    )
