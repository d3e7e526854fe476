"""Routing rules as data: which category, team and suggested priority a new report gets.

The rules come from ``[[routing.rules]]`` in the configuration, in order. Each rule has match
conditions (every condition it gives must hold; a list means any of its entries) and actions
(``category``, ``team``, ``suggested_priority``). **First match wins per field**: the rules are
walked in order and each field is taken from the first matching rule that sets it, so a specific
rule early in the list can set the priority while a broader one later still sets the team.

:func:`route` is a pure function of the compiled rules and the facts of one report; it also says,
for ``intaked rules test``, why each rule matched or not. Rules are compiled once per settings
object (:func:`compiled_rules`). With no rules nothing is routed.

Matching:

- ``channel``, ``hotline_choice``, ``department``, ``site``: equal (case-insensitive, except the
  menu digit, which is compared as written);
- ``recipient``, ``sender``: the address, exact and case-insensitive; ``recipient`` holds when any
  recipient of the report (envelope, To, Cc) is one of them;
- ``sender_domain``: the sender address's domain, exact and case-insensitive (list subdomains
  separately);
- ``keywords``: case-insensitive substring of the subject and body (``subject_only``: the subject),
  so Chinese works without word boundaries;
- ``patterns``: Python regular expressions searched in the subject, a newline and the body
  (``(?i)`` makes one case-insensitive).

Only the first :data:`MAX_SCANNED_BODY_CHARS` characters of a body are searched: the report is at
the top, and quoted history or a pasted log must not make routing slow.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from intaked.config import RoutingRuleSettings, RoutingSettings, Settings

MAX_SCANNED_BODY_CHARS = 20_000
FIELDS = ("category", "team", "suggested_priority")


@dataclass(frozen=True, slots=True)
class RoutingFacts:
    """What routing looks at in one report."""

    channel: str
    recipients: tuple[str, ...] = ()
    hotline_choice: str | None = None
    sender: str | None = None
    subject: str = ""
    body: str = ""
    department: str | None = None
    site: str | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    """One compiled rule: conditions normalised for matching, and its actions."""

    name: str
    channel: frozenset[str] = frozenset()
    recipient: frozenset[str] = frozenset()
    hotline_choice: frozenset[str] = frozenset()
    sender: frozenset[str] = frozenset()
    sender_domain: frozenset[str] = frozenset()
    department: frozenset[str] = frozenset()
    site: frozenset[str] = frozenset()
    keywords: tuple[str, ...] = ()  # casefolded
    patterns: tuple[re.Pattern[str], ...] = ()
    subject_only: bool = False
    category: str | None = None
    team: str | None = None
    suggested_priority: str | None = None

    def sets(self, field_name: str) -> str | None:
        value: str | None = getattr(self, field_name)
        return value


@dataclass(frozen=True, slots=True)
class RuleVerdict:
    """Whether one rule matched, and why: one line per condition checked (a failing condition
    ends the check, so it is the last line)."""

    rule: str
    matched: bool
    reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RoutingResult:
    """Each field with the rule that set it (None: no rule set it), and every rule's verdict."""

    category: str | None = None
    team: str | None = None
    suggested_priority: str | None = None
    set_by: dict[str, str] = field(default_factory=dict)  # field -> rule name
    verdicts: tuple[RuleVerdict, ...] = ()

    @property
    def matched_rules(self) -> tuple[str, ...]:
        return tuple(v.rule for v in self.verdicts if v.matched)


def compile_rule(cfg: RoutingRuleSettings) -> Rule:
    """The matching form of one validated ``[[routing.rules]]`` table."""

    def lowered(values: list[str]) -> frozenset[str]:
        return frozenset(v.strip().casefold() for v in values)

    return Rule(
        name=cfg.name,
        channel=lowered(cfg.channel),
        recipient=lowered(cfg.recipient),
        hotline_choice=frozenset(v.strip() for v in cfg.hotline_choice),
        sender=lowered(cfg.sender),
        sender_domain=lowered(cfg.sender_domain),
        department=lowered(cfg.department),
        site=lowered(cfg.site),
        keywords=tuple(k.casefold() for k in cfg.keywords),
        patterns=tuple(re.compile(p) for p in cfg.patterns),
        subject_only=cfg.subject_only,
        category=cfg.category,
        team=cfg.team,
        suggested_priority=cfg.suggested_priority,
    )


def compile_rules(cfg: RoutingSettings) -> tuple[Rule, ...]:
    return tuple(compile_rule(rule) for rule in cfg.rules)


_cached: list[tuple[RoutingSettings, tuple[Rule, ...]]] = []


def compiled_rules(settings: Settings) -> tuple[Rule, ...]:
    """The rules of ``settings``, compiled once per settings object."""
    routing = settings.routing
    cached = _cached[:1]
    if cached and cached[0][0] is routing:
        return cached[0][1]
    rules = compile_rules(routing)
    _cached[:] = [(routing, rules)]
    return rules


@dataclass(frozen=True, slots=True)
class _Prepared:
    """The facts, normalised once per report for every rule."""

    facts: RoutingFacts
    recipients: frozenset[str]
    sender: str
    sender_domain: str
    subject_folded: str
    text_folded: str
    text: str


def _prepare(facts: RoutingFacts) -> _Prepared:
    sender = (facts.sender or "").strip().casefold()
    body = facts.body[:MAX_SCANNED_BODY_CHARS]
    text = f"{facts.subject}\n{body}"
    return _Prepared(
        facts=facts,
        recipients=frozenset(r.strip().casefold() for r in facts.recipients if r),
        sender=sender,
        sender_domain=sender.rpartition("@")[2] if "@" in sender else "",
        subject_folded=facts.subject.casefold(),
        text_folded=text.casefold(),
        text=text,
    )


def _shown(values: frozenset[str]) -> str:
    return "[" + ", ".join(sorted(values)) + "]"


def _check(rule: Rule, p: _Prepared) -> RuleVerdict:
    """Every condition of ``rule`` against ``p``, in a fixed order, stopping at the first that fails."""
    reasons: list[str] = []

    def fail(reason: str) -> RuleVerdict:
        reasons.append(reason)
        return RuleVerdict(rule.name, False, tuple(reasons))

    facts = p.facts
    if rule.channel:
        channel = facts.channel.casefold()
        if channel not in rule.channel:
            return fail(f"channel {channel!r} is not one of {_shown(rule.channel)}")
        reasons.append(f"channel is {channel!r}")
    if rule.recipient:
        hits = sorted(rule.recipient & p.recipients)
        if not hits:
            return fail(f"no recipient is one of {_shown(rule.recipient)}")
        reasons.append(f"recipient {hits[0]!r}")
    if rule.hotline_choice:
        choice = (facts.hotline_choice or "").strip()
        if choice not in rule.hotline_choice:
            shown = repr(choice) if choice else "none"
            return fail(f"hotline choice {shown} is not one of {_shown(rule.hotline_choice)}")
        reasons.append(f"hotline choice {choice!r}")
    if rule.sender:
        if p.sender not in rule.sender:
            return fail(f"sender {p.sender or 'none'!r} is not one of {_shown(rule.sender)}")
        reasons.append(f"sender {p.sender!r}")
    if rule.sender_domain:
        if p.sender_domain not in rule.sender_domain:
            return fail(
                f"sender domain {p.sender_domain or 'none'!r} is not one of {_shown(rule.sender_domain)}"
            )
        reasons.append(f"sender domain {p.sender_domain!r}")
    for name, value, wanted in (
        ("department", facts.department, rule.department),
        ("site", facts.site, rule.site),
    ):
        if wanted:
            folded = (value or "").strip().casefold()
            if folded not in wanted:
                shown = repr(value) if value else "unknown (not in the directory)"
                return fail(f"{name} {shown} is not one of {_shown(wanted)}")
            reasons.append(f"{name} {value!r}")
    text_failure = _text_failure(rule, p, reasons)
    if text_failure is not None:
        return fail(text_failure)
    return RuleVerdict(rule.name, True, tuple(reasons))


def _text_failure(rule: Rule, p: _Prepared, reasons: list[str]) -> str | None:
    """The keyword and pattern conditions: None when they hold (what matched added to ``reasons``),
    else why they do not."""
    where = "subject" if rule.subject_only else "subject or body"
    if rule.keywords:
        haystack = p.subject_folded if rule.subject_only else p.text_folded
        hit = next((k for k in rule.keywords if k in haystack), None)
        if hit is None:
            return f"no keyword in the {where}"
        reasons.append(f"keyword {hit!r} in the {where}")
    if rule.patterns:
        text = p.facts.subject if rule.subject_only else p.text
        for pattern in rule.patterns:
            found = pattern.search(text)
            if found:
                reasons.append(f"pattern {pattern.pattern!r} found {found.group(0)!r} in the {where}")
                break
        else:
            return f"no pattern found in the {where}"
    return None


def route(
    rules: tuple[Rule, ...] | list[Rule], facts: RoutingFacts, *, explain: bool = False
) -> RoutingResult:
    """Walk ``rules`` in order; each field comes from the first matching rule that sets it.

    Without ``explain`` the walk stops once every field is set and skips rules that could only set
    fields already set (the ingest path); with it every rule is checked, for ``intaked rules test``.
    """
    if not rules:
        return RoutingResult()
    prepared = _prepare(facts)
    values: dict[str, str] = {}
    set_by: dict[str, str] = {}
    verdicts: list[RuleVerdict] = []
    for rule in rules:
        open_fields = [f for f in FIELDS if f not in values and rule.sets(f) is not None]
        if not open_fields and not explain:
            if len(values) == len(FIELDS):
                break
            continue
        verdict = _check(rule, prepared)
        if not open_fields and verdict.matched:
            verdict = RuleVerdict(verdict.rule, True, (*verdict.reasons, "(its fields were already set)"))
        verdicts.append(verdict)
        if verdict.matched:
            for field_name in open_fields:
                value = rule.sets(field_name)
                assert value is not None
                values[field_name] = value
                set_by[field_name] = rule.name
    return RoutingResult(
        category=values.get("category"),
        team=values.get("team"),
        suggested_priority=values.get("suggested_priority"),
        set_by=set_by,
        verdicts=tuple(verdicts),
    )
