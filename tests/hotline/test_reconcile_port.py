"""Hotline reconciliation on the phone provider port, with the in-memory fake provider: a call
the provider lists is filed once; a provider that fails leaves the checkpoint's error and files
nothing. (Over Twilio's HTTP API, with the fake phone network behind Prism: test_reconcile.py.)"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from intaked.hotline.reconcile import reconcile_calls
from intaked.ports.phone import ListedCall, TemporaryFailure
from intaked.store.engine import make_engine
from intaked.store.migrate import upgrade
from intaked.store.models import call_table, hotline_checkpoint_table, ticket_table
from tests.hotline.conftest import HOTLINE, MOBILE_UNKNOWN, hotline_settings
from tests.support.fake_phone import FakePhoneProvider

CALL_SID = "CA" + "5" * 32


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'intaked.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


def rows(engine: Engine, table: Any) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(table)).mappings())


def listed(now: dt.datetime) -> ListedCall:
    return ListedCall(
        sid=CALL_SID,
        from_number=MOBILE_UNKNOWN,
        to=HOTLINE,
        status="completed",
        direction="inbound",
        start_time=now - dt.timedelta(minutes=2),
        duration=7,
        caller_name=None,
    )


def test_a_listed_call_is_filed_once(tmp_path: Path, engine: Engine) -> None:
    settings = hotline_settings(tmp_path)
    now = dt.datetime.now(dt.UTC)
    provider = FakePhoneProvider(listed_calls=[listed(now)])
    assert reconcile_calls(engine, settings, provider, now=now) == 1
    assert reconcile_calls(engine, settings, provider, now=now) == 0, "nothing twice"
    (call,) = rows(engine, call_table)
    assert (call["call_sid"], call["source"], call["outcome"]) == (CALL_SID, "reconciliation", "missed")
    (ticket,) = rows(engine, ticket_table)
    assert ticket["id"] == call["ticket_id"] and ticket["callback_requested"] is True


def test_a_provider_failure_is_kept_on_the_checkpoint_and_files_nothing(
    tmp_path: Path, engine: Engine
) -> None:
    settings = hotline_settings(tmp_path)
    now = dt.datetime.now(dt.UTC)
    provider = FakePhoneProvider(listed_calls=[listed(now)])
    provider.fail_next("list_calls_to", TemporaryFailure("list calls: HTTP 503", status=503))
    assert reconcile_calls(engine, settings, provider, now=now) == 0
    assert rows(engine, call_table) == []
    (checkpoint,) = rows(engine, hotline_checkpoint_table)
    assert "HTTP 503" in (checkpoint["last_error"] or "")
