"""The metrics listener of a real daemon (its back office in processes of its own, SQLite and
the real PostgreSQL server): ``/metrics`` parsed with prometheus_client's parser moves when mail
arrives over real SMTP; ``/healthz`` answers; ``/readyz`` is 200 on a healthy daemon and 503,
naming the failed check, when a worker is silent or the schema is not the one expected."""

from __future__ import annotations

import datetime as dt
import os
import smtplib
import socket
from collections.abc import Iterator

import pytest
from sqlalchemy import insert

from intaked.store.models import worker_table
from intaked.store.types import utcnow
from tests.metrics.scrape import Samples, checks, get, readyz, scrape, total, value
from tests.support.daemon import DaemonThread, make_settings
from tests.support.waiting import wait_until

HELPDESK = "helpdesk@example.com"
REPORT = (
    b"From: Ming Wang <ming.wang@example.com>\r\nTo: helpdesk@example.com\r\n"
    b"Subject: MES is down\r\nMessage-ID: <metrics-1@example.com>\r\n\r\nNobody can log in.\r\n"
)


@pytest.fixture
def daemon(db_url: str) -> Iterator[DaemonThread]:
    settings = make_settings(
        db_url,
        smtp_intake={"recipients": [HELPDESK]},
        metrics={"listen": "127.0.0.1:0"},
        # a long lease: the front judges nobody silent while a test runs
        daemon={"heartbeat_seconds": 0.5, "lease_seconds": 60},
    )
    thread = DaemonThread(settings).start()
    yield thread
    thread.stop()


def port_of(daemon: DaemonThread) -> int:
    assert daemon.daemon.metrics_address is not None
    return daemon.daemon.metrics_address[1]


def test_healthz_answers_ok(daemon: DaemonThread) -> None:
    assert get(port_of(daemon), "/healthz")[::2] == (200, "ok\n")


def test_the_figures_move_when_mail_arrives_over_smtp(daemon: DaemonThread) -> None:
    port = port_of(daemon)
    before = scrape(port)
    assert value(before, "intaked_store_up") == 1
    assert total(before, "intaked_inbound_items") == 0
    assert total(before, "intaked_tickets") == 0
    with smtplib.SMTP("127.0.0.1", daemon.smtp_port) as client:
        client.sendmail("ming.wang@example.com", [HELPDESK], REPORT)

    def filed() -> Samples | None:
        samples = scrape(port)
        return samples if value(samples, "intaked_tickets", status="new") == 1 else None

    after = wait_until(filed, what="the ticket in /metrics")
    assert value(after, "intaked_inbound_items", channel="smtp", state="done") == 1
    assert value(after, "intaked_ledger_backlog_items") == 0
    assert value(after, "intaked_ledger_oldest_age_seconds") == 0
    assert value(after, "intaked_ledger_quarantined_items") == 0
    assert value(after, "intaked_sla_breaches_total", target="response") == 0
    roles = {
        dict(labels)["role"] for (name, labels) in after if name == "intaked_worker_heartbeat_age_seconds"
    }
    assert "front" in roles


def test_readyz_is_ready_on_a_healthy_daemon(daemon: DaemonThread) -> None:
    _, answer = wait_until(
        lambda: (r := readyz(port_of(daemon)))[0] == 200 and r, what="/readyz 200 (the back office up)"
    )
    assert answer["ready"] is True
    assert checks(answer) == {"database": True, "schema": True, "workers": True}
    assert value(scrape(port_of(daemon)), "intaked_ready") == 1


def test_readyz_names_a_worker_whose_heartbeat_is_stale(daemon: DaemonThread) -> None:
    port = port_of(daemon)
    wait_until(lambda: readyz(port)[0] == 200, what="/readyz 200 (the back office up)")
    stale = utcnow() - dt.timedelta(seconds=120)
    with daemon.engine.begin() as conn:
        conn.execute(
            insert(worker_table).values(
                id="stuck-worker",
                node=socket.gethostname(),
                role="back_office.intake",
                pid=os.getpid(),  # a process that exists: only its silence gives it away
                state="alive",
                started_at=stale,
                heartbeat_at=stale,
                lease_seconds=5.0,
            )
        )
    status, answer = readyz(port)
    assert status == 503
    assert answer["ready"] is False
    assert checks(answer) == {"database": True, "schema": True, "workers": False}
    detail = next(c["detail"] for c in answer["checks"] if c["name"] == "workers")
    assert "stuck-worker" in detail and "no heartbeat for 120s" in detail
    samples = scrape(port)
    assert value(samples, "intaked_ready") == 0
    assert value(samples, "intaked_readiness_check", check="workers") == 0
    assert value(samples, "intaked_readiness_check", check="database") == 1
    age = value(
        samples,
        "intaked_worker_heartbeat_age_seconds",
        node=socket.gethostname(),
        role="back_office.intake",
        worker="stuck-worker",
    )
    assert age >= 120


def test_readyz_names_a_schema_that_is_not_current(daemon: DaemonThread) -> None:
    port = port_of(daemon)
    wait_until(lambda: readyz(port)[0] == 200, what="/readyz 200 (the back office up)")
    with daemon.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0001'")
    status, answer = readyz(port)
    assert status == 503
    assert checks(answer)["schema"] is False
    assert checks(answer)["database"] is True
    detail = next(c["detail"] for c in answer["checks"] if c["name"] == "schema")
    assert "at revision 0001" in detail
