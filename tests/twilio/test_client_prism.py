"""The REST requests our client makes are ones Twilio's own spec accepts (Prism mock)."""

from __future__ import annotations

import datetime as dt

import pytest
from twilio.base import values

from intaked.ports.phone import CALL_EVENTS, CallRequest, PermanentFailure, TemporaryFailure
from intaked.twilio.client import TwilioClient
from tests.support.dovecot import free_port
from tests.support.prism import Prism
from tests.twilio.conftest import twilio_settings

TO = "+886912345678"
CALLBACK = "https://intaked.example.com/twilio/status/call?attempt=7"


@pytest.fixture
def client(prism_mock: Prism) -> TwilioClient:
    return TwilioClient(twilio_settings(prism_mock.base_url).twilio)


def test_send_sms_is_accepted(client: TwilioClient) -> None:
    sid = client.send_sms(TO, "P1 IT-202611-00001 產線停工 回覆 1 A7K2", CALLBACK.replace("call", "sms"))
    assert sid.startswith("SM") and len(sid) == 34


def test_create_call_with_url_events_and_machine_detection_is_accepted(client: TwilioClient) -> None:
    sid = client.create_call(
        CallRequest(
            TO,
            url="https://intaked.example.com/twilio/voice?attempt=7",
            status_callback=CALLBACK,
            status_events=CALL_EVENTS,
            machine_detection="Enable",
            timeout=30,
        )
    )
    assert sid.startswith("CA")


def test_create_call_with_inline_twiml_is_accepted(client: TwilioClient) -> None:
    twiml = '<Response><Say language="cmn-TW" voice="Google.cmn-TW-Standard-A">測試</Say></Response>'
    assert client.create_call(CallRequest(TO, twiml=twiml, status_callback=CALLBACK)).startswith("CA")


def test_cancel_and_lists_are_accepted(client: TwilioClient) -> None:
    assert client.cancel_call("CA" + "a" * 32)
    since = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    assert all(m.sid.startswith(("SM", "MM")) for m in client.find_messages(TO, since))
    assert all(c.sid.startswith("CA") for c in client.find_calls(TO, since))


def test_request_without_to_is_rejected_with_prisms_reason(client: TwilioClient) -> None:
    create = client._account.messages.create
    with pytest.raises(PermanentFailure) as rejected:
        client._call("create message", create, to=values.unset, from_="+886212345678", body="x")
    assert rejected.value.status == 422, "Prism rejects what Twilio would (Twilio itself answers 400)"
    assert "To" in str(rejected.value)


def test_status_callback_must_be_a_url(client: TwilioClient) -> None:
    with pytest.raises(PermanentFailure, match="StatusCallback must match format"):
        client.send_sms(TO, "x", "not a url")


def test_base_url_is_rewritten_only_for_twilio_hosts(client: TwilioClient, prism_mock: Prism) -> None:
    assert client.http.rebase("https://api.twilio.com/2010-04-01/x.json?a=1") == (
        prism_mock.base_url + "/2010-04-01/x.json?a=1"
    )
    assert client.http.rebase("https://example.com/x") == "https://example.com/x"


def test_unreachable_twilio_is_a_temporary_failure_with_a_known_outcome() -> None:
    client = TwilioClient(twilio_settings(f"http://127.0.0.1:{free_port()}").twilio)
    with pytest.raises(TemporaryFailure) as caught:
        client.send_sms(TO, "x", None)
    assert not caught.value.unknown_outcome, "a refused connection sent nothing: safe to resend"
