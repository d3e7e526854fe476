"""Who gets no survey: outside the sample (decided by the ticket number, the same on a rerun),
the spam quarantine, our own and no-reply addresses, surveys switched off."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import update

from intaked.store.models import ticket_table
from intaked.surveys.sending import sampled
from tests.surveys.desk import Desk


@pytest.fixture
def make(db_url: str) -> Iterator[list[Desk]]:
    made: list[Desk] = []
    yield made
    for desk in made:
        desk.engine.dispose()


def test_sampling_is_decided_by_the_ticket_number() -> None:
    numbers = [f"IT-202612-{n:05d}" for n in range(1, 2001)]
    half = [n for n in numbers if sampled(n, 0.5)]
    assert 850 < len(half) < 1150
    assert half == [n for n in numbers if sampled(n, 0.5)], "a rerun picks the same tickets"
    assert all(sampled(n, 1.0) for n in numbers) and not any(sampled(n, 0.0) for n in numbers)


def test_sample_rate_0_sends_none(db_url: str, make: list[Desk]) -> None:
    desk = Desk(db_url, surveys={"sample_rate": 0.0})
    make.append(desk)
    number = desk.report()
    desk.resolve_and_close(number)
    assert desk.outbox("survey") == [] and desk.ticket(number)["status"] == "closed"
    assert "not in the sample" in desk.event(number, "survey_not_sent")["detail"]["reason"]


def test_surveys_off_sends_none(db_url: str, make: list[Desk]) -> None:
    desk = Desk(db_url, surveys={"enabled": False})
    make.append(desk)
    number = desk.report()
    desk.resolve_and_close(number)
    assert desk.outbox("survey") == [] and "survey_not_sent" not in desk.kinds(number)


def test_a_spam_ticket_closed_by_a_tool_gets_none(db_url: str, make: list[Desk]) -> None:
    desk = Desk(db_url)
    make.append(desk)
    number = desk.report(extra="X-Spam-Flag: YES\n")
    assert desk.ticket(number)["status"] == "spam"
    desk.close_by_tool(number)
    assert desk.ticket(number)["status"] == "closed"
    assert desk.outbox("survey") == []
    assert desk.event(number, "survey_not_sent")["detail"] == {"reason": "spam"}


@pytest.mark.parametrize("sender", ["no-reply@example.com.tw", "helpdesk@example.com.tw"])
def test_no_reply_and_our_own_addresses_get_none(db_url: str, make: list[Desk], sender: str) -> None:
    desk = Desk(db_url)
    make.append(desk)
    number = desk.report(sender=sender)
    desk.close_by_tool(number)
    assert desk.outbox("survey") == []
    assert "no-reply" in desk.event(number, "survey_not_sent")["detail"]["reason"]


def test_a_ticket_without_an_address_gets_none(db_url: str, make: list[Desk]) -> None:
    desk = Desk(db_url)
    make.append(desk)
    number = desk.report()
    with desk.engine.begin() as conn:
        conn.execute(update(ticket_table).where(ticket_table.c.number == number).values(requester_email=None))
    desk.close_by_tool(number)
    assert desk.outbox("survey") == []
    assert "no address" in desk.event(number, "survey_not_sent")["detail"]["reason"]
