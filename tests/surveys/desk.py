"""A helpdesk for the survey tests: tickets filed by intake, resolved and closed the way intaked
does it, the outbox sent to a real SMTP sink, and requesters' replies taken in by intake."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import func, select, update

from intaked.config import Settings
from intaked.intake.capture import RawItem, insert_items
from intaked.intake.processor import process_once
from intaked.outbound.dispatcher import dispatch_once
from intaked.sla.context import load_context
from intaked.sla.sweeper import sweep
from intaked.sla.tracker import sync_tickets
from intaked.store.engine import make_engine
from intaked.store.migrate import upgrade
from intaked.store.models import inbound_item_table as items
from intaked.store.models import outbox_table, survey_table, ticket_event_table, ticket_table
from intaked.tickets.lifecycle import resolve
from tests.support.daemon import make_settings
from tests.support.smtpsink import SmtpSink

HELPDESK = "helpdesk@example.com.tw"
LIN = "lin@example.com.tw"
T0 = dt.datetime(2026, 12, 1, 2, 0, tzinfo=dt.UTC)  # Tue 1 Dec 10:00 in Taipei


class Desk:
    """A store, its settings (``sections`` override them) and the clocks the tests set."""

    def __init__(self, url: str, sink: SmtpSink | None = None, **sections: Any) -> None:
        self.engine = make_engine(url)
        upgrade(self.engine)
        outbound: dict[str, Any] = {"from_address": f"IT 服務台 <{HELPDESK}>"}
        if sink is not None:
            outbound.update(host="127.0.0.1", port=sink.port)
        sections.setdefault("outbound_mail", outbound)
        self.settings: Settings = make_settings(url, **sections)
        self.count = 0

    def mail(self, raw: str, sender: str = LIN, received_at: dt.datetime | None = None) -> None:
        """Take in one mail (envelope sender ``sender``, "" for a bounce), as intake does."""
        item = RawItem("smtp", raw.replace("\n", "\r\n").encode(), envelope_from=sender)
        insert_items(self.engine, [item])
        if received_at is not None:
            with self.engine.begin() as conn:
                conn.execute(update(items).where(items.c.state == "received").values(received_at=received_at))
        while process_once(self.engine, self.settings):
            pass

    def report(self, sender: str = LIN, extra: str = "") -> str:
        """A new ticket from ``sender``; returns its number."""
        self.count += 1
        self.mail(
            f"From: Lin <{sender}>\nTo: {HELPDESK}\nSubject: ERP 無法登入 {self.count}\n"
            f"Message-ID: <report-{self.count}@example.com.tw>\n{extra}"
            "Content-Type: text/plain; charset=utf-8\n\nERP 一直逾時。\n",
            sender,
        )
        with self.engine.connect() as conn:
            return str(conn.execute(select(func.max(ticket_table.c.number))).scalar_one())

    def resolve_and_close(self, number: str, now: dt.datetime = T0) -> None:
        """Resolve ``number`` and let the sweeper close it when its time comes."""
        ctx = load_context(self.engine, self.settings)
        resolve(self.engine, ctx, number, note="已重設密碼", by="Wang", now=now)
        closes_at = self.ticket(number)["auto_close_at"]
        sweep(self.engine, closes_at, settings=self.settings)

    def close_by_tool(self, number: str, now: dt.datetime = T0) -> None:
        """Another tool writes ``status = 'closed'``; the SLA tracker notices."""
        sync_tickets(self.engine, load_context(self.engine, self.settings), now=now)
        with self.engine.begin() as conn:
            conn.execute(update(ticket_table).where(ticket_table.c.number == number).values(status="closed"))
        sync_tickets(self.engine, load_context(self.engine, self.settings), now=now)

    def send_mail(self) -> None:
        """Send what the outbox holds for mail (to the sink)."""
        while dispatch_once(self.engine, self.settings):
            pass

    def ticket(self, number: str) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(select(ticket_table).where(ticket_table.c.number == number)).mappings().one()

    def tickets(self) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(ticket_table).order_by(ticket_table.c.id)).mappings())

    def survey(self, number: str) -> Any:
        t = self.ticket(number)
        with self.engine.connect() as conn:
            return (
                conn.execute(select(survey_table).where(survey_table.c.ticket_id == t["id"])).mappings().one()
            )

    def kinds(self, number: str) -> list[str]:
        t = self.ticket(number)
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    select(ticket_event_table.c.kind)
                    .where(ticket_event_table.c.ticket_id == t["id"])
                    .order_by(ticket_event_table.c.id)
                ).scalars()
            )

    def event(self, number: str, kind: str) -> dict[str, Any]:
        t = self.ticket(number)
        with self.engine.connect() as conn:
            row = (
                conn.execute(
                    select(ticket_event_table).where(
                        ticket_event_table.c.ticket_id == t["id"], ticket_event_table.c.kind == kind
                    )
                )
                .mappings()
                .one()
            )
        return {k: json.loads(row[k]) if row[k] else None for k in ("before", "after", "detail")}

    def outbox(self, purpose: str) -> list[Any]:
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    select(outbox_table).where(outbox_table.c.purpose == purpose).order_by(outbox_table.c.id)
                ).mappings()
            )


def reply(
    number: str, survey_id: str | None, body: str, *, n: int = 1, headers: str = "", subject: str = ""
) -> str:
    """A requester's reply to the survey mail (``survey_id``: its Message-ID, None: no threading)."""
    threading = (
        f"In-Reply-To: <{survey_id}>\nReferences: <report-1@example.com.tw> <{survey_id}>\n"
        if survey_id
        else ""
    )
    subject = subject or f"Re: [{number}] 滿意度調查 / Satisfaction survey: ERP 無法登入 1"
    return (
        f"From: Lin <{LIN}>\nTo: {HELPDESK}\nSubject: {subject}\nMessage-ID: <answer-{n}@example.com.tw>\n"
        f"{threading}{headers}Content-Type: text/plain; charset=utf-8\n\n{body}\n"
    )
