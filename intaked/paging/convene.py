"""Convening the L3 teams to a major incident (issue 19 point 3; the seed: the QRC commander
"convenes the technical teams", 召集): ``intaked incident convene NUMBER --team server --team
database`` pages each team's on-call with the incident's summary, and records who joined.

A convene needs the incident to have been paged (its newest page, in any state, carries its
reply code and frozen war room). Each convened person gets attempts of that page (SMS, call, as
the team's ``[teams.<name>]`` says) marked ``step = CONVENE_STEP`` (-1; the escalation's steps
count from 0), so the page's escalation, its cancellations and its confirmations leave them
alone, and the existing webhooks answer them: an SMS reply ``1 <code>`` (or ``1`` alone while
the person has an unanswered convene) or 1/2 pressed on the call records ``convene_joined``
(person, team), and 2 also dials the war room. Attempts are unique per page, person and channel
(outbox idempotency key ``page:<page>:0:-1:<person>:<channel>:0``), so convening a team twice,
or a person on two teams, pages nobody twice. Each team's ``convened`` event names its people
and attempts: the join reads its team there.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy import Connection, Engine, select, update

from intaked.config import Settings
from intaked.paging.queries import page_for_ticket
from intaked.paging.rows import hold, lock_page, page_event, page_facts, resolve_person, ticket_row
from intaked.paging.sends import queue_attempt
from intaked.paging.texts import convene_sms
from intaked.store.models import outbox_table, page_attempt_table, ticket_event_table
from intaked.store.types import utcnow

log = structlog.get_logger(__name__)

#: ``page_attempts.step`` of a convene attempt.
CONVENE_STEP = -1
_attempts = page_attempt_table


class ConveneRefused(ValueError):
    """The convene cannot run as asked (an unknown team, a team without on-call, no page)."""


@dataclass(frozen=True, slots=True)
class Convened:
    """What a convene did: per team, the people paged now (already convened people aside)."""

    number: str
    paged: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Joined:
    """A convened person answered: ``first`` is False when they had joined already."""

    number: str
    person: str
    team: str
    first: bool


def team_targets(settings: Settings, team: str) -> tuple[list[dict[str, str]], list[str]]:
    """Whom a team's convene pages (policy targets) and how (channels)."""
    cfg = settings.teams.get(team)
    if cfg is None:
        known = ", ".join(sorted(settings.teams)) or "none"
        raise ConveneRefused(f"no team named {team!r} (configured: {known}; add [teams.{team}])")
    step = None
    if cfg.policy:
        step = settings.paging.policies[cfg.policy].steps[0]
    channels: list[str] = [str(c) for c in step.channels] if step is not None else ["sms", "call"]
    if cfg.oncall:
        return [{"oncall": cfg.oncall}], channels
    if step is not None:
        return [{"oncall": t.oncall} if t.oncall else {"person": t.person} for t in step.targets], channels
    raise ConveneRefused(
        f'team {team!r} names no on-call: set [teams.{team}] oncall = "<schedule>" or policy'
    )


def convene(
    engine: Engine,
    settings: Settings,
    number: str,
    teams: Sequence[str],
    *,
    by: str,
    now: dt.datetime | None = None,
) -> Convened:
    """Page ``teams``' on-call about incident ``number`` in one transaction (nothing is sent
    when one team is refused). Raises :class:`ConveneRefused`."""
    now = now or utcnow()
    plans = {team: team_targets(settings, team) for team in dict.fromkeys(teams)}
    result = Convened(number)
    with engine.begin() as conn:
        try:
            newest = page_for_ticket(conn, number)
        except LookupError as exc:
            raise ConveneRefused(f"{number} was never paged: a convene pages from its page") from exc
        held = hold(conn, lock_page(conn, newest["id"]), now)
        facts = page_facts(held.ticket, held.page)
        for team, (targets, channels) in plans.items():
            people, attempt_ids = [], []
            for target in targets:
                person = resolve_person(conn, settings, target, now)
                english = str(getattr(person, "language", "")).startswith("en")
                body = convene_sms(facts, team, english=english)
                ids = [
                    queue_attempt(held, person, ch, round_=0, step=CONVENE_STEP, retry=0, body=body)
                    for ch in channels
                ]
                if any(ids):
                    people.append(person.name)
                    attempt_ids += [i for i in ids if i is not None]
            result.paged[team] = people
            detail = {"team": team, "people": people, "attempts": attempt_ids, "by": by}
            page_event(conn, held.ticket["id"], "convened", detail, now, by)
            log.info("convened", ticket=number, team=team, people=people, by=by)
    return result


def is_convene(attempt: Mapping[str, Any]) -> bool:
    return bool(attempt["step"] == CONVENE_STEP)


def team_of(conn: Connection, ticket_id: int, attempt_id: int, person: str) -> str:
    """The team a convene attempt was for (its ``convened`` event), "" if none says."""
    events = ticket_event_table
    details = conn.execute(
        select(events.c.detail)
        .where(events.c.ticket_id == ticket_id, events.c.kind == "convened")
        .order_by(events.c.id)
    ).scalars()
    teams = [json.loads(d) for d in details if d]
    for detail in teams:
        if attempt_id in detail.get("attempts", []):
            return str(detail["team"])
    return next((str(d["team"]) for d in teams if person in d.get("people", [])), "")


def record_join(conn: Connection, attempt: Mapping[str, Any], *, channel: str, now: dt.datetime) -> Joined:
    """A convened person answered on ``channel`` (in the caller's transaction): their convene
    attempts are marked acknowledged, their unsent ones cancelled, and ``convene_joined``
    (person, team, channel) recorded once."""
    page = lock_page(conn, attempt["page_id"])
    ticket = ticket_row(conn, page["ticket_id"])
    person = attempt["person"]
    team = team_of(conn, ticket["id"], attempt["id"], person)
    mine = (
        _attempts.c.page_id == page["id"],
        _attempts.c.step == CONVENE_STEP,
        _attempts.c.person == person,
    )
    first = (
        conn.execute(
            update(_attempts).where(*mine, _attempts.c.acknowledged_at.is_(None)).values(acknowledged_at=now)
        ).rowcount
        > 0
    )
    conn.execute(update(_attempts).where(_attempts.c.id == attempt["id"]).values(status="acknowledged"))
    unsent = conn.execute(
        select(_attempts.c.outbox_id).where(*mine, _attempts.c.status == "queued")
    ).scalars()
    conn.execute(
        update(outbox_table)
        .where(outbox_table.c.id.in_([o for o in unsent if o is not None]), outbox_table.c.state == "pending")
        .values(state="cancelled", last_error="joined the incident")
    )
    if first:
        detail = {"person": person, "team": team, "channel": channel}
        page_event(conn, ticket["id"], "convene_joined", detail, now, person)
        log.info("convene_joined", ticket=ticket["number"], person=person, team=team, channel=channel)
    return Joined(ticket["number"], person, team, first)
