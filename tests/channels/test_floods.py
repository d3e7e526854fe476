"""Connection floods: the front door stays open (intaked issue 13).

The real daemon runs as a process under a low descriptor limit (1024, systemd's default soft
limit) while this test holds 2,000 idle or slow connections on its webhook port; SMTP and the
hotline must still answer, and the log must not flood. A second run sets the webhook cap above
the limit, so that descriptors do run out: the log must still not flood, the process must not
spin, and connections it cannot take are closed at once. The listeners' own limits are in
tests/channels/test_listener_limits.py.

Bounds: loopback only, at most FLOOD connections, every socket closed at the end; each daemon
test takes about 10-20 s. The two latency bounds (SMTP 250 within 1 s, the hotline's TwiML
within 2 s during the flood) are the task's; on an idle machine both answer in tens of
milliseconds, so the margins are generous.
"""

from __future__ import annotations

import re
import smtplib
import time
from pathlib import Path
from typing import Any

from intaked.ports.phone import INCOMING_PATH
from tests.support.floods import (
    LOOPBACK,
    PARTIAL_HEAD,
    Flood,
    daemon_process,
    descriptor_limit_of,
    raise_own_descriptor_limit,
)
from tests.support.phone import signed_post
from tests.support.waiting import wait_until
from tests.twilio.conftest import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER, PUBLIC_URL

FLOOD = 2000
TRICKLE_ROUNDS = 8
TRICKLE_SECONDS = 0.5
WEBHOOK_CAP = 256  # webhooks.max_connections's default
RESERVE = 128  # everything else the front process holds (about 15 when idle)
EXHAUSTING_FLOOD = 1500
LOW_SOFT_LIMIT = 256
HOLD_SECONDS = 3.0
SYSTEMD_DEFAULT_SOFT_LIMIT = 1024
HOTLINE = "+886225551234"
CALLER = "+886227654321"  # a landline: no SMS acknowledgement is queued
HELPDESK = "helpdesk@example.com"
SMTP_REPLY_WITHIN_SECONDS = 1.0
TWIML_WITHIN_SECONDS = 2.0
MOST_ACCEPT_LINES = 5
REPORT = (
    b"From: Lin <lin@example.com>\r\nTo: helpdesk@example.com\r\nSubject: printer jammed\r\n"
    b"Message-ID: <flood-1@example.com>\r\n\r\nThe third floor printer is jammed.\r\n"
)


def daemon_config(tmp_path: Path, **webhooks: Any) -> Path:
    """SQLite, SMTP and the webhooks on free loopback ports, a hotline number, JSON logs."""
    extra = "".join(f"{key} = {value!r}\n" for key, value in webhooks.items())
    config = tmp_path / "intaked.toml"
    config.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "intaked.db"}"\n'
        f'[metrics]\nlisten = ""\n[smtp_intake]\nlisten = "{LOOPBACK}:0"\nrecipients = ["{HELPDESK}"]\n'
        f'[twilio]\naccount_sid = "{ACCOUNT_SID}"\nauth_token = "{AUTH_TOKEN}"\n'
        f'from_number = "{FROM_NUMBER}"\napi_base_url = "http://{LOOPBACK}:1"\n'
        f'[webhooks]\nlisten = "{LOOPBACK}:0"\npublic_url = "{PUBLIC_URL}"\n{extra}'
        f'[hotline]\nnumbers = ["{HOTLINE}"]\n'
        '[logging]\nlevel = "info"\nformat = "json"\n',
        encoding="utf-8",
    )
    return config


def incoming_call(call_sid: str) -> list[tuple[str, str]]:
    return [
        ("CallSid", call_sid),
        ("AccountSid", ACCOUNT_SID),
        ("From", CALLER),
        ("To", HOTLINE),
        ("CallStatus", "ringing"),
        ("Direction", "inbound"),
        ("ApiVersion", "2010-04-01"),
    ]


def send_report(port: int) -> int:
    """One new sender's report over SMTP; the reply code to DATA."""
    with smtplib.SMTP(LOOPBACK, port, timeout=5) as client:
        client.ehlo()
        client.mail("lin@example.com")
        client.rcpt(HELPDESK)
        code, _ = client.data(REPORT)
        return code


#: What a line about failing accept() says: asyncio's own message, or intaked's event.
ACCEPT_FAILURE = re.compile(r"accept\(\)|accept_failed|out of system resource", re.IGNORECASE)


def accept_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if ACCEPT_FAILURE.search(line)]


def test_out_of_descriptors_the_log_says_so_once_per_interval_and_the_daemon_does_not_spin(
    tmp_path: Path,
) -> None:
    """A webhook cap set above what the process may open (a warning at start names the key):
    the flood takes every descriptor. accept() failures are one line per interval with a
    count, connections that cannot be taken are closed at once instead of left waiting, the
    process does not spin, and once the flood is gone SMTP answers again."""
    raise_own_descriptor_limit(EXHAUSTING_FLOOD + 256)
    config = daemon_config(
        tmp_path,
        max_connections=10 * EXHAUSTING_FLOOD,
        header_timeout_seconds=60.0,
        keepalive_timeout_seconds=60.0,
    )
    limit = descriptor_limit_of(LOW_SOFT_LIMIT, SYSTEMD_DEFAULT_SOFT_LIMIT)
    with daemon_process(config, tmp_path / "intaked.log", limit) as daemon:
        assert daemon.descriptor_limits() == (SYSTEMD_DEFAULT_SOFT_LIMIT, SYSTEMD_DEFAULT_SOFT_LIMIT), (
            "the soft limit is raised to the hard one"
        )
        warning = daemon.event("descriptor_budget_exceeded")
        assert warning is not None and "webhooks.max_connections" in warning["problem"]
        smtp_port = daemon.port_of("smtp_intake_listening")
        flood = Flood(daemon.port_of("webhooks_listening"), EXHAUSTING_FLOOD)
        try:
            flood.send_to_some(PARTIAL_HEAD)
            for _ in range(TRICKLE_ROUNDS):  # the queued connections get in, or are shed
                time.sleep(TRICKLE_SECONDS)
                flood.send_to_some(b"X-Slow: 1\r\n", every=4)
            cpu_before = daemon.cpu_seconds()
            time.sleep(HOLD_SECONDS)
            cpu_used = daemon.cpu_seconds() - cpu_before
            shed = flood.closed_by_server()
            # A sender now is closed at once while no descriptor is free, or answered when the
            # shedding has just freed one: either way not left waiting (a 5 s time-out).
            try:
                answer: int | str = send_report(smtp_port)
            except smtplib.SMTPServerDisconnected as refused:
                answer = str(refused)
        finally:
            flood.close()
        assert answer == 250 or "timed out" not in str(answer), "closed at once, not left waiting"
        code = wait_until(lambda: _report_accepted(smtp_port), timeout=30, what="SMTP to answer again")
        assert code == 250
        stopped = daemon.stop()
        lines = daemon.log_lines()
        failures = [e for e in daemon.events() if e.get("event") == "listener_accept_failed"]
    assert stopped == 0
    assert shed > 0, "connections the process cannot take are closed, not left in the queue"
    assert cpu_used < HOLD_SECONDS / 2, f"{cpu_used:.2f} s of CPU in {HOLD_SECONDS} s: spinning"
    assert 1 <= len(accept_lines(lines)) <= MOST_ACCEPT_LINES, accept_lines(lines)[:10]
    assert sum(e["count"] for e in failures) > len(failures), "repeats are counted, not logged each"


def test_two_thousand_slow_webhook_connections_leave_smtp_and_the_hotline_answering(tmp_path: Path) -> None:
    raise_own_descriptor_limit(FLOOD + 256)
    config = daemon_config(tmp_path)
    limit = descriptor_limit_of(SYSTEMD_DEFAULT_SOFT_LIMIT, SYSTEMD_DEFAULT_SOFT_LIMIT)
    with daemon_process(config, tmp_path / "intaked.log", limit) as daemon:
        assert daemon.descriptor_limits() == (SYSTEMD_DEFAULT_SOFT_LIMIT, SYSTEMD_DEFAULT_SOFT_LIMIT)
        smtp_port = daemon.port_of("smtp_intake_listening")
        hooks_port = daemon.port_of("webhooks_listening")
        flood = Flood(hooks_port, FLOOD)
        try:
            flood.send_to_some(PARTIAL_HEAD)  # every one a request head begun and never finished
            for line in range(TRICKLE_ROUNDS):  # a quarter of them trickling a header line
                time.sleep(TRICKLE_SECONDS)  # the flood's own pace (connections queued meanwhile get in)
                flood.send_to_some(b"X-Slow: %d\r\n" % line, every=4)

            started = time.monotonic()
            code = send_report(smtp_port)
            smtp_seconds = time.monotonic() - started

            started = time.monotonic()
            status, twiml = signed_post(
                f"http://{LOOPBACK}:{hooks_port}",
                PUBLIC_URL,
                INCOMING_PATH,
                incoming_call("CA" + "f1" * 16),
                AUTH_TOKEN,
                timeout=10,
            )
            hotline_seconds = time.monotonic() - started

            flood.send_to_some(b"X-Slow: last\r\n", every=4)
            held = daemon.open_descriptors()
        finally:
            flood.close()
        lines = daemon.log_lines()
    assert len(flood.sockets) >= FLOOD * 9 // 10, f"only {len(flood.sockets)} of the flood connected"
    assert code == 250 and smtp_seconds < SMTP_REPLY_WITHIN_SECONDS, (code, smtp_seconds)
    assert status == 200 and "<Gather" in twiml, twiml
    assert hotline_seconds < TWIML_WITHIN_SECONDS, hotline_seconds
    assert held <= WEBHOOK_CAP + RESERVE, f"the daemon held {held} descriptors; cap {WEBHOOK_CAP}"
    assert len(accept_lines(lines)) <= MOST_ACCEPT_LINES, accept_lines(lines)[:10]


def _report_accepted(port: int) -> int:
    try:
        return send_report(port)
    except (OSError, smtplib.SMTPException):
        return 0
