"""``intaked page test``: a trial page to one person, through the running daemon's outbox, to the
fake phone network (behind Prism, checking Twilio's spec) or the SMTP sink; no ticket is opened.
A trial that cannot be sent says why and queues nothing."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from sqlalchemy import func, select

from intaked.cli import main
from intaked.paging.trial import TRIAL_EN, TRIAL_ZH
from intaked.store.engine import make_engine
from intaked.store.models import outbox_table, ticket_table
from tests.support.daemon import DaemonThread, make_settings
from tests.support.phone import FakePhoneNetwork, Script
from tests.support.smtpsink import SmtpSink
from tests.support.waiting import wait_until
from tests.twilio.conftest import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER, PUBLIC_URL

CHEN = "+886911111111"


def config_text(db: str, api: str, relay_port: int) -> str:
    """What an operator's intaked.toml says: the people, Twilio and the relay."""
    return f"""
[database]
url = "{db}"
[twilio]
account_sid = "{ACCOUNT_SID}"
auth_token = "{AUTH_TOKEN}"
from_number = "{FROM_NUMBER}"
api_base_url = "{api}"
[webhooks]
listen = "127.0.0.1:0"
public_url = "{PUBLIC_URL}"
[outbound_mail]
from_address = "IT 服務台 <helpdesk@example.com>"
host = "127.0.0.1"
port = {relay_port}
[people.chen]
phone = "{CHEN}"
email = "chen@example.com"
[people.lin]
phone = "+886922222222"
"""


@pytest.fixture
def setup(tmp_path: Path, twilio_api_url: str, sink: SmtpSink) -> tuple[str, str]:
    """(the config file, the database URL)."""
    db = f"sqlite:///{tmp_path / 'intaked.db'}"
    path = tmp_path / "intaked.toml"
    path.write_text(config_text(db, twilio_api_url, sink.port), encoding="utf-8")
    return str(path), db


def daemon_for(config: str, db: str) -> DaemonThread:
    data = tomllib.loads(Path(config).read_text(encoding="utf-8"))
    data.pop("database")
    fast = {"poll_seconds": 0.05, "retry_base_seconds": 0.05, "retry_max_seconds": 0.2}
    return DaemonThread(
        make_settings(
            db, daemon={"back_office": "inline"}, smtp_intake={"enabled": False}, outbox=fast, **data
        )
    ).start()


def tickets(db: str) -> int:
    engine = make_engine(db)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(ticket_table)).scalar_one())
    finally:
        engine.dispose()


def test_a_trial_sms_and_call_reach_the_phone_and_open_no_ticket(
    setup: tuple[str, str], phone: FakePhoneNetwork, capsys: pytest.CaptureFixture[str]
) -> None:
    config, db = setup
    phone.script(CHEN, Script.VOICEMAIL)  # answered, hears the trial text, hangs up
    daemon = daemon_for(config, db)
    assert daemon.daemon.webhooks_address is not None
    host, port = daemon.daemon.webhooks_address
    phone.deliver_to(PUBLIC_URL, f"http://{host}:{port}")  # its callbacks, signed
    try:
        assert main(["page", "test", "--person", "chen", "--config", config]) == 0
        assert "trial sms to chen queued" in capsys.readouterr().out
        sms = wait_until(lambda: phone.creates("Messages"), what="the trial SMS")
        assert [(r.get("To"), r.get("From")) for r in sms] == [(CHEN, FROM_NUMBER)]
        assert TRIAL_ZH in (sms[0].get("Body") or "") and TRIAL_EN in (sms[0].get("Body") or "")
        assert main(["page", "test", "--person", "chen", "--channel", "call", "--config", config]) == 0
        calls = wait_until(lambda: phone.creates("Calls"), what="the trial call")
        assert [r.get("To") for r in calls] == [CHEN]
        assert TRIAL_ZH in (calls[0].get("Twiml") or ""), "the call speaks the trial text"
        assert tickets(db) == 0, "a trial page opens no ticket"
    finally:
        daemon.stop()
        phone.wait_idle()


def test_a_trial_mail_reaches_the_person(setup: tuple[str, str], sink: SmtpSink) -> None:
    config, db = setup
    daemon = daemon_for(config, db)
    try:
        assert main(["page", "test", "--person", "chen", "--channel", "email", "--config", config]) == 0
        mails = wait_until(lambda: sink.messages(), what="the trial mail")
        assert [m.rcpt_tos for m in mails] == [["chen@example.com"]]
        message = mails[0].message
        assert message["Auto-Submitted"] == "auto-generated"
        assert TRIAL_ZH in message.get_content()
    finally:
        daemon.stop()


@pytest.mark.parametrize(
    ("person", "channel", "says"),
    [
        ("wang", "sms", "no person named 'wang' (defined: chen, lin)"),
        ("lin", "email", "people.lin has no email address"),
    ],
)
def test_a_trial_that_cannot_go_says_why_and_queues_nothing(
    setup: tuple[str, str], capsys: pytest.CaptureFixture[str], person: str, channel: str, says: str
) -> None:
    config, db = setup
    assert main(["db", "upgrade", "--config", config]) == 0
    capsys.readouterr()
    assert main(["page", "test", "--person", person, "--channel", channel, "--config", config]) == 2
    assert says in capsys.readouterr().err
    engine = make_engine(db)
    try:
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(outbox_table)).scalar_one() == 0
    finally:
        engine.dispose()
