"""Planning a batch of parsed mail: in arrival order, what each entry becomes (a duplicate, a new
ticket, a reply joining or reopening its ticket, a follow-up), from the dedupe keys, the
references and subject tags, machine mail, spam and the trust of a tag (intaked/routing/)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import Connection, select

from intaked.config import Settings
from intaked.intake.dedupe import (
    LOOKUP_CHUNK,
    StoredMessage,
    content_key,
    dedupe_key,
    find_stored,
    same_content,
)
from intaked.intake.ledger import ClaimedItem
from intaked.outbound.acks import our_addresses
from intaked.outbound.loops import machine_mail_reason
from intaked.parsing import ParsedMessage
from intaked.routing.reply_threading import (
    Decision,
    decide,
    first_match,
    referenced_ids,
    subject_ticket_numbers,
    tag_refusal,
)
from intaked.routing.spam import spam_verdict
from intaked.routing.trust import assess_mail
from intaked.store.models import message_table, ticket_table
from intaked.surveys.inbound import MailLook, SurveyHit, find_mail_answers

_tickets = ticket_table
_messages = message_table

#: (item, parsed message or None when the parser failed, the parser failure)
ParsedItem = tuple[ClaimedItem, ParsedMessage | None, str | None]


@dataclass(slots=True)
class Plan:
    """What one entry of a batch becomes."""

    key: str
    digest: str | None = None  # the content fingerprint
    decision: Decision | None = None  # None: a duplicate
    reused_number: str | None = None  # a different mail with this Message-ID is on this stored ticket
    reused_entry: int | None = None  # ... or is this earlier entry of the batch
    existing: int | None = None  # the stored ticket it joins (or follows up, as parent)
    earlier: int | None = None  # the earlier entry of this batch whose ticket it joins
    ticket_id: int | None = None
    number: str | None = None
    parent: int | None = None  # a new ticket linked to the ticket it named but may not join
    refused: str | None = None  # why its subject tag may not join the tagged ticket
    machine: str | None = None  # why it is machine mail (joins, never changes the ticket)
    spam: str | None = None  # why it is spam (a quarantined ticket of its own)
    parent_number: str | None = None  # the number of ``parent``, or of the closed ticket followed up
    survey: int | None = None  # the survey it answers (joins the surveyed ticket, changes nothing)

    @property
    def parent_id(self) -> int | None:
        """The parent of the new ticket this plan opens."""
        return self.existing if self.decision is Decision.FOLLOW_UP else self.parent

    @property
    def ticket(self) -> int:
        """The ticket this entry went to (every plan is resolved to one before use)."""
        assert self.ticket_id is not None, "every plan is resolved to a ticket before use"
        return self.ticket_id


@dataclass(slots=True)
class _Threads:
    """What threading a batch looks at: the stored tickets its references name (by Message-ID: the
    ticket of the earliest stored message) and its subject tags name (by number), those tickets'
    number and status, and the Message-IDs of the batch's entries so far (their index)."""

    prefix: str
    by_message_id: dict[str, int]
    by_number: dict[str, int]
    tickets: dict[int, tuple[str, str]]
    earlier: dict[str, int] = field(default_factory=dict)

    def thread(self, plan: Plan, parsed: ParsedMessage, index: int) -> int | None:
        """Thread new entry ``index`` by its references (a stored ticket, or an earlier entry of the
        batch); returns the ticket its subject tag names when the references found nothing."""
        tagged: int | None = None
        for message_id in referenced_ids(parsed):
            if message_id in self.by_message_id:
                plan.existing = self.by_message_id[message_id]
                break
            if message_id in self.earlier:
                plan.earlier = self.earlier[message_id]
                break
        if plan.existing is None and plan.earlier is None:
            tagged = first_match(subject_ticket_numbers(parsed.subject, self.prefix), self.by_number)
        if parsed.message_id:
            self.earlier.setdefault(parsed.message_id, index)
        return tagged


def _thread_lookups(conn: Connection, entries: Sequence[ParsedItem], prefix: str) -> _Threads:
    """Stored Message-IDs and tagged numbers the batch refers to, and those tickets' number and status."""
    ids: set[str] = set()
    numbers: set[str] = set()
    for _, parsed, _ in entries:
        if parsed is not None:
            ids.update(referenced_ids(parsed))
            numbers.update(subject_ticket_numbers(parsed.subject, prefix))
    by_message_id: dict[str, int] = {}
    by_number: dict[str, int] = {}
    id_list, number_list = sorted(ids), sorted(numbers)
    for start in range(0, len(id_list), LOOKUP_CHUNK):
        rows = conn.execute(
            select(_messages.c.header_message_id, _messages.c.ticket_id)
            .where(_messages.c.header_message_id.in_(id_list[start : start + LOOKUP_CHUNK]))
            .order_by(_messages.c.id)
        )
        for row in rows:  # a reused Message-ID threads to its earliest stored message
            by_message_id.setdefault(row.header_message_id, row.ticket_id)
    for start in range(0, len(number_list), LOOKUP_CHUNK):
        rows = conn.execute(
            select(_tickets.c.number, _tickets.c.id).where(
                _tickets.c.number.in_(number_list[start : start + LOOKUP_CHUNK])
            )
        )
        by_number.update({row.number: row.id for row in rows})
    ticket_ids = sorted({*by_message_id.values(), *by_number.values()})
    tickets: dict[int, tuple[str, str]] = {}
    for start in range(0, len(ticket_ids), LOOKUP_CHUNK):
        rows = conn.execute(
            select(_tickets.c.id, _tickets.c.number, _tickets.c.status).where(
                _tickets.c.id.in_(ticket_ids[start : start + LOOKUP_CHUNK])
            )
        )
        tickets.update({row.id: (row.number, row.status) for row in rows})
    return _Threads(prefix, by_message_id, by_number, tickets)


def _ticket_addresses(conn: Connection, ticket_ids: Sequence[int]) -> dict[int, set[str]]:
    """The lower-case addresses on each ticket: its requester, and the senders and recipients
    (To/Cc) of its stored messages."""
    found: dict[int, set[str]] = {ticket_id: set() for ticket_id in ticket_ids}
    ids = sorted(found)
    for start in range(0, len(ids), LOOKUP_CHUNK):
        chunk = ids[start : start + LOOKUP_CHUNK]
        requesters = conn.execute(
            select(_tickets.c.id, _tickets.c.requester_email).where(_tickets.c.id.in_(chunk))
        )
        for requester in requesters:
            if requester.requester_email:
                found[requester.id].add(requester.requester_email.strip().lower())
        messages = conn.execute(
            select(_messages.c.ticket_id, _messages.c.sender, _messages.c.recipients).where(
                _messages.c.ticket_id.in_(chunk)
            )
        )
        for message in messages:
            addresses = found[message.ticket_id]
            if message.sender:
                addresses.add(message.sender.strip().lower())
            try:
                recipients = json.loads(message.recipients) if message.recipients else []
            except ValueError:
                recipients = []
            if isinstance(recipients, list):
                addresses.update(r.strip().lower() for r in recipients if isinstance(r, str))
    return found


def _unauthenticated(entry: ParsedItem, sender: str | None, settings: Settings) -> str | None:
    """Why our MTA's Authentication-Results do not vouch for this mail's internal From:, None
    when they do or when they are not read (no ``trust.authserv_id``)."""
    if not settings.trust.authserv_id:
        return None
    item, parsed, _ = entry
    fields = parsed.authentication_results if parsed else []
    verdict = assess_mail(settings.trust, sender, item.envelope_from, fields)
    return None if verdict.trusted else verdict.reason


def _plan_threading(
    plan: Plan,
    entry: ParsedItem,
    tagged: int | None,
    on_ticket: dict[int, set[str]],
    settings: Settings,
    ours: set[str],
) -> None:
    """Machine mail, spam and the trust of a subject tag: what they change in ``plan``, whose
    ``existing`` / ``earlier`` the references already set (``tagged``: the ticket the subject's
    tag names, looked at only when the references found nothing)."""
    item, parsed, _ = entry
    plan.machine = machine_mail_reason(parsed, item.envelope_from)
    plan.spam = spam_verdict(parsed, settings.trust.spam)
    if tagged is not None and plan.existing is None and plan.earlier is None:
        sender = parsed.sender.address if parsed and parsed.sender and parsed.sender.address else None
        if plan.spam:
            plan.refused = "the mail is spam: it never joins a ticket"
        else:
            plan.refused = tag_refusal(
                sender or item.envelope_from,
                on_ticket.get(tagged, set()),
                settings.trust.internal_domains,
                ours,
                _unauthenticated(entry, sender, settings),
            )
        if plan.refused is None:
            plan.existing = tagged
        else:
            plan.parent = tagged
    if plan.spam:  # never threaded: a quarantined ticket of its own, linked to what it named
        plan.parent = plan.parent if plan.parent is not None else plan.existing
        plan.existing = plan.earlier = None


def plan_batch(conn: Connection, entries: Sequence[ParsedItem], settings: Settings) -> list[Plan]:
    """Decide, in arrival order, what each entry becomes (duplicate, new, join, reopen, follow-up)."""
    prefix = settings.tickets.number_prefix
    keys = [dedupe_key(parsed, item.raw_sha256) for item, parsed, _ in entries]
    digests = [parsed.content_digest if parsed else None for _, parsed, _ in entries]
    reuse_keys = [
        content_key(key, digest) if digest and key.startswith("mid") else None
        for key, digest in zip(keys, digests, strict=True)
    ]
    raw_keys = [f"sha256:{item.raw_sha256}" for item, _, _ in entries]
    stored = find_stored(conn, [*keys, *(key for key in reuse_keys if key), *raw_keys])
    threads = _thread_lookups(conn, entries, prefix)
    on_ticket = _ticket_addresses(conn, sorted(set(threads.by_number.values())))
    ours = our_addresses(settings)
    surveyed = _survey_answers(conn, entries, prefix)
    status_now = {ticket_id: status for ticket_id, (_, status) in threads.tickets.items()}
    plans: list[Plan] = []
    first_with_key: dict[str, int] = {}
    for index, (_, parsed, _) in enumerate(entries):
        plan = Plan(keys[index], digests[index])
        plans.append(plan)
        held_by = _held_by(plan, stored, first_with_key, digests, reuse_keys[index], raw_keys[index])
        if isinstance(held_by, StoredMessage):
            plan.ticket_id, plan.number = held_by.ticket_id, held_by.number
            plan.reused_number = plan.reused_entry = None
            continue
        if held_by is not None:
            plan.earlier = held_by
            plan.reused_number = plan.reused_entry = None
            continue
        first_with_key[plan.key] = index
        plan.decision = Decision.NEW
        if index in surveyed and _answers_survey(plan, entries[index], surveyed[index], settings):
            continue
        tagged: int | None = None
        if parsed is not None:
            tagged = threads.thread(plan, parsed, index)
        _plan_threading(plan, entries[index], tagged, on_ticket, settings, ours)
        _decide(plan, threads.tickets, status_now)
    return plans


def _survey_answers(conn: Connection, entries: Sequence[ParsedItem], prefix: str) -> dict[int, SurveyHit]:
    """The entries that answer a satisfaction survey (intaked/surveys/inbound.py), looked at
    before threading: a reply to a closed ticket's survey must not open a follow-up ticket."""
    looks: list[MailLook | None] = []
    for item, parsed, _ in entries:
        if parsed is None:
            looks.append(None)
            continue
        sender = parsed.sender.address if parsed.sender and parsed.sender.address else item.envelope_from
        tags = subject_ticket_numbers(parsed.subject, prefix)
        looks.append(MailLook(referenced_ids(parsed), tags, parsed.subject, (sender or "").lower() or None))
    return find_mail_answers(conn, looks)


def _answers_survey(plan: Plan, entry: ParsedItem, hit: SurveyHit, settings: Settings) -> bool:
    """Make ``plan`` a survey answer joining the surveyed ticket, unless the mail is spam."""
    item, parsed, _ = entry
    if spam_verdict(parsed, settings.trust.spam):
        return False
    plan.survey, plan.existing, plan.number = hit.survey_id, hit.ticket_id, hit.number
    plan.decision = Decision.JOIN
    plan.machine = machine_mail_reason(parsed, item.envelope_from)
    return True


def _held_by(
    plan: Plan,
    stored: dict[str, StoredMessage],
    first_with_key: dict[str, int],
    digests: Sequence[str | None],
    reuse_key: str | None,
    raw_key: str,
) -> StoredMessage | int | None:
    """What already holds this entry: a stored message, an earlier entry of the batch, or nothing.
    A different mail reusing a held Message-ID moves ``plan`` to its own key (and notes the reuse)."""
    key = plan.key
    held_by: StoredMessage | int | None = stored.get(key, first_with_key.get(key))
    if held_by is not None and reuse_key is not None:
        held_digest = held_by.content_digest if isinstance(held_by, StoredMessage) else digests[held_by]
        if not same_content(held_digest, plan.digest):  # a different mail reusing the Message-ID
            if isinstance(held_by, StoredMessage):
                plan.reused_number = held_by.number
            else:
                plan.reused_entry = held_by
            plan.key = key = reuse_key
            held_by = stored.get(key, first_with_key.get(key))
    if held_by is None:  # the same bytes, stored when no Message-ID could be read (older parser)
        held_by = stored.get(raw_key)
    return held_by


def _decide(plan: Plan, tickets: dict[int, tuple[str, str]], status_now: dict[int, str]) -> None:
    """The decision for a threaded entry: join, reopen or follow up its ticket, by its status."""
    if plan.parent is not None:
        plan.parent_number = tickets[plan.parent][0]
    if plan.existing is not None:
        plan.decision = decide(status_now.get(plan.existing))
        if plan.machine is not None and plan.decision in (Decision.REOPEN, Decision.FOLLOW_UP):
            plan.decision = Decision.JOIN  # machine mail never changes the ticket's status
        plan.number = tickets[plan.existing][0]  # overwritten by the new number for a follow-up
        if plan.decision is Decision.FOLLOW_UP:
            plan.parent_number = plan.number  # the closed ticket it follows up
        if plan.decision is Decision.REOPEN:
            status_now[plan.existing] = "open"
    elif plan.earlier is not None:
        plan.decision = Decision.JOIN
