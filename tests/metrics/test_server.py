"""The metrics listener of a real daemon (its back office in processes of its own, SQLite and
the real PostgreSQL server): ``/metrics`` parsed with prometheus_client's parser moves when mail
arrives over real SMTP; ``/healthz`` answers; ``/readyz`` is 200 on a healthy daemon and 503,
naming the failed check, when a worker is silent or the schema is not the one expected."""

from __future__ import annotations

import datetime as dt
import os
import smtplib
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import insert

from intaked.store.liveness import node_name
from intaked.store.models import worker_table
from intaked.store.types import utcnow
from tests.metrics.scrape import Samples, checks, get, readyz, scrape, total, value
from tests.metrics.test_alert_rules import named_metrics
from tests.support.daemon import DaemonThread, make_settings
from tests.support.smtpsink import SmtpSink
from tests.support.waiting import wait_until

HELPDESK = "helpdesk@example.com"
REPORT = (
    b"From: Ming Wang <ming.wang@example.com>\r\nTo: helpdesk@example.com\r\n"
    b"Subject: MES is down\r\nMessage-ID: <metrics-1@example.com>\r\n\r\nNobody can log in.\r\n"
)


@pytest.fixture
def daemon(db_url: str, sink: SmtpSink) -> Iterator[DaemonThread]:
    settings = make_settings(
        db_url,
        smtp_intake={"recipients": [HELPDESK]},
        outbound_mail={"host": "127.0.0.1", "port": sink.port, "from_address": HELPDESK},
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


#: Its body is Big5 with bytes no Big5 text has: filed, with a parse problem.
GARBLED = (
    b"From: Mei Lin <mei.lin@example.com>\r\nTo: helpdesk@example.com\r\nSubject: VPN\r\n"
    b"Message-ID: <metrics-2@example.com>\r\nContent-Type: text/plain; charset=big5\r\n\r\n"
    b"\xff\xff\xa4\r\n"
)


def test_what_the_back_office_observed_is_served_by_the_front(daemon: DaemonThread, sink: SmtpSink) -> None:
    """The acknowledgement's latency and the parse problems are counted in the back office's own
    processes; the front's /metrics adds them up."""
    port = port_of(daemon)
    before = scrape(port)
    assert value(before, "intaked_ack_latency_seconds_count") == 0
    assert value(before, "intaked_parse_problems_total") == 0
    with smtplib.SMTP("127.0.0.1", daemon.smtp_port) as client:
        client.sendmail("ming.wang@example.com", [HELPDESK], REPORT)
        client.sendmail("mei.lin@example.com", [HELPDESK], GARBLED)
    wait_until(lambda: len(sink.messages()) == 2, what="both acknowledgements at the sink")

    def observed() -> Samples | None:
        samples = scrape(port)
        return samples if value(samples, "intaked_ack_latency_seconds_count") == 2 else None

    after = wait_until(observed, what="two acknowledgement latencies in /metrics")
    assert value(after, "intaked_ack_latency_seconds_bucket", le="+Inf") == 2
    assert 0 < value(after, "intaked_ack_latency_seconds_sum") < 60
    assert value(after, "intaked_parse_problems_total") == 1
    names = [family.name for family in text_string_to_metric_families(get(port, "/metrics")[2])]
    assert len(names) == len(set(names)), "a metric family is served twice"
    assert "intaked_front_database_errors" in names
    unserved = named_metrics() - set(names) - {"intaked_page_latency_seconds"}  # no page here
    assert unserved == set(), (
        f"metrics the example alert rules name and the daemon does not serve: {unserved}"
    )


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
                node=node_name(),
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
        node=node_name(),
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


def test_a_database_cut_from_a_running_daemon_shows_and_heals(pg_url: str, sink: SmtpSink) -> None:
    """PostgreSQL behind a proxy that drops every connection: /readyz turns 503 naming the
    database, /metrics still answers (the store figures left out) and counts the 451 and the
    failed passes of the back office; once it is back, /readyz is 200 again and the mail the
    sender retried is a ticket."""
    from tests.support.faultproxy import FaultProxy

    with FaultProxy("127.0.0.1", 5432) as proxy:
        settings = make_settings(
            pg_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}"),
            smtp_intake={"recipients": [HELPDESK]},
            outbound_mail={"host": "127.0.0.1", "port": sink.port, "from_address": HELPDESK},
            metrics={"listen": "127.0.0.1:0"},
            daemon={"heartbeat_seconds": 0.5, "lease_seconds": 60},
        )
        daemon = DaemonThread(settings).start()
        try:
            port = port_of(daemon)
            wait_until(lambda: readyz(port)[0] == 200, what="/readyz 200 (the back office up)")
            proxy.down()
            status, answer = readyz(port)
            assert status == 503 and checks(answer)["database"] is False
            with (
                pytest.raises(smtplib.SMTPDataError) as deferred,
                smtplib.SMTP("127.0.0.1", daemon.smtp_port) as client,
            ):
                client.sendmail("ming.wang@example.com", [HELPDESK], REPORT)
            assert deferred.value.smtp_code == 451

            def failed_passes() -> Samples | None:
                samples = scrape(port)
                return samples if total(samples, "intaked_worker_failed_passes_total") > 0 else None

            down = wait_until(failed_passes, timeout=30, what="a failed back office pass in /metrics")
            assert value(down, "intaked_store_up") == 0
            assert value(down, "intaked_ready") == 0
            assert value(down, "intaked_smtp_deferred_replies_total") >= 1  # the 451 we saw
            assert value(down, "intaked_front_database_errors_total", source="capture") >= 1
            assert ("intaked_tickets", frozenset({("status", "new")})) not in down  # left out, not 0
            proxy.up()
            wait_until(
                lambda: readyz(port)[0] == 200, timeout=20, what="/readyz 200 once the database is back"
            )
            with smtplib.SMTP("127.0.0.1", daemon.smtp_port) as client:
                client.sendmail("ming.wang@example.com", [HELPDESK], REPORT)
            wait_until(lambda: daemon.ticket_count() == 1, what="the retried mail as a ticket")
            assert value(scrape(port), "intaked_store_up") == 1
        finally:
            proxy.up()
            daemon.stop()
