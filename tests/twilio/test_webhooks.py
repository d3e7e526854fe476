"""The webhook listener over real HTTP: signatures, limits, receipts, and the status callbacks."""

from __future__ import annotations

import datetime as dt
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import Connection, Engine, func, select

from intaked.outbound.attempts import AttemptListener
from intaked.paging.outcomes import attempt_updated
from intaked.ports.phone import CALL_STATUS_PATH, SMS_STATUS_PATH
from intaked.store.models import page_attempt_table, webhook_receipt_table
from intaked.store.receipts import record_receipt
from intaked.twilio.routes import STATUS, build_routes
from intaked.twilio.server import WebhookRequest, WebhookResponse
from intaked.twilio.signature import compute_signature, signature_valid
from tests.support.phone import signed_post, twilio_signature
from tests.support.webhookd import running_webhooks
from tests.twilio.conftest import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    PREVIOUS_TOKEN,
    attempt,
    make_attempt,
    make_page,
    twilio_settings,
)

CALLED = "+886912000001"
SMS_SID = "SM" + "1" * 32
CALL_SID = "CA" + "2" * 32


@dataclass
class Served:
    base_url: str
    public_url: str
    seen: list[WebhookRequest]
    on_attempt: AttemptListener = attempt_updated  # what the status callbacks tell of a change


@pytest.fixture
def server(engine: Engine) -> Iterator[Served]:
    served: list[Served] = []
    routes = build_routes(
        twilio_settings(), lambda conn, attempt_id, now: served[0].on_attempt(conn, attempt_id, now), [STATUS]
    )
    seen: list[WebhookRequest] = []

    def echo(_engine: Engine, request: WebhookRequest) -> WebhookResponse:
        seen.append(request)
        return WebhookResponse.twiml("<Response><Say>ok</Say></Response>")

    routes.register("/test/echo", echo)
    with running_webhooks(twilio_settings(), engine, routes) as running:
        served.append(Served(running.base_url, running.public_url, seen))
        yield served[0]


def sms_params(status: str, sid: str = SMS_SID, **extra: str) -> list[tuple[str, str]]:
    params = [
        ("MessageSid", sid),
        ("SmsSid", sid),
        ("AccountSid", ACCOUNT_SID),
        ("From", "+886212345678"),
        ("To", CALLED),
        ("MessageStatus", status),
        ("SmsStatus", status),
    ]
    return params + list(extra.items())


def call_params(status: str, sid: str = CALL_SID, **extra: str) -> list[tuple[str, str]]:
    params = [
        ("CallSid", sid),
        ("AccountSid", ACCOUNT_SID),
        ("From", "+886212345678"),
        ("To", CALLED),
        ("CallStatus", status),
        ("Direction", "outbound-api"),
        ("ApiVersion", "2010-04-01"),
    ]
    return params + list(extra.items())


def receipts(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(webhook_receipt_table)).scalar_one())


def test_our_signature_is_twilios() -> None:
    params = [("To", "+1"), ("Body", "b"), ("MediaUrl", "https://x/2"), ("MediaUrl", "https://x/1")]
    url = "https://intaked.example.com/twilio/status/sms?attempt=3"
    assert compute_signature(url, params, AUTH_TOKEN) == twilio_signature(AUTH_TOKEN, url, params)
    sig = twilio_signature(AUTH_TOKEN, url, params)
    assert signature_valid(url, params, sig, [AUTH_TOKEN])
    assert signature_valid(url.replace(".com/", ".com:443/"), params, sig, [AUTH_TOKEN]), "default port"
    assert not signature_valid(url, params, sig, ["other"])
    assert not signature_valid(url, params[:-1], sig, [AUTH_TOKEN]), "a repeated key's value is signed"
    assert not signature_valid(url, params, None, [AUTH_TOKEN])


def test_valid_signature_moves_the_attempt(engine: Engine, server: Served) -> None:
    attempt_id = make_attempt(engine, make_page(engine), "sms", CALLED, provider_sid=SMS_SID, status="sent")
    path = f"{SMS_STATUS_PATH}?attempt={attempt_id}"
    status, body = signed_post(server.base_url, server.public_url, path, sms_params("delivered"), AUTH_TOKEN)
    assert (status, body) == (200, "")
    row = attempt(engine, attempt_id)
    assert row.status == "delivered" and row.delivered_at is not None


def test_forged_signature_is_refused_and_changes_nothing(engine: Engine, server: Served) -> None:
    attempt_id = make_attempt(engine, make_page(engine), "sms", CALLED, provider_sid=SMS_SID, status="sent")
    params = sms_params("undelivered", ErrorCode="30003")
    status, _ = signed_post(server.base_url, server.public_url, SMS_STATUS_PATH, params, "forged-token")
    assert status == 403
    status, _ = signed_post(
        server.base_url, server.public_url, SMS_STATUS_PATH, params, AUTH_TOKEN, signature=""
    )
    assert status == 403, "no signature"
    assert attempt(engine, attempt_id).status == "sent"
    assert receipts(engine) == 0


def test_previous_token_is_accepted_during_rotation(engine: Engine, server: Served) -> None:
    attempt_id = make_attempt(engine, make_page(engine), "call", CALLED, provider_sid=CALL_SID, status="sent")
    status, _ = signed_post(
        server.base_url, server.public_url, CALL_STATUS_PATH, call_params("ringing"), PREVIOUS_TOKEN
    )
    assert status == 200
    assert attempt(engine, attempt_id).status == "ringing"


def test_replayed_request_changes_nothing_the_second_time(engine: Engine, server: Served) -> None:
    attempt_id = make_attempt(engine, make_page(engine), "call", CALLED, provider_sid=CALL_SID, status="sent")
    answered = call_params("in-progress")
    assert signed_post(server.base_url, server.public_url, CALL_STATUS_PATH, answered, AUTH_TOKEN)[0] == 200
    first = attempt(engine, attempt_id)
    assert first.status == "answered" and first.answered_at is not None
    assert receipts(engine) == 1
    assert signed_post(server.base_url, server.public_url, CALL_STATUS_PATH, answered, AUTH_TOKEN)[0] == 200
    assert attempt(engine, attempt_id) == first
    assert receipts(engine) == 1


def test_signature_over_the_socket_url_is_refused(engine: Engine, server: Served) -> None:
    attempt_id = make_attempt(engine, make_page(engine), "call", CALLED, provider_sid=CALL_SID, status="sent")
    # signed for http://127.0.0.1:PORT/... (what the socket saw), not for the public URL
    status, _ = signed_post(
        server.base_url, server.base_url, CALL_STATUS_PATH, call_params("ringing"), AUTH_TOKEN
    )
    assert status == 403
    assert attempt(engine, attempt_id).status == "sent"


def test_query_string_is_part_of_the_signature(engine: Engine, server: Served) -> None:
    attempt_id = make_attempt(engine, make_page(engine), "call", CALLED, provider_sid=CALL_SID, status="sent")
    params = call_params("ringing")
    signature = twilio_signature(AUTH_TOKEN, server.public_url + CALL_STATUS_PATH, params)
    path = f"{CALL_STATUS_PATH}?attempt={attempt_id}"
    status, _ = signed_post(server.base_url, server.public_url, path, params, AUTH_TOKEN, signature=signature)
    assert status == 403, "signed without the query string"


def test_repeated_form_keys_are_signed_and_reach_the_handler(server: Served) -> None:
    params = [("CallSid", CALL_SID), ("Digits", "1"), ("Digits", "9")]
    status, body = signed_post(server.base_url, server.public_url, "/test/echo?x=1", params, AUTH_TOKEN)
    assert status == 200 and "<Say>ok</Say>" in body
    (request,) = server.seen
    assert request.params == tuple(params) and request.query == "x=1" and request.path == "/test/echo"
    tampered = twilio_signature(AUTH_TOKEN, server.public_url + "/test/echo", params[:2])
    status, _ = signed_post(
        server.base_url, server.public_url, "/test/echo", params, AUTH_TOKEN, signature=tampered
    )
    assert status == 403, "a signature without the second Digits does not cover the request"
    assert len(server.seen) == 1


def test_method_size_and_unknown_path(server: Served) -> None:
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(server.base_url + CALL_STATUS_PATH, timeout=5)
    caught.value.close()
    assert caught.value.code == 405
    big = [("Body", "x" * 70_000)]
    assert signed_post(server.base_url, server.public_url, "/test/echo", big, AUTH_TOKEN)[0] == 413
    assert signed_post(server.base_url, server.public_url, "/nowhere", [], AUTH_TOKEN)[0] == 404
    assert signed_post(server.base_url, server.public_url, "/nowhere", [], "bad")[0] == 403


def test_call_statuses_only_move_forward(engine: Engine, server: Served) -> None:
    attempt_id = make_attempt(engine, make_page(engine), "call", CALLED, provider_sid=CALL_SID, status="sent")

    def post(status: str, **extra: str) -> None:
        params = call_params(status, **extra)
        assert signed_post(server.base_url, server.public_url, CALL_STATUS_PATH, params, AUTH_TOKEN)[0] == 200

    post("in-progress")
    post("ringing")  # late: never backwards
    assert attempt(engine, attempt_id).status == "answered"
    post("completed", CallDuration="30")
    row = attempt(engine, attempt_id)
    assert row.status == "completed" and row.ended_at is not None and row.acknowledged_at is None
    post("failed")
    assert attempt(engine, attempt_id).status == "completed", "an ended call stays ended"


@pytest.mark.parametrize(
    ("twilio_status", "expected", "error"),
    [("busy", "failed", "busy"), ("no-answer", "failed", "no-answer"), ("canceled", "cancelled", None)],
)
def test_call_failures(
    engine: Engine, server: Served, twilio_status: str, expected: str, error: str | None
) -> None:
    attempt_id = make_attempt(engine, make_page(engine), "call", CALLED, status="queued")
    path = f"{CALL_STATUS_PATH}?attempt={attempt_id}"
    assert (
        signed_post(server.base_url, server.public_url, path, call_params(twilio_status), AUTH_TOKEN)[0]
        == 200
    )
    row = attempt(engine, attempt_id)
    assert row.status == expected and row.ended_at is not None
    assert row.provider_sid == CALL_SID, "a callback before the dispatcher recorded the Sid fills it in"
    if error:
        assert row.error == error


def test_sms_undelivered_records_the_error_code(engine: Engine, server: Served) -> None:
    attempt_id = make_attempt(engine, make_page(engine), "sms", CALLED, provider_sid=SMS_SID, status="sent")
    params = sms_params("undelivered", ErrorCode="30003")
    assert signed_post(server.base_url, server.public_url, SMS_STATUS_PATH, params, AUTH_TOKEN)[0] == 200
    row = attempt(engine, attempt_id)
    assert (row.status, row.error_code) == ("failed", "30003") and "undelivered" in row.error


def test_acknowledged_attempt_is_never_moved(engine: Engine, server: Served) -> None:
    attempt_id = make_attempt(
        engine, make_page(engine), "call", CALLED, provider_sid=CALL_SID, status="acknowledged"
    )
    assert (
        signed_post(
            server.base_url, server.public_url, CALL_STATUS_PATH, call_params("completed"), AUTH_TOKEN
        )[0]
        == 200
    )
    assert attempt(engine, attempt_id).status == "acknowledged"


def test_callback_for_another_sid_is_ignored(engine: Engine, server: Served) -> None:
    attempt_id = make_attempt(engine, make_page(engine), "call", CALLED, provider_sid=CALL_SID, status="sent")
    other = "CA" + "9" * 32
    path = f"{CALL_STATUS_PATH}?attempt={attempt_id}"
    assert (
        signed_post(server.base_url, server.public_url, path, call_params("busy", sid=other), AUTH_TOKEN)[0]
        == 200
    )
    assert attempt(engine, attempt_id).status == "sent"


def test_record_receipt_is_idempotent(engine: Engine) -> None:
    with engine.begin() as conn:
        assert record_receipt(conn, "call_status", CALL_SID, "completed", [("a", "1")])
        assert not record_receipt(conn, "call_status", CALL_SID, "completed", [("a", "1")])
        assert record_receipt(conn, "call_status", CALL_SID, "ringing", [])
    assert receipts(engine) == 2


def test_attempt_hook_runs_in_the_same_transaction(engine: Engine, server: Served) -> None:
    calls: list[tuple[int, str]] = []

    def hook(conn: Connection, attempt_id: int, now: dt.datetime) -> None:
        status = conn.execute(
            select(page_attempt_table.c.status).where(page_attempt_table.c.id == attempt_id)
        ).scalar_one()
        calls.append((attempt_id, status))

    server.on_attempt = hook
    attempt_id = make_attempt(engine, make_page(engine), "call", CALLED, provider_sid=CALL_SID, status="sent")
    for status in ("ringing", "ringing", "no-answer"):
        assert (
            signed_post(
                server.base_url, server.public_url, CALL_STATUS_PATH, call_params(status), AUTH_TOKEN
            )[0]
            == 200
        )
    assert calls == [(attempt_id, "ringing"), (attempt_id, "failed")], "once per change, after it"
