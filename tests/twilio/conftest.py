"""Fixtures of the Twilio tests: settings, a migrated store with a page, Prism, the fake network.

``prism_mock`` (session): ``prism mock`` over Twilio's spec, for request validity alone.
``phone`` (session network, reset per test): the fake phone network (tests/support/phone.py);
``twilio_api_url`` is where ``twilio.api_base_url`` points: ``prism proxy --errors`` in front of
the fake, or the fake itself when Prism cannot run (the reason is printed on stderr). Script a
number with ``phone.script("+886...", Script.BUSY)``.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select

from intaked.config import Settings, settings_from_mapping
from intaked.store.engine import make_engine
from intaked.store.migrate import upgrade
from intaked.store.models import page_attempt_table, page_table, ticket_table
from tests.support.phone import FakePhoneNetwork
from tests.support.prism import Prism, prism_unavailable_reason, run_prism

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "current-token-0123456789abcdef"
PREVIOUS_TOKEN = "previous-token-0123456789abcdef"
FROM_NUMBER = "+886212345678"
PUBLIC_URL = "https://intaked.example.com"


def twilio_settings(api_base_url: str = "https://api.twilio.com", **overrides: Any) -> Settings:
    """Settings with paging on: the test account, webhooks on a free port, ``overrides`` per section."""
    data: dict[str, Any] = {
        "twilio": {
            "account_sid": ACCOUNT_SID,
            "auth_token": AUTH_TOKEN,
            "previous_auth_token": PREVIOUS_TOKEN,
            "from_number": FROM_NUMBER,
            "api_base_url": api_base_url,
            "timeout_seconds": 2.0,
        },
        "webhooks": {"listen": "127.0.0.1:0", "public_url": PUBLIC_URL},
        "outbox": {"retry_base_seconds": 0.05, "retry_max_seconds": 0.2, "poll_seconds": 0.05},
    }
    for section, values in overrides.items():
        data.setdefault(section, {}).update(values)
    return settings_from_mapping(data, environ={})


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """A migrated store (SQLite, and PostgreSQL when reachable)."""
    engine = make_engine(db_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def make_page(engine: Engine, number: str = "IT-202611-00001") -> int:
    """A ticket with an active P1 page; returns the page's id."""
    now = dt.datetime.now(dt.UTC)
    with engine.begin() as conn:
        ticket_id = conn.execute(
            insert(ticket_table)
            .values(
                number=number,
                channel="smtp",
                subject="產線停工",
                priority="P1",
                created_at=now,
                updated_at=now,
            )
            .returning(ticket_table.c.id)
        ).scalar_one()
        return int(
            conn.execute(
                insert(page_table)
                .values(
                    ticket_id=ticket_id,
                    priority="P1",
                    state="active",
                    reason="triaged by test",
                    policy=json.dumps({"steps": []}),
                    step=0,
                    round=0,
                    fence=0,
                    reply_code=number[-4:],
                    started_at=now,
                    updated_at=now,
                )
                .returning(page_table.c.id)
            ).scalar_one()
        )


def make_attempt(engine: Engine, page_id: int, channel: str, address: str, **values: Any) -> int:
    """A page attempt (status ``queued`` unless given); returns its id."""
    with engine.begin() as conn:
        count = len(conn.execute(select(page_attempt_table.c.id)).all())
        row = {
            "page_id": page_id,
            "round": 0,
            "step": 0,
            "person": f"person{count}",
            "channel": channel,
            "retry": 0,
            "address": address,
            "status": "queued",
            "created_at": dt.datetime.now(dt.UTC),
        } | values
        return int(
            conn.execute(
                insert(page_attempt_table).values(**row).returning(page_attempt_table.c.id)
            ).scalar_one()
        )


def attempt(engine: Engine, attempt_id: int) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(page_attempt_table).where(page_attempt_table.c.id == attempt_id)).one()


def page(engine: Engine, page_id: int) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(page_table).where(page_table.c.id == page_id)).one()


@pytest.fixture(scope="session")
def prism_mock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prism]:
    reason = prism_unavailable_reason()
    if reason:
        pytest.skip(reason)
    with run_prism("mock", tmp_path_factory.mktemp("prism")) as prism:
        yield prism


@pytest.fixture(scope="session")
def _phone_session() -> Iterator[FakePhoneNetwork]:
    with FakePhoneNetwork(ACCOUNT_SID, AUTH_TOKEN) as network:
        yield network


@pytest.fixture(scope="session")
def twilio_api_url(
    _phone_session: FakePhoneNetwork, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """``prism proxy --errors`` in front of the fake network, or the fake itself without Prism."""
    reason = prism_unavailable_reason()
    if reason:
        print(f"the fake phone network runs without Prism's checks: {reason}", file=sys.stderr)
        yield _phone_session.base_url
        return
    with run_prism(
        "proxy", tmp_path_factory.mktemp("prism-proxy"), upstream=_phone_session.base_url
    ) as prism:
        yield prism.base_url


@pytest.fixture
def phone(_phone_session: FakePhoneNetwork) -> Iterator[FakePhoneNetwork]:
    """The fake phone network, fresh for each test."""
    _phone_session.reset()
    yield _phone_session
    _phone_session.wait_idle()
    _phone_session.reset()


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    return tmp_path
