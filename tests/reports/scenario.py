"""The fixed scenario of the service-level report's tests: two weeks of tickets and hotline calls
(Asia/Taipei), written straight into the tables as intaked and its people would have left them.

Week 1 is Mon 2026-11-02 .. Sun 11-08, week 2 is Mon 11-09 .. Sun 11-15. Team ``desk`` is seed
003's example in week 2 (5 new, 3 on time, 2 late); team ``network`` has the rest: tickets
carried over from week 1 (one extended twice and completed, one escalated three times and still
open), a new ticket open past its commitment, an untriaged one at 23:30 on the last day (in) and
one at 00:00 the next day (out), a spam ticket (ignored), a ticket completed in week 1 whose
survey was answered in week 2, and one closed without ever being resolved.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, insert, select

from intaked.store.models import call_table, ticket_table

TAIPEI = ZoneInfo("Asia/Taipei")
WEEK1 = (dt.date(2026, 11, 2), dt.date(2026, 11, 8))
WEEK2 = (dt.date(2026, 11, 9), dt.date(2026, 11, 15))


def at(day: int, hour: int, minute: int = 0, second: int = 0) -> dt.datetime:
    """A wall time in Taipei on 2026-11-``day``, as an aware UTC instant."""
    return dt.datetime(2026, 11, day, hour, minute, second, tzinfo=TAIPEI).astimezone(dt.UTC)


def _promise(standard: dt.datetime, commitment: dt.datetime | None = None) -> dict[str, Any]:
    """The standard time (= the resolution deadline) and the first commitment at ``standard``;
    the current commitment at ``commitment`` (after extensions) or the same."""
    return {
        "resolution_due_at": standard,
        "standard_due_at": standard,
        "first_commitment_at": standard,
        "commitment_at": commitment or standard,
    }


# Each ticket: number → its columns. Times in the comments are Taipei's.
TICKETS: dict[str, dict[str, Any]] = {
    # desk: seed 003's example, all new in week 2: D1-D3 on time, D4-D5 late.
    "D1": {  # P3, every target met; satisfaction 5
        "team": "desk",
        "status": "resolved",
        "priority": "P3",
        "created_at": at(9, 9),
        "triage_due_at": at(9, 9, 15),
        "triaged_at": at(9, 9, 10),
        "response_due_at": at(9, 13),
        "first_response_at": at(9, 9, 30),
        "first_response_by": "chen",
        **_promise(at(12, 17, 30)),
        "resolved_at": at(10, 10),
        "satisfaction_score": 5,
        "satisfaction_at": at(10, 12),
    },
    "D2": {  # P3, triaged 5 minutes late; satisfaction 4
        "team": "desk",
        "status": "resolved",
        "priority": "P3",
        "created_at": at(9, 10),
        "triage_due_at": at(9, 10, 15),
        "triaged_at": at(9, 10, 20),
        "triage_breached_at": at(9, 10, 15),
        "response_due_at": at(9, 14),
        "first_response_at": at(9, 11),
        "first_response_by": "chen",
        **_promise(at(12, 17, 30)),
        "resolved_at": at(11, 9),
        "satisfaction_score": 4,
        "satisfaction_at": at(11, 10),
    },
    "D3": {  # P2, extended once: on time by its commitment, past its first one and the standard
        "team": "desk",
        "status": "resolved",
        "priority": "P2",
        "created_at": at(10, 9),
        "triage_due_at": at(10, 9, 15),
        "triaged_at": at(10, 9, 5),
        "response_due_at": at(10, 10),
        "first_response_at": at(10, 9, 30),
        "first_response_by": "lin",
        **_promise(at(10, 17), at(11, 17)),
        "extension_count": 1,
        "resolution_breached_at": at(10, 17),
        "resolved_at": at(11, 16),
    },
    "D4": {  # P3, escalated once, late; satisfaction 2
        "team": "desk",
        "status": "resolved",
        "priority": "P3",
        "created_at": at(10, 14),
        "triage_due_at": at(10, 14, 15),
        "triaged_at": at(10, 14, 10),
        "response_due_at": at(10, 17),
        "first_response_at": at(10, 15),
        "first_response_by": "lin",
        **_promise(at(11, 12)),
        "escalation_count": 1,
        "resolution_breached_at": at(11, 12),
        "resolved_at": at(12, 9),
        "satisfaction_score": 2,
        "satisfaction_at": at(12, 10),
    },
    "D5": {  # P4, triaged late, extended once, escalated twice, late even so
        "team": "desk",
        "status": "resolved",
        "priority": "P4",
        "created_at": at(11, 9),
        "triage_due_at": at(11, 9, 15),
        "triaged_at": at(11, 9, 30),
        "triage_breached_at": at(11, 9, 15),
        "response_due_at": at(11, 17),
        "first_response_at": at(11, 10),
        "first_response_by": "chen",
        **_promise(at(12, 9), at(13, 9)),
        "extension_count": 1,
        "escalation_count": 2,
        "resolution_breached_at": at(12, 9),
        "resolved_at": at(13, 15),
    },
    # network
    "N1": {  # week 1, P2, extended twice, resolution target missed in week 1, completed in week 2
        "team": "network",
        "status": "resolved",
        "priority": "P2",
        "created_at": at(5, 10),
        "triage_due_at": at(5, 10, 15),
        "triaged_at": at(5, 10, 5),
        "response_due_at": at(5, 11),
        "first_response_at": at(5, 10, 30),
        "first_response_by": "wang",
        **_promise(at(6, 17), at(10, 17)),
        "extension_count": 2,
        "resolution_breached_at": at(6, 17),
        "resolved_at": at(10, 15),
    },
    "N2": {  # week 1, P3, extended, escalated three times, still open, commitment after week 2
        "team": "network",
        "status": "open",
        "priority": "P3",
        "created_at": at(6, 9),
        "triage_due_at": at(6, 9, 15),
        "triaged_at": at(6, 9, 10),
        "response_due_at": at(6, 13),
        "first_response_at": at(6, 9, 20),
        "first_response_by": "wang",
        **_promise(at(11, 17), at(20, 17)),
        "extension_count": 1,
        "escalation_count": 3,
        "resolution_breached_at": at(11, 17),
    },
    "N3": {  # week 2, P3, never taken: response and resolution missed, open past its commitment
        "team": "network",
        "status": "new",
        "priority": "P3",
        "created_at": at(12, 9),
        "triage_due_at": at(12, 9, 15),
        "triaged_at": at(12, 9, 10),
        "response_due_at": at(12, 13, 10),
        "response_breached_at": at(12, 13, 10),
        **_promise(at(13, 17)),
        "escalation_count": 1,
        "resolution_breached_at": at(13, 17),
    },
    "N4": {  # the last day at 23:30: in week 2; untriaged, no commitment, triage due at 23:45
        "team": "network",
        "status": "new",
        "created_at": at(15, 23, 30),
        "triage_due_at": at(15, 23, 45),
    },
    "N5": {  # the next day at 00:00: not in week 2
        "team": "network",
        "status": "new",
        "created_at": at(16, 0),
        "triage_due_at": at(16, 0, 15),
    },
    "N6": {  # spam: in no figure
        "team": "network",
        "status": "spam",
        "created_at": at(10, 9),
        "escalation_count": 5,
        "satisfaction_score": 1,
        "satisfaction_at": at(10, 10),
    },
    "N7": {  # week 1, P4, resolved (and closed) in week 1; its survey answered in week 2 (3)
        "team": "network",
        "status": "closed",
        "priority": "P4",
        "created_at": at(3, 9),
        "triage_due_at": at(3, 9, 15),
        "triaged_at": at(3, 9, 5),
        "response_due_at": at(3, 17),
        "first_response_at": at(3, 9, 30),
        "first_response_by": "wang",
        **_promise(at(4, 17)),
        "resolved_at": at(4, 9),
        "closed_at": at(6, 9),
        "satisfaction_score": 3,
        "satisfaction_at": at(9, 8),
    },
    "N8": {  # week 2, P4, closed without being resolved, on time; survey answered 23:59 (1)
        "team": "network",
        "status": "closed",
        "priority": "P4",
        "created_at": at(13, 9),
        "triage_due_at": at(13, 9, 15),
        "triaged_at": at(13, 9, 5),
        "response_due_at": at(13, 13, 5),
        "first_response_at": at(13, 9, 10),
        "first_response_by": "wang",
        **_promise(at(19, 17)),
        "closed_at": at(14, 10),
        "satisfaction_score": 1,
        "satisfaction_at": at(15, 23, 59),
    },
}

# The hotline: (outcome, started, seconds to the answer or None).
CALLS: list[tuple[str, dt.datetime, int | None]] = [
    ("answered_by_desk", at(5, 10), 10),  # week 1
    ("answered_by_desk", at(9, 9), 20),
    ("answered_by_desk", at(10, 10), 40),
    ("answered_by_desk", at(11, 11), None),  # no answer time from Twilio
    ("voicemail", at(12, 12), None),
    ("missed", at(13, 13), None),
    ("missed", at(15, 23, 30), None),  # the last day, 23:30: in week 2
    ("missed", at(16, 0), None),  # 00:00 the next day: out
]


def ticket_row(number: str, columns: dict[str, Any]) -> dict[str, Any]:
    """A full ``tickets`` row of the scenario."""
    return {
        "number": f"IT-202611-{number}",
        "channel": "email",
        "subject": f"scenario {number}",
        "updated_at": columns["created_at"],
        "escalation_count": 0,
        "extension_count": 0,
        **columns,
    }


def load(engine: Engine, tickets: dict[str, dict[str, Any]] = TICKETS) -> None:
    """Write the scenario's tickets and calls (the calls on ticket D1)."""
    rows = [ticket_row(n, c) for n, c in tickets.items()]
    keys = {key for row in rows for key in row}
    with engine.begin() as conn:
        conn.execute(insert(ticket_table), [{key: row.get(key) for key in keys} for row in rows])
        some_ticket = conn.execute(select(ticket_table.c.id).limit(1)).scalar_one()
        conn.execute(
            insert(call_table),
            [
                {
                    "call_sid": f"CA{i:032d}",
                    "ticket_id": some_ticket,
                    "from_number": "+886912345678",
                    "to_number": "+886225551234",
                    "outcome": outcome,
                    "started_at": started,
                    "answered_at": None if answer is None else started + dt.timedelta(seconds=answer),
                }
                for i, (outcome, started, answer) in enumerate(CALLS)
            ],
        )
