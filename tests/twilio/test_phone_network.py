"""The fake phone network's scripts end to end: the daemon's listener, signed callbacks, TwiML
fetched and a keypress posted, SMS replies; the way the escalation tests will use it."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from intaked.outbound.outbox import enqueue
from intaked.ports.phone import CallRequest
from intaked.twilio.client import TwilioClient
from intaked.twilio.server import WebhookRequest, WebhookResponse, WebhookRoutes
from tests.support.daemon import DaemonThread, make_settings
from tests.support.phone import FakePhoneNetwork, Script
from tests.support.waiting import wait_until
from tests.support.webhookd import running_webhooks
from tests.twilio.conftest import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    FROM_NUMBER,
    PUBLIC_URL,
    attempt,
    make_attempt,
    make_page,
    twilio_settings,
)

COMMANDER = "+886912000001"
BACKUP = "+886912000002"
GATHER = (
    '<?xml version="1.0" encoding="UTF-8"?><Response>'
    '<Gather numDigits="1" action="/test/gather?attempt=1"><Say>press 1</Say></Gather></Response>'
)


class Recorder:
    """Test routes: our TwiML with a Gather, the Gather's action, and SMS replies."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: list[WebhookRequest] = []

    def _keep(self, request: WebhookRequest) -> None:
        with self.lock:
            self.seen.append(request)

    def voice(self, _engine: Engine, request: WebhookRequest) -> WebhookResponse:
        self._keep(request)
        return WebhookResponse.twiml(GATHER)

    def other(self, _engine: Engine, request: WebhookRequest) -> WebhookResponse:
        self._keep(request)
        return WebhookResponse.twiml("<Response/>")

    def on(self, path: str) -> list[WebhookRequest]:
        with self.lock:
            return [r for r in self.seen if r.path == path]


@pytest.fixture
def recorder(engine: Engine, phone: FakePhoneNetwork) -> Iterator[Recorder]:
    recorder = Recorder()
    routes = WebhookRoutes()
    routes.register("/test/voice", recorder.voice)
    routes.register("/test/gather", recorder.other)
    routes.register("/test/sms", recorder.other)
    routes.register("/twilio/status/call", recorder.other)
    with running_webhooks(twilio_settings(), engine, routes) as hooks:
        phone.deliver_to(PUBLIC_URL, hooks.base_url)
        yield recorder
        phone.wait_idle()


def place_call(twilio_api_url: str, to: str) -> str:
    client = TwilioClient(twilio_settings(twilio_api_url).twilio)
    return client.create_call(
        CallRequest(to, url=f"{PUBLIC_URL}/test/voice", status_callback=f"{PUBLIC_URL}/twilio/status/call")
    )


def test_commander_does_not_answer_the_backup_presses_1(
    twilio_api_url: str, phone: FakePhoneNetwork, recorder: Recorder
) -> None:
    phone.script(COMMANDER, Script.NO_ANSWER)
    phone.script(BACKUP, Script.ANSWERS_PRESSES_1)
    commander = place_call(twilio_api_url, COMMANDER)
    backup = place_call(twilio_api_url, BACKUP)
    phone.wait_idle()
    statuses = {
        sid: [r.get("CallStatus") for r in recorder.on("/twilio/status/call") if r.get("CallSid") == sid]
        for sid in (commander, backup)
    }
    assert statuses[commander] == ["queued", "ringing", "no-answer"]
    assert statuses[backup] == ["queued", "ringing", "in-progress", "completed"]
    (fetch,) = recorder.on("/test/voice")
    assert fetch.get("CallSid") == backup and fetch.get("AnsweredBy") == "human"
    (keypress,) = recorder.on("/test/gather")
    assert keypress.get("Digits") == "1" and keypress.query == "attempt=1"
    assert all(callback.status == 200 for callback in phone.callbacks), "every callback was signed right"


def test_voicemail_answers_and_hangs_up_without_a_key(
    twilio_api_url: str, phone: FakePhoneNetwork, recorder: Recorder
) -> None:
    phone.script(COMMANDER, Script.VOICEMAIL)
    sid = place_call(twilio_api_url, COMMANDER)
    phone.wait_idle()
    assert [r.get("CallStatus") for r in recorder.on("/twilio/status/call")][-1] == "completed"
    assert recorder.on("/test/voice")[0].get("AnsweredBy") == "machine_end_beep"
    assert not recorder.on("/test/gather"), "no keypress"
    assert phone.resources[sid].status == "completed"


def test_sms_reply_reaches_our_webhook_signed(phone: FakePhoneNetwork, recorder: Recorder) -> None:
    phone.inbound_sms_url = f"{PUBLIC_URL}/test/sms"
    answer = phone.send_sms_reply(COMMANDER, FROM_NUMBER, "1 A7K2")
    assert answer.status == 200
    (reply,) = recorder.on("/test/sms")
    assert (reply.get("From"), reply.get("Body"), reply.get("AccountSid")) == (
        COMMANDER,
        "1 A7K2",
        ACCOUNT_SID,
    )
    assert (
        reply.get(
            "MessageSid",
        ).startswith("SM")
        if reply.get("MessageSid")
        else False
    )


def test_daemon_sends_a_page_sms_and_hears_it_delivered(
    tmp_path: Path, twilio_api_url: str, phone: FakePhoneNetwork
) -> None:
    url = f"sqlite:///{tmp_path / 'intaked.db'}"
    settings = make_settings(
        url,
        daemon={"back_office": "inline"},
        smtp_intake={"enabled": False},
        twilio={
            "account_sid": ACCOUNT_SID,
            "auth_token": AUTH_TOKEN,
            "from_number": FROM_NUMBER,
            "api_base_url": twilio_api_url,
        },
        webhooks={"listen": "127.0.0.1:0", "public_url": PUBLIC_URL},
        outbox={"poll_seconds": 0.05},
    )
    daemon = DaemonThread(settings).start()
    try:
        assert daemon.daemon.webhooks_address is not None and daemon.daemon.pager is not None
        assert daemon.daemon.webhooks is not None
        assert {"/twilio/status/sms", "/twilio/voice/page/keypress"} <= set(
            daemon.daemon.webhooks.routes.handlers
        )
        host, port = daemon.daemon.webhooks_address
        phone.deliver_to(PUBLIC_URL, f"http://{host}:{port}")
        engine = daemon.daemon.engine
        assert engine is not None
        attempt_id = make_attempt(engine, make_page(engine), "sms", COMMANDER)
        with engine.begin() as conn:
            payload = {"to": COMMANDER, "body": "P1 IT-202611-00001", "attempt_id": attempt_id}
            row = {"kind": "sms", "purpose": "page", "idempotency_key": "p1", "recipient": COMMANDER}
            enqueue(conn, [row | {"payload": payload}], dt.datetime.now(dt.UTC))
        wait_until(lambda: attempt(engine, attempt_id).status == "delivered", what="sent and delivered")
        phone.wait_idle()
    finally:
        daemon.stop()
