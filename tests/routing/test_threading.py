"""Replies thread into their tickets: by In-Reply-To/References, by the number tag, in Chinese too."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select, update

from intaked.intake.capture import RawItem, insert_items
from intaked.intake.ingest import IngestOutcome
from intaked.intake.processor import process_once
from intaked.parsing import parse_message
from intaked.routing.reply_threading import Decision, decide, referenced_ids, subject_ticket_numbers
from intaked.store.engine import make_engine
from intaked.store.migrate import upgrade
from intaked.store.models import message_table, ticket_event_table, ticket_table
from tests.support.daemon import make_settings


def mail(subject: str, message_id: str, *, in_reply_to: str = "", references: str = "") -> bytes:
    headers = ["From: Lin <lin@example.com>", f"Subject: {subject}", f"Message-ID: <{message_id}>"]
    if in_reply_to:
        headers.append(f"In-Reply-To: <{in_reply_to}>")
    if references:
        headers.append(f"References: {references}")
    return ("\r\n".join(headers) + "\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n內容\r\n").encode()


class Store:
    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        upgrade(self.engine)
        self.settings = make_settings(url)

    def ingest(self, *raws: bytes) -> list[IngestOutcome]:
        insert_items(self.engine, [RawItem("smtp", raw) for raw in raws])
        out: list[IngestOutcome] = []
        while batch := process_once(self.engine, self.settings):
            out += batch
        return out

    def ticket(self, ticket_id: int) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(select(ticket_table).where(ticket_table.c.id == ticket_id)).one()

    def set_status(self, ticket_id: int, status: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(ticket_table).where(ticket_table.c.id == ticket_id).values(status=status))

    def events(self, ticket_id: int) -> list[str]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(ticket_event_table.c.kind)
                .where(ticket_event_table.c.ticket_id == ticket_id)
                .order_by("id")
            )
            return [r.kind for r in rows]

    def messages(self, ticket_id: int) -> int:
        with self.engine.connect() as conn:
            return len(
                conn.execute(select(message_table.c.id).where(message_table.c.ticket_id == ticket_id)).all()
            )


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = Store(db_url)
    yield s
    s.engine.dispose()


def test_in_reply_to_joins_the_ticket(store: Store) -> None:
    (first,) = store.ingest(mail("VPN 斷線", "a1@example.com"))
    (reply,) = store.ingest(mail("Re: VPN 斷線", "a2@example.com", in_reply_to="a1@example.com"))
    assert (reply.decision, reply.ticket_id, reply.ticket_number) == (
        "join",
        first.ticket_id,
        first.ticket_number,
    )
    assert store.messages(first.ticket_id) == 2
    assert store.events(first.ticket_id) == ["created", "ack_queued", "message_added"]


def test_references_join_when_in_reply_to_is_unknown(store: Store) -> None:
    (first,) = store.ingest(mail("ERP", "b1@example.com"))
    (reply,) = store.ingest(
        mail(
            "RE: ERP", "b3@example.com", in_reply_to="unknown@elsewhere", references="<b1@example.com> <b2@x>"
        )
    )
    assert reply.ticket_id == first.ticket_id and reply.decision == "join"


@pytest.mark.parametrize(
    "subject",
    [
        "Re: [{n}] 印表機",
        "回覆: [{n}] 印表機",
        "RE: RE: [{n}]",
        "答复：[{n}] 打印机",
        "Fwd: [{n}]",
        "轉寄: [{n}] 印表機",
        "re: [ {n} ] lower case",
        "[{lower}] 小寫編號",
        "AW: 印表機 [{n}]",
    ],
)
def test_subject_tag_joins_the_ticket(store: Store, subject: str) -> None:
    (first,) = store.ingest(mail("印表機卡紙", "c1@example.com"))
    number = first.ticket_number
    (reply,) = store.ingest(mail(subject.format(n=number, lower=number.lower()), "c2@example.com"))
    assert (reply.decision, reply.ticket_id) == ("join", first.ticket_id)


def test_unknown_tag_and_no_headers_open_a_new_ticket(store: Store) -> None:
    (first,) = store.ingest(mail("A", "d1@example.com"))
    (other,) = store.ingest(mail("Re: [IT-209901-99999] A", "d2@example.com"))
    assert other.decision == "new" and other.ticket_id != first.ticket_id


def test_reply_to_resolved_ticket_reopens_it(store: Store) -> None:
    (first,) = store.ingest(mail("Outlook 當掉", "e1@example.com"))
    store.set_status(first.ticket_id, "resolved")
    (reply,) = store.ingest(mail("Re: Outlook 當掉", "e2@example.com", in_reply_to="e1@example.com"))
    assert (reply.decision, reply.ticket_id, reply.ticket_number) == (
        "reopen",
        first.ticket_id,
        first.ticket_number,
    )
    assert store.ticket(first.ticket_id).status == "open"
    assert store.events(first.ticket_id)[-2:] == ["message_added", "reopened"]


def test_reply_to_closed_ticket_opens_a_linked_new_one(store: Store) -> None:
    (first,) = store.ingest(mail("Wi-Fi", "f1@example.com"))
    store.set_status(first.ticket_id, "closed")
    (reply,) = store.ingest(mail(f"Re: [{first.ticket_number}] Wi-Fi", "f2@example.com"))
    assert reply.decision == "follow_up" and reply.ticket_id != first.ticket_id
    assert reply.ticket_number != first.ticket_number, "a follow-up has its own number"
    follow_up = store.ticket(reply.ticket_id)
    assert follow_up.parent_id == first.ticket_id and follow_up.status == "new"
    assert store.ticket(first.ticket_id).status == "closed"
    assert store.events(first.ticket_id)[-1] == "follow_up_opened"


def test_original_and_reply_in_one_batch(store: Store) -> None:
    outcomes = store.ingest(
        mail("Disk full", "g1@example.com"),
        mail("Re: Disk full", "g2@example.com", in_reply_to="g1@example.com"),
        mail("Re: Re: Disk full", "g3@example.com", references="<g1@example.com> <g2@example.com>"),
    )
    assert [o.decision for o in outcomes] == ["new", "join", "join"]
    assert len({o.ticket_id for o in outcomes}) == 1
    assert store.messages(outcomes[0].ticket_id) == 3


def test_pure_rules() -> None:
    parsed = parse_message(mail("x", "m@x", in_reply_to="p@x", references="<r1@x> <r2@x> <p@x>"))
    assert referenced_ids(parsed) == ["p@x", "r2@x", "r1@x"]
    assert subject_ticket_numbers("Re: [it-202611-00042] [IT-202611-00043]", "IT") == [
        "IT-202611-00042",
        "IT-202611-00043",
    ]
    assert subject_ticket_numbers("[HD-202611-00001]", "IT") == []
    assert [decide(s) for s in (None, "new", "open", "pending", "resolved", "closed")] == [
        Decision.NEW,
        Decision.JOIN,
        Decision.JOIN,
        Decision.JOIN,
        Decision.REOPEN,
        Decision.FOLLOW_UP,
    ]
