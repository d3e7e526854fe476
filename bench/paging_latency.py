"""Benchmark: from a P1 becoming known to the first page SMS and call accepted by the stand-in.

    .venv/bin/python bench/paging_latency.py [--incidents 200] [--db sqlite,postgresql]

A real ``intaked run`` (front, back office and outbox processes, as shipped) pages a duty
commander through Twilio's stand-in: Prism checking every request against Twilio's spec, in
front of the test suite's fake phone network (which answers the calls as a voicemail box and
delivers the SMS, posting signed callbacks back). For each of three ways a P1 becomes known,
``--incidents`` incidents, started every ``--every`` seconds:

- **triage**: what ``intaked ticket triage NUMBER --priority P1`` does (``lifecycle.triage``,
  run here in its own process, as the command would): the page starts in that transaction; the
  daemon's paging pass (``paging.check_seconds``) wakes its sender;
- **sql**: another tool's ``UPDATE tickets SET priority = 'P1'``: the daemon notices it on its
  paging pass;
- **smtp**: a mail from an internal sender whose ``Authentication-Results`` (our MTA's) says
  ``spf=pass`` and whose text matches a P1 rule: a trusted suggestion, paged in the ingest
  transaction (timed from the start of the SMTP session).

Latency = until the stand-in has accepted both the SMS and the call request of that incident.
Baseline in the same run: this process sending the same two requests (intaked's own Twilio
client) straight to the stand-in, one incident after another: the transport alone.
"""

from __future__ import annotations

import datetime as dt
import smtplib
import sys
import tempfile
import threading
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert, select, update

from bench.common import (
    arguments,
    free_port,
    fresh_database,
    intaked_process,
    percentile_ms,
    use_back_office,
    wait_for_port,
)
from intaked.config import settings_from_mapping
from intaked.ports.phone import CallRequest
from intaked.sla.context import load_context
from intaked.store.engine import make_engine
from intaked.store.migrate import upgrade
from intaked.store.models import (
    message_table,
    page_attempt_table,
    page_table,
    ticket_table,
)
from intaked.tickets.lifecycle import triage
from intaked.twilio.client import TwilioClient
from tests.support.phone import FakePhoneNetwork, Script
from tests.support.prism import prism_unavailable_reason, run_prism

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "bench-token-0123456789abcdef"
FROM_NUMBER = "+886212345678"
DUTY = "+886911000001"
OUR_MTA = "mx.bench.example"


def config_toml(url: str, smtp_port: int, hook_port: int, api: str) -> str:
    return f"""
[database]
url = "{url}"
[smtp_intake]
listen = "127.0.0.1:{smtp_port}"
recipients = ["helpdesk@corp.example.com"]
[acknowledgements]
enabled = false
[logging]
level = "warning"
format = "json"
[twilio]
account_sid = "{ACCOUNT_SID}"
auth_token = "{AUTH_TOKEN}"
from_number = "{FROM_NUMBER}"
api_base_url = "{api}"
# The stand-in takes more than Twilio's default 1 call/s, so that incidents do not queue behind
# each other's calls (one real P1 at a time meets a full bucket).
calls_per_second = 50
[webhooks]
listen = "127.0.0.1:{hook_port}"
public_url = "http://127.0.0.1:{hook_port}"
[people.duty]
phone = "{DUTY}"
[oncall.qrc_duty]
people = ["duty"]
[[paging.policies.P1.steps]]
targets = [{{ oncall = "qrc_duty" }}]
channels = ["sms", "call"]
[trust]
internal_domains = ["corp.example.com"]
authserv_id = "{OUR_MTA}"
[[routing.rules]]
name = "production-down"
keywords = ["產線停工"]
category = "incident"
suggested_priority = "P1"
"""


def trusted_mail(n: int) -> bytes:
    return (
        f"Authentication-Results: {OUR_MTA}; spf=pass smtp.mailfrom=op{n}@corp.example.com\r\n"
        f"From: op{n}@corp.example.com\r\nTo: helpdesk@corp.example.com\r\n"
        f"Subject: =?utf-8?b?5Lqn57ea5YGc5bel?= {n}\r\nMessage-ID: <bench-page-{n}@corp.example.com>\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
    ).encode() + "二廠 SMT 產線停工，請立即協助。\r\n".encode()


def first_requests(phone: FakePhoneNetwork) -> tuple[dict[str, float], dict[int, float]]:
    """When the stand-in first accepted an SMS per body and a call per attempt id."""
    sms: dict[str, float] = {}
    calls: dict[int, float] = {}
    for request in phone.creates("Messages"):
        sms.setdefault(request.get("Body") or "", request.at)
    for request in phone.creates("Calls"):
        url = request.get("Url") or ""
        attempt = url.rpartition("attempt=")[2]
        if attempt.isdigit():
            calls.setdefault(int(attempt), request.at)
    return sms, calls


def run_trigger(
    name: str, url: str, phone: FakePhoneNetwork, api: str, incidents: int, every: float
) -> list[float]:
    smtp_port, hook_port = free_port(), free_port()
    phone.reset()
    phone.script(DUTY, Script.VOICEMAIL)
    phone.deliver_to(f"http://127.0.0.1:{hook_port}", f"http://127.0.0.1:{hook_port}")
    config = config_toml(url, smtp_port, hook_port, api)
    settings = settings_from_mapping(tomllib.loads(config))  # the daemon's: its paging policy too
    engine = make_engine(url)
    upgrade(engine)
    now = dt.datetime.now(dt.UTC)
    numbers = [f"BENCH-{name}-{n:05d}" for n in range(incidents)]
    if name != "smtp":
        with engine.begin() as conn:
            conn.execute(
                insert(ticket_table),
                [
                    {
                        "number": number,
                        "status": "new",
                        "channel": "email",
                        "subject": "MES 產線停工",
                        "created_at": now,
                        "updated_at": now,
                    }
                    for number in numbers
                ],
            )
    starts: dict[str, float] = {}
    with intaked_process(config):
        wait_for_port(smtp_port)
        wait_for_port(hook_port)
        time.sleep(1.0)  # the back office and the outbox sender are up
        ctx = load_context(engine, settings)
        trigger: Callable[[int], None]
        if name == "triage":

            def trigger(n: int) -> None:
                triage(engine, ctx, numbers[n], priority="P1", by="bench")
        elif name == "sql":

            def trigger(n: int) -> None:
                with engine.begin() as conn:
                    conn.execute(
                        update(ticket_table)
                        .where(ticket_table.c.number == numbers[n])
                        .values(priority="P1", updated_at=dt.datetime.now(dt.UTC))
                    )
        else:

            def trigger(n: int) -> None:
                with smtplib.SMTP("127.0.0.1", smtp_port) as client:
                    client.sendmail(f"op{n}@corp.example.com", ["helpdesk@corp.example.com"], trusted_mail(n))

        threads: list[threading.Thread] = []
        began = time.monotonic()
        for n in range(incidents):
            time.sleep(max(0.0, began + n * every - time.monotonic()))
            starts[numbers[n] if name != "smtp" else f"bench-page-{n}@corp.example.com"] = time.monotonic()
            thread = threading.Thread(target=trigger, args=(n,))
            thread.start()
            threads.append(thread)
        for thread in threads:
            thread.join()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            sms, calls = first_requests(phone)
            if len(sms) >= incidents and len(calls) >= incidents:
                break
            time.sleep(0.2)
        phone.wait_idle(60)
    sms, calls = first_requests(phone)
    latencies: list[float] = []
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                ticket_table.c.number,
                page_attempt_table.c.id,
                page_attempt_table.c.channel,
                message_table.c.header_message_id,
            )
            .join(page_table, page_table.c.ticket_id == ticket_table.c.id)
            .join(page_attempt_table, page_attempt_table.c.page_id == page_table.c.id)
            .outerjoin(message_table, message_table.c.ticket_id == ticket_table.c.id)
        ).all()
    by_key: dict[str, dict[str, Any]] = {}
    for number, attempt_id, channel, message_id in rows:
        key = number if name != "smtp" else (message_id or "")
        entry = by_key.setdefault(key, {"number": number})
        entry[channel] = attempt_id
    for key, started in starts.items():
        found = by_key.get(key)
        if found is None or "call" not in found:
            continue
        entry = found
        sms_at = next((at for body, at in sms.items() if entry["number"] in body), None)
        call_at = calls.get(entry["call"])
        if sms_at is None or call_at is None:
            continue
        latencies.append(max(sms_at, call_at) - started)
    engine.dispose()
    if len(latencies) < incidents:
        print(f"  {name}: only {len(latencies)} of {incidents} incidents were paged within 60 s")
    return sorted(latencies)


def transport_baseline(phone: FakePhoneNetwork, api: str, incidents: int) -> list[float]:
    phone.reset()
    phone.script(DUTY, Script.VOICEMAIL)
    settings = settings_from_mapping(
        {
            "twilio": {
                "account_sid": ACCOUNT_SID,
                "auth_token": AUTH_TOKEN,
                "from_number": FROM_NUMBER,
                "api_base_url": api,
            },
            "webhooks": {"listen": "", "public_url": "http://127.0.0.1:9"},
        }
    )
    client = TwilioClient(settings.twilio)
    out: list[float] = []
    for n in range(incidents):
        started = time.monotonic()
        client.send_sms(
            DUTY, f"[P1] BENCH-{n:05d} MES 產線停工 回覆 1 {n} 確認", "http://127.0.0.1:9/twilio/status/sms"
        )
        client.create_call(
            CallRequest(
                DUTY,
                url=f"http://127.0.0.1:9/twilio/voice/page?attempt={n}",
                status_callback="http://127.0.0.1:9/twilio/status/call",
            )
        )
        out.append(time.monotonic() - started)
    phone.deliver_to("http://127.0.0.1:9", "http://127.0.0.1:9")
    return sorted(out)


def main() -> None:
    parser = arguments(__doc__, 0)
    parser.add_argument("--incidents", type=int, default=200)
    parser.add_argument("--every", type=float, default=0.25, help="seconds between incidents")
    parser.add_argument("--triggers", default="triage,sql,smtp")
    args = parser.parse_args()
    use_back_office(args.back_office)
    reason = prism_unavailable_reason()
    with FakePhoneNetwork(ACCOUNT_SID, AUTH_TOKEN) as phone, tempfile.TemporaryDirectory() as tmp:
        if reason:
            print(f"Prism unavailable ({reason}): the fake phone network alone is the stand-in")
            api_cm: Any = None
            api = phone.base_url
        else:
            api_cm = run_prism("proxy", Path(tmp), upstream=phone.base_url)
            api = api_cm.__enter__().base_url
        try:
            base = transport_baseline(phone, api, args.incidents)
            print(
                f"{args.incidents} incidents per trigger, one every {args.every:g} s; "
                f"baseline (SMS + call straight to the stand-in): "
                f"p50 {percentile_ms(base, 0.5):.0f} ms, p99 {percentile_ms(base, 0.99):.0f} ms"
            )
            print(f"{'database':<11} {'trigger':<7} {'paged':>6} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7}")
            for db in args.db.split(","):
                for name in args.triggers.split(","):
                    with tempfile.TemporaryDirectory() as dbtmp, fresh_database(db, dbtmp, "intaked") as url:
                        if url is None:
                            break
                        lat = run_trigger(name, url, phone, api, args.incidents, args.every)
                    if not lat:
                        print(f"{db:<11} {name:<7} {0:>6}")
                        continue
                    print(
                        f"{db:<11} {name:<7} {len(lat):>6} {percentile_ms(lat, 0.5):>7.0f} "
                        f"{percentile_ms(lat, 0.99):>7.0f} {lat[-1] * 1000:>7.0f}"
                    )
        finally:
            if api_cm is not None:
                api_cm.__exit__(None, None, None)


if __name__ == "__main__":
    main()
