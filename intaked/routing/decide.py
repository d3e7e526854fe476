"""Routing of one new report: directory lookup, rules and trust together, as ticket columns and
the ``routed`` event. Used by ingest (new tickets from mail) and by ``intaked rules test``.

The ticket columns it sets (docs/schema.md, 0005):

- ``category``, ``team``, ``suggested_priority``: from the rules (``team`` only when a rule sets
  one; None otherwise, the default);
- ``suggested_by``: ``rule:<name>`` of the rule that set ``suggested_priority`` (None without one);
  for a hotline call, the emergency menu choice suggests P1 when no rule suggests anything
  (``hotline:emergency``);
- ``suggestion_trusted``: True only when there is a suggested priority *and* its source is
  trusted (intaked/routing/trust.py); False otherwise;
- ``requester_department``, ``requester_site``; ``requester_name`` and ``requester_phone`` from
  the directory when the report lacks them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from intaked.config import Settings
from intaked.parsing import ParsedMessage
from intaked.routing.directory import Directory, Person, directory_for
from intaked.routing.rules import RoutingFacts, RoutingResult, compiled_rules, route
from intaked.routing.trust import TrustVerdict, assess_hotline, assess_mail

#: ``suggested_by`` of the P1 the hotline's emergency choice suggests when no rule suggests one.
HOTLINE_EMERGENCY = "hotline:emergency"


@dataclass(frozen=True, slots=True)
class RoutedReport:
    """The outcome for one report: what the rules said, whether it is trusted, who sent it."""

    facts: RoutingFacts
    result: RoutingResult
    trust: TrustVerdict
    person: Person | None

    @property
    def suggestion_trusted(self) -> bool:
        return self.result.suggested_priority is not None and self.trust.trusted

    @property
    def suggested_by(self) -> str | None:
        source = self.result.set_by.get("suggested_priority")
        if source is None:
            return None
        return source if source == HOTLINE_EMERGENCY else f"rule:{source}"

    def ticket_columns(self, requester_name: str | None, requester_phone: str | None) -> dict[str, Any]:
        """The ``tickets`` columns routing sets, given what the report itself says of the requester."""
        person = self.person
        phone = requester_phone or (person.phones[0] if person and person.phones else None)
        return {
            "category": self.result.category,
            "team": self.result.team,
            "suggested_priority": self.result.suggested_priority,
            "suggested_by": self.suggested_by,
            "suggestion_trusted": self.suggestion_trusted,
            "requester_department": (person.department or None) if person else None,
            "requester_site": (person.site or None) if person else None,
            "requester_name": requester_name or ((person.name or None) if person else None),
            "requester_phone": phone,
        }

    def event_detail(self) -> dict[str, Any]:
        """The detail of the ``routed`` ticket event."""
        return {
            "category": self.result.category,
            "team": self.result.team,
            "suggested_priority": self.result.suggested_priority,
            "trusted": self.suggestion_trusted,
            "trust_reason": self.trust.reason,
            "rules": dict(self.result.set_by),
            "matched": list(self.result.matched_rules),
            "directory": self.person.email or self.person.name if self.person else None,
        }

    @property
    def worth_an_event(self) -> bool:
        """Something was decided: a rule matched or the directory knew the requester."""
        return bool(self.result.set_by) or self.person is not None


def mail_facts(
    parsed: ParsedMessage | None,
    envelope_from: str | None,
    envelope_to: Sequence[str],
    person: Person | None,
) -> RoutingFacts:
    """The routing facts of a mail: From: (else the envelope sender), every recipient."""
    sender = parsed.sender.address if parsed and parsed.sender and parsed.sender.address else envelope_from
    recipients = [*envelope_to]
    if parsed is not None:
        recipients += [a.address for a in (*parsed.to, *parsed.cc) if a.address]
    return RoutingFacts(
        channel="email",
        recipients=tuple(dict.fromkeys(r.strip().lower() for r in recipients if r)),
        sender=sender.strip().lower() if sender else None,
        subject=parsed.subject if parsed else "",
        body=parsed.body_text if parsed else "",
        department=person.department or None if person else None,
        site=person.site or None if person else None,
    )


def route_mail(
    settings: Settings,
    parsed: ParsedMessage | None,
    envelope_from: str | None,
    envelope_to: Sequence[str],
    *,
    directory: Directory | None = None,
    explain: bool = False,
) -> RoutedReport:
    """Look the sender up, apply the rules and decide trust for one mail (no I/O beyond the
    directory's cached table)."""
    directory = directory if directory is not None else directory_for(settings)
    header_from = parsed.sender.address if parsed and parsed.sender and parsed.sender.address else None
    person = directory.by_email(header_from or envelope_from) if directory.path else None
    facts = mail_facts(parsed, envelope_from, envelope_to, person)
    result = route(compiled_rules(settings), facts, explain=explain)
    trust = assess_mail(
        settings.trust, header_from, envelope_from, parsed.authentication_results if parsed else []
    )
    return RoutedReport(facts, result, trust, person)


def route_call(
    settings: Settings,
    caller: str | None,
    hotline_choice: str | None,
    *,
    transcript: str = "",
    recipient: str | None = None,
    directory: Directory | None = None,
    explain: bool = False,
) -> RoutedReport:
    """The same for a hotline call (for the hotline channel and ``intaked rules test``)."""
    directory = directory if directory is not None else directory_for(settings)
    person = directory.by_phone(caller) if directory.path and caller else None
    facts = RoutingFacts(
        channel="phone",
        recipients=(recipient.lower(),) if recipient else (),
        hotline_choice=hotline_choice,
        sender=person.email if person and person.email else None,
        body=transcript,
        department=person.department or None if person else None,
        site=person.site or None if person else None,
    )
    result = route(compiled_rules(settings), facts, explain=explain)
    trust = assess_hotline(settings.trust, hotline_choice)
    if trust.trusted and result.suggested_priority is None:
        result = replace(
            result,
            suggested_priority="P1",
            set_by={**result.set_by, "suggested_priority": HOTLINE_EMERGENCY},
        )
    return RoutedReport(facts, result, trust, person)


def as_channel(settings: Settings, report: RoutedReport, channel: str) -> RoutedReport:
    """The same report routed as if it came by another channel (``intaked rules test --channel``)."""
    facts = replace(report.facts, channel=channel)
    return RoutedReport(
        facts, route(compiled_rules(settings), facts, explain=True), report.trust, report.person
    )


def warm_up_routing(settings: Settings) -> None:
    """Compile the rules and load the directory now, not in the first ticket's transaction."""
    compiled_rules(settings)
    directory_for(settings).refresh(force=True)
