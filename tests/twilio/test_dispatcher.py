"""The Twilio dispatcher against the fake phone network behind ``prism proxy --errors``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, select, update

from intaked.config import Settings
from intaked.outbound.outbox import enqueue
from intaked.paging.outcomes import attempt_updated
from intaked.ports.phone import TemporaryFailure
from intaked.store.models import outbox_table, page_attempt_table, page_table
from intaked.twilio.client import TwilioClient
from intaked.twilio.dispatcher import TwilioSender
from intaked.twilio.rate import TokenBucket
from intaked.twilio.routes import STATUS, build_routes
from tests.support.liveness import this_worker_died
from tests.support.phone import FakePhoneNetwork, Script
from tests.support.waiting import wait_until
from tests.support.webhookd import running_webhooks
from tests.twilio.conftest import PUBLIC_URL, attempt, make_attempt, make_page, page, twilio_settings

NUMBER = "+886912000001"
OTHER = "+886912000002"


class FakeClock:
    """Monotonic time that moves only when the bucket sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def settings(twilio_api_url: str) -> Settings:
    return twilio_settings(twilio_api_url)


def sender(engine: Engine, settings: Settings, bucket: TokenBucket | None = None) -> TwilioSender:
    return TwilioSender(
        engine,
        settings,
        TwilioClient(settings.twilio),
        bucket or TokenBucket(1000.0, 1000.0),
        on_attempt=attempt_updated,
    )


def queue(engine: Engine, kind: str, payload: dict[str, Any], key: str) -> int:
    now = dt.datetime.now(dt.UTC)
    with engine.begin() as conn:
        enqueue(
            conn,
            [
                {
                    "kind": kind,
                    "purpose": "page",
                    "idempotency_key": key,
                    "recipient": payload.get("to", "-"),
                    "payload": payload,
                }
            ],
            now,
        )
        row_id = int(
            conn.execute(select(outbox_table.c.id).where(outbox_table.c.idempotency_key == key)).scalar_one()
        )
        if "attempt_id" in payload and kind != "call_cancel":
            conn.execute(
                update(page_attempt_table)
                .where(page_attempt_table.c.id == payload["attempt_id"])
                .values(outbox_id=row_id)
            )
    return row_id


def outbox_row(engine: Engine, row_id: int) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(outbox_table).where(outbox_table.c.id == row_id)).one()


def make_due(engine: Engine, row_id: int) -> None:
    """Skip the backoff (the tests check that it was set, not wait for it)."""
    with engine.begin() as conn:
        conn.execute(update(outbox_table).where(outbox_table.c.id == row_id).values(next_attempt_at=None))


def test_sms_is_sent_and_the_attempt_gets_its_sid_then_delivered(
    engine: Engine, settings: Settings, phone: FakePhoneNetwork
) -> None:
    page_id = make_page(engine)
    attempt_id = make_attempt(engine, page_id, "sms", NUMBER)
    row_id = queue(
        engine,
        "sms",
        {"to": NUMBER, "body": "P1 IT-202611-00001 回覆 1 A7K2", "attempt_id": attempt_id},
        "s1",
    )
    routes = build_routes(settings, attempt_updated, [STATUS])
    with running_webhooks(settings, engine, routes) as hooks:
        phone.deliver_to(PUBLIC_URL, hooks.base_url)
        assert sender(engine, settings).dispatch_once("sms") == 1
        row = outbox_row(engine, row_id)
        assert row.state == "sent" and row.provider_id.startswith("SM")
        sent = attempt(engine, attempt_id)
        assert sent.provider_sid == row.provider_id and sent.sent_at is not None
        (create,) = phone.creates("Messages")
        assert create.get("StatusCallback") == f"{PUBLIC_URL}/twilio/status/sms?attempt={attempt_id}"
        assert create.get("From") == settings.twilio.from_number
        wait_until(lambda: attempt(engine, attempt_id).status == "delivered", what="the delivered callback")
        phone.wait_idle()
    assert all(callback.status == 200 for callback in phone.callbacks)


def test_call_is_placed_with_callbacks_and_a_busy_number_fails_the_attempt(
    engine: Engine, settings: Settings, phone: FakePhoneNetwork
) -> None:
    phone.script(NUMBER, Script.BUSY)
    attempt_id = make_attempt(engine, make_page(engine), "call", NUMBER)
    twiml = "<Response><Say>P1</Say></Response>"
    queue(engine, "call", {"to": NUMBER, "twiml": twiml, "attempt_id": attempt_id, "timeout": 25}, "c1")
    routes = build_routes(settings, attempt_updated, [STATUS])
    with running_webhooks(settings, engine, routes) as hooks:
        phone.deliver_to(PUBLIC_URL, hooks.base_url)
        assert sender(engine, settings).dispatch_once("call") == 1
        (create,) = phone.creates("Calls")
        assert create.get("StatusCallback") == f"{PUBLIC_URL}/twilio/status/call?attempt={attempt_id}"
        assert create.getall("StatusCallbackEvent") == ["initiated", "ringing", "answered", "completed"]
        assert create.get("MachineDetection") == "Enable" and create.get("Timeout") == "25"
        assert create.get("Twiml") == twiml
        wait_until(lambda: attempt(engine, attempt_id).status == "failed", what="the busy callback")
        phone.wait_idle()
    row = attempt(engine, attempt_id)
    assert row.error == "busy" and row.provider_sid.startswith("CA") and row.ended_at is not None


@pytest.mark.parametrize("fault", ["429", "503"])
def test_provider_trouble_retries_with_backoff_and_marks_the_page(
    engine: Engine, settings: Settings, phone: FakePhoneNetwork, fault: str
) -> None:
    page_id = make_page(engine)
    attempt_id = make_attempt(engine, page_id, "sms", NUMBER)
    row_id = queue(engine, "sms", {"to": NUMBER, "body": "P1", "attempt_id": attempt_id}, "s1")
    phone.faults.append(fault)
    twilio = sender(engine, settings)
    with pytest.raises(TemporaryFailure):
        twilio.dispatch_once("sms")
    row = outbox_row(engine, row_id)
    assert row.state == "pending" and row.next_attempt_at is not None and fault in row.last_error
    assert page(engine, page_id).provider_down_since is not None
    assert attempt(engine, attempt_id).status == "queued"
    make_due(engine, row_id)
    assert twilio.dispatch_once("sms") == 1
    assert outbox_row(engine, row_id).state == "sent"
    assert page(engine, page_id).provider_down_since is None, "cleared by the next success"
    assert len([r for r in phone.resources.values() if r.kind == "message"]) == 1
    listed = [r for r in phone.requests if r.method == "GET"]
    assert bool(listed) == (fault == "503"), "after a 5xx Twilio may have acted: it is asked first"


def test_invalid_number_fails_the_attempt_permanently(
    engine: Engine, settings: Settings, phone: FakePhoneNetwork
) -> None:
    phone.script(NUMBER, Script.INVALID)
    attempt_id = make_attempt(engine, make_page(engine), "call", NUMBER)
    row_id = queue(
        engine, "call", {"to": NUMBER, "url": f"{PUBLIC_URL}/twilio/voice", "attempt_id": attempt_id}, "c1"
    )
    assert sender(engine, settings).dispatch_once("call") == 1
    assert outbox_row(engine, row_id).state == "failed"
    row = attempt(engine, attempt_id)
    assert (row.status, row.error_code) == ("failed", "21211") and "not a valid phone number" in row.error
    assert row.ended_at is not None


def test_unknown_outcome_is_reconciled_instead_of_sending_twice(
    engine: Engine, twilio_api_url: str, phone: FakePhoneNetwork
) -> None:
    settings = twilio_settings(twilio_api_url, twilio={"timeout_seconds": 0.5})
    phone.hang_seconds = 1.5
    attempt_id = make_attempt(engine, make_page(engine), "sms", NUMBER)
    row_id = queue(
        engine, "sms", {"to": NUMBER, "body": "P1 IT-202611-00001", "attempt_id": attempt_id}, "s1"
    )
    phone.faults.append("hang")  # accepted, but the answer comes after our timeout
    twilio = sender(engine, settings)
    with pytest.raises(TemporaryFailure, match="outcome unknown"):
        twilio.dispatch_once("sms")
    assert outbox_row(engine, row_id).last_error.startswith("outcome unknown")
    make_due(engine, row_id)
    phone.wait_idle()
    assert twilio.dispatch_once("sms") == 1
    assert len(phone.creates("Messages")) == 1, "sent once"
    (message,) = [r for r in phone.resources.values() if r.kind == "message"]
    assert outbox_row(engine, row_id).provider_id == message.sid
    assert attempt(engine, attempt_id).provider_sid == message.sid


def test_dropped_call_request_is_reconciled_by_the_call_list(
    engine: Engine, settings: Settings, phone: FakePhoneNetwork
) -> None:
    page_id = make_page(engine)
    earlier = make_attempt(engine, page_id, "call", NUMBER, provider_sid="CA" + "e" * 32, status="completed")
    assert earlier
    attempt_id = make_attempt(engine, page_id, "call", NUMBER)
    row_id = queue(engine, "call", {"to": NUMBER, "twiml": "<Response/>", "attempt_id": attempt_id}, "c1")
    phone.faults.append("drop")  # accepted, then the connection closes without an answer
    twilio = sender(engine, settings)
    with pytest.raises(TemporaryFailure, match="outcome unknown"):
        twilio.dispatch_once("call")
    make_due(engine, row_id)
    assert twilio.dispatch_once("call") == 1
    assert len(phone.creates("Calls")) == 1
    (call,) = [r for r in phone.resources.values() if r.kind == "call"]
    assert attempt(engine, attempt_id).provider_sid == call.sid


def test_calls_wait_for_the_rate_limit(engine: Engine, settings: Settings, phone: FakePhoneNetwork) -> None:
    clock = FakeClock()
    bucket = TokenBucket(1.0, clock=clock, sleep=clock.sleep)
    page_id = make_page(engine)
    for n in range(3):
        attempt_id = make_attempt(engine, page_id, "call", f"+88691200010{n}")
        queue(
            engine,
            "call",
            {"to": f"+88691200010{n}", "twiml": "<Response/>", "attempt_id": attempt_id},
            f"c{n}",
        )
    assert sender(engine, settings, bucket).dispatch_once("call") == 3
    assert clock.sleeps == pytest.approx([1.0, 1.0]), "the 2nd and 3rd call each waited for a token"
    assert [c.get("To") for c in phone.creates("Calls")] == [f"+88691200010{n}" for n in range(3)]


def test_token_bucket_decisions() -> None:
    clock = FakeClock()
    bucket = TokenBucket(2.0, capacity=1.0, clock=clock, sleep=clock.sleep)
    assert bucket.try_acquire() == 0.0
    assert bucket.try_acquire() == pytest.approx(0.5)
    clock.now += 0.25
    assert bucket.try_acquire() == pytest.approx(0.25)
    clock.now += 0.25
    assert bucket.try_acquire() == 0.0
    clock.now += 10
    assert bucket.try_acquire() == 0.0, "an idle bucket holds at most its capacity"
    assert bucket.try_acquire() > 0


def test_call_cancel_waits_for_the_sid_then_cancels(
    engine: Engine, settings: Settings, phone: FakePhoneNetwork
) -> None:
    phone.script(NUMBER, Script.RINGS)
    attempt_id = make_attempt(engine, make_page(engine), "call", NUMBER)
    cancel_id = queue(engine, "call_cancel", {"attempt_id": attempt_id}, "x1")
    twilio = sender(engine, settings)
    assert twilio.dispatch_once("call_cancel") == 1
    waiting = outbox_row(engine, cancel_id)
    assert waiting.state == "pending" and "waiting for the Sid" in waiting.last_error
    queue(engine, "call", {"to": NUMBER, "twiml": "<Response/>", "attempt_id": attempt_id}, "c1")
    assert twilio.dispatch_once("call") == 1
    sid = attempt(engine, attempt_id).provider_sid
    wait_until(lambda: phone.resources[sid].status == "ringing", what="ringing")
    make_due(engine, cancel_id)
    assert twilio.dispatch_once("call_cancel") == 1
    assert outbox_row(engine, cancel_id).state == "sent"
    (update_request,) = [r for r in phone.requests if r.path.endswith(f"/Calls/{sid}.json")]
    assert update_request.get("Status") == "canceled"
    assert phone.resources[sid].status == "canceled"
    assert attempt(engine, attempt_id).status == "cancelled"


def test_cancel_of_an_unknown_call_counts_as_done(
    engine: Engine, settings: Settings, phone: FakePhoneNetwork
) -> None:
    cancel_id = queue(engine, "call_cancel", {"call_sid": "CA" + "f" * 32}, "x1")
    assert sender(engine, settings).dispatch_once("call_cancel") == 1
    assert outbox_row(engine, cancel_id).state == "sent"


def test_rows_without_attempt_are_sent_too(
    engine: Engine, settings: Settings, phone: FakePhoneNetwork
) -> None:
    row_id = queue(engine, "sms", {"to": OTHER, "body": "確認 A7K2 已收到"}, "s1")
    assert sender(engine, settings).dispatch_once("sms") == 1
    row = outbox_row(engine, row_id)
    assert row.state == "sent" and row.provider_id.startswith("SM")
    assert phone.creates("Messages")[0].get("StatusCallback") == f"{PUBLIC_URL}/twilio/status/sms"


@pytest.fixture(autouse=True)
def _no_leftover_threads(phone: FakePhoneNetwork) -> Iterator[None]:
    yield
    for resource in phone.resources.values():
        resource.cancelled.set()


def test_twilio_down_puts_the_rest_of_the_batch_back_untried(
    engine: Engine, settings: Settings, phone: FakePhoneNetwork
) -> None:
    page_id = make_page(engine)
    rows = []
    for n, number in enumerate((NUMBER, OTHER)):
        attempt_id = make_attempt(engine, page_id, "sms", number)
        rows.append(queue(engine, "sms", {"to": number, "body": "P1", "attempt_id": attempt_id}, f"s{n}"))
    phone.down = True
    with pytest.raises(TemporaryFailure):
        sender(engine, settings).dispatch_once("sms")
    first, second = (outbox_row(engine, row_id) for row_id in rows)
    assert first.state == second.state == "pending"
    assert "503" in first.last_error and second.last_error.startswith("not tried")
    assert len(phone.creates("Messages")) == 1, "one request per outage, not one per row"
    assert page(engine, page_id).provider_down_since is not None


def test_unusable_payload_fails_the_row_and_its_attempt(
    engine: Engine, settings: Settings, phone: FakePhoneNetwork
) -> None:
    attempt_id = make_attempt(engine, make_page(engine), "call", NUMBER)
    row_id = queue(engine, "call", {"to": NUMBER, "attempt_id": attempt_id}, "c1")  # neither url nor twiml
    assert sender(engine, settings).dispatch_once("call") == 1
    assert outbox_row(engine, row_id).state == "failed"
    assert attempt(engine, attempt_id).status == "failed"
    assert not phone.creates("Calls")


def test_a_sender_that_died_after_twilio_accepted_does_not_send_again(
    engine: Engine, settings: Settings, phone: FakePhoneNetwork
) -> None:
    """The outbox process is killed between Twilio's 201 and the commit of ``sent``: after the
    restart the row is taken over as of unknown outcome, and Twilio is asked before any re-send."""
    from intaked.outbound.outbox import claim_due, recover_abandoned

    page_id = make_page(engine)
    attempt_id = make_attempt(engine, page_id, "sms", NUMBER)
    body = "P1 IT-202611-00001 MES down"
    queue(engine, "sms", {"to": NUMBER, "body": body, "attempt_id": attempt_id}, "s-died")
    (claimed,) = claim_due(engine, "sms", 10)
    TwilioClient(settings.twilio).send_sms(NUMBER, body, None)  # what the dead sender got done
    this_worker_died(engine)
    assert recover_abandoned(engine, lease_seconds=5, timeout_seconds=300) == 1
    assert sender(engine, settings).dispatch_once("sms") == 1
    assert len(phone.creates("Messages")) == 1, "not sent twice"
    (message,) = [r for r in phone.resources.values() if r.kind == "message"]
    assert attempt(engine, attempt_id).provider_sid == message.sid
    assert outbox_row(engine, claimed.id).state == "sent"


def test_a_page_sms_deferred_past_its_acknowledgement_is_never_sent(
    engine: Engine, settings: Settings, phone: FakePhoneNetwork
) -> None:
    """Twilio answered 503 while the page was acknowledged: the row waits for its retry, and by
    then its page has ended, so it is cancelled instead of sent."""
    page_id = make_page(engine)
    attempt_id = make_attempt(engine, page_id, "sms", NUMBER)
    row_id = queue(engine, "sms", {"to": NUMBER, "body": "P1 page", "attempt_id": attempt_id}, "s-late")
    phone.faults.append("503")
    with pytest.raises(TemporaryFailure):
        sender(engine, settings).dispatch_once("sms")
    with engine.begin() as conn:
        conn.execute(update(page_table).where(page_table.c.id == page_id).values(state="acknowledged"))
    make_due(engine, row_id)
    assert sender(engine, settings).dispatch_once("sms") == 1
    assert len(phone.creates("Messages")) == 1, "only the refused first try reached Twilio"
    assert outbox_row(engine, row_id).state == "cancelled"
    assert attempt(engine, attempt_id).status == "cancelled"


def test_a_page_sms_twilio_accepted_while_the_store_was_down_is_recorded_not_sent_again(
    engine: Engine, settings: Settings, phone: FakePhoneNetwork
) -> None:
    """Twilio answered 201, then the commit of ``sent`` failed (the database went away): the
    sender keeps the Sid, hands the batch's untried row back, and records both once the store is
    back; each number gets its SMS once."""
    from intaked.store.settle import OutcomeHeld
    from tests.support.faults import StoreOutage

    page_id = make_page(engine)
    sms_attempt = make_attempt(engine, page_id, "sms", NUMBER)
    first = queue(
        engine, "sms", {"to": NUMBER, "body": "P1 IT-202611-00001", "attempt_id": sms_attempt}, "h1"
    )
    second = queue(engine, "sms", {"to": OTHER, "body": "P1 IT-202611-00001"}, "h2")
    twilio = sender(engine, settings)
    outage = StoreOutage(engine)
    original = twilio._client.send_sms

    def accepted_then_store_down(*args: Any) -> str:
        sid = original(*args)
        outage.down = True
        return sid

    twilio._client.send_sms = accepted_then_store_down  # type: ignore[method-assign]
    with pytest.raises(OutcomeHeld):
        twilio.dispatch_once("sms")
    assert len(phone.creates("Messages")) == 1
    outage.down = False
    twilio._client.send_sms = original  # type: ignore[method-assign]
    assert twilio.unsettled.settle() == 2  # the Sid recorded; the untried row handed back
    row = outbox_row(engine, first)
    (message,) = [r for r in phone.resources.values() if r.kind == "message"]
    assert row.state == "sent" and row.provider_id == message.sid
    assert attempt(engine, sms_attempt).provider_sid == row.provider_id
    assert outbox_row(engine, second).state == "pending"
    assert twilio.dispatch_once("sms") == 1
    assert [r.get("To") for r in phone.creates("Messages")] == [NUMBER, OTHER], "each SMS once"
