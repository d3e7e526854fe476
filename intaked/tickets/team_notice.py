"""The new-ticket notice to the team a ticket is routed to (``[teams.<name>] notify_new = true``,
seed 003: "a new request is mailed to the handling team"): the number, the requester, the subject,
the first lines of the report, the suggested priority and the channel, to the team's ``email``.

Queued in the filing transaction (intaked/tickets/filing.py ``open_tickets``), once per ticket
(idempotency key ``team_new_ticket:<ticket id>:<address>``); never for a ticket filed into the
spam quarantine. Template ``team_new_ticket`` (intaked/templates/), Traditional Chinese then
English.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection

from intaked.config import Settings
from intaked.outbound.compose import CHANNEL_NAMES, new_message_id, render_notice
from intaked.outbound.notices import notice_mail
from intaked.outbound.outbox import enqueue

PURPOSE = "team_new_ticket"
FIRST_LINES = 8
FIRST_CHARS = 1000


def first_lines(text: str | None, lines: int = FIRST_LINES, chars: int = FIRST_CHARS) -> str:
    """The first ``lines`` non-blank lines of ``text`` (at most ``chars`` characters), "…" when cut."""
    kept = [line.rstrip() for line in (text or "").splitlines() if line.strip()]
    excerpt = "\n".join(kept[:lines])
    cut = len(kept) > lines or len(excerpt) > chars
    return excerpt[:chars] + ("\n…" if cut else "")


def _notice(
    settings: Settings, row: dict[str, Any], ticket_id: int, body: str | None
) -> dict[str, Any] | None:
    team = settings.teams.get(row.get("team") or "")
    if team is None or not team.notify_new or row.get("status") == "spam":
        return None
    channel = row.get("channel") or "email"
    zh, en = CHANNEL_NAMES.get(channel, (channel, channel))
    context = {
        "ticket": {
            key: row.get(key)
            for key in ("number", "subject", "requester_name", "requester_email", "requester_phone")
        },
        "team": row["team"],
        "suggested_priority": row.get("suggested_priority"),
        "channel_zh": zh,
        "channel_en": en,
        "first_lines": first_lines(body),
    }
    rendered = render_notice(PURPOSE, context, settings.acknowledgements.templates_dir)
    recipient = team.email.strip().lower()
    return notice_mail(
        settings,
        recipient,
        rendered,
        purpose=PURPOSE,
        key=f"{PURPOSE}:{ticket_id}:{recipient}"[:255],
        ticket_id=ticket_id,
        message_id=new_message_id(settings.outbound_mail.from_address, "team-new"),
    )


def queue_team_notices(
    conn: Connection,
    settings: Settings,
    ticket_rows: Sequence[dict[str, Any]],
    ticket_ids: Sequence[int],
    bodies: Sequence[str | None] = (),
) -> int:
    """Queue the notices of the new tickets ``ticket_rows`` (inserted as ``ticket_ids``; ``bodies``:
    their reports' text, in order, when known) in the caller's transaction; how many were queued."""
    if not any(team.notify_new for team in settings.teams.values()):
        return 0
    texts = list(bodies) + [None] * (len(ticket_rows) - len(bodies))
    notices = [
        notice
        for row, ticket_id, body in zip(ticket_rows, ticket_ids, texts, strict=True)
        if (notice := _notice(settings, row, ticket_id, body)) is not None
    ]
    now = max((row["created_at"] for row in ticket_rows), default=dt.datetime.now(dt.UTC))
    return enqueue(conn, notices, now)
