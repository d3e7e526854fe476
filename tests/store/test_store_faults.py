"""A store that fails under a worker (a full disk, a cut connection): the worker keeps what it
holds and finishes it itself once the store is back, with nothing lost, nothing counted against
the message, and no side effect repeated (issue 13, points 1 and 2)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, select

from intaked.intake.capture import RawItem, insert_items
from intaked.intake.processor import process_once
from intaked.outbound.dispatcher import dispatch_once
from intaked.outbound.mailer import SmtpMailer
from intaked.store.engine import make_engine
from intaked.store.migrate import upgrade
from intaked.store.models import inbound_item_table, message_table, outbox_table, ticket_table
from intaked.store.settle import OutcomeHeld, Unsettled
from tests.support.daemon import make_settings
from tests.support.faults import StoreOutage
from tests.support.smtpsink import SmtpSink

HELPDESK = "helpdesk@example.com"


def mail(n: int) -> bytes:
    return (
        f"From: Lin <lin{n}@example.com>\r\nTo: {HELPDESK}\r\nSubject: 印表機 {n}\r\n"
        f"Message-ID: <fault-{n}@example.com>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n卡紙\r\n"
    ).encode()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def items(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(inbound_item_table).order_by(inbound_item_table.c.id)))


def count(engine: Engine, table: Any) -> int:
    with engine.connect() as conn:
        return len(conn.execute(select(table.c.id)).all())


def test_items_the_store_failed_under_are_handed_back_uncounted(engine: Engine, db_url: str) -> None:
    """The disk fills up after the batch was claimed: the items go back to ``received`` (not left
    ``processing`` for a claim timeout), the attempt is not counted (no quarantine for a disk),
    and once the store is back each becomes one ticket."""
    settings = make_settings(db_url, intake={"max_attempts": 1})
    insert_items(engine, [RawItem("smtp", mail(n), envelope_from=f"lin{n}@example.com") for n in range(3)])
    outage = StoreOutage(engine)
    outage.down, outage.after = True, 1  # the claim goes through, the tickets do not
    unsettled = Unsettled("intake")
    with pytest.raises(Exception, match="disk is full"):
        process_once(engine, settings, unsettled=unsettled)
    assert [item.state for item in items(engine)] == ["processing"] * 3
    assert len(unsettled) == 1, "handing the claims back waits for the store"
    outage.down = False
    assert unsettled.settle() == 1
    assert [(i.state, i.attempts, i.claimed_by) for i in items(engine)] == [("received", 0, None)] * 3
    assert len(process_once(engine, settings, unsettled=unsettled)) == 3
    assert [item.state for item in items(engine)] == ["done"] * 3
    assert count(engine, ticket_table) == 3


def test_a_mail_the_relay_took_is_recorded_after_the_outage_not_sent_again(
    engine: Engine, db_url: str, sink: SmtpSink
) -> None:
    """The relay said 250, then the commit of ``sent`` failed: the sender keeps that fact and
    records it once the store is back; the mail is never sent a second time."""
    settings = make_settings(
        db_url,
        outbound_mail={"from_address": HELPDESK, "host": "127.0.0.1", "port": sink.port},
        intake={"max_attempts": 1},
    )
    insert_items(engine, [RawItem("smtp", mail(n), envelope_from=f"lin{n}@example.com") for n in range(3)])
    process_once(engine, settings)
    assert count(engine, outbox_table) == 3
    outage = StoreOutage(engine)
    unsettled = Unsettled("outbox")
    with SmtpMailer(settings.outbound_mail) as mailer:
        original = mailer.send

        def send_then_lose_the_store(*args: Any) -> str:
            reply = original(*args)
            outage.down = True  # the database goes away right after the relay's 250
            return str(reply)

        mailer.send = send_then_lose_the_store  # type: ignore[method-assign]
        with pytest.raises(OutcomeHeld):
            dispatch_once(engine, settings, mailer, unsettled)
        assert len(sink.messages()) == 1
        outage.down = False
        mailer.send = original  # type: ignore[method-assign]
        unsettled.settle()
        with engine.connect() as conn:
            states = [r.state for r in conn.execute(select(outbox_table).order_by(outbox_table.c.id))]
        assert states == ["sent", "pending", "pending"], "the sent one recorded, the others handed back"
        while dispatch_once(engine, settings, mailer, unsettled):
            pass
    ids = [m.message["Message-ID"] for m in sink.messages()]
    assert len(ids) == 3 and len(set(ids)) == 3, "each acknowledgement once"
    with engine.connect() as conn:
        assert [r.state for r in conn.execute(select(outbox_table))] == ["sent"] * 3
        assert len(conn.execute(select(message_table).where(message_table.c.direction == "out")).all()) == 3
