"""Did our MTA's spam filter flag this mail? (pure; the rules are data: ``[trust.spam]``).

The parser keeps the header fields whose name contains "spam" (``ParsedMessage.spam_fields``);
each ``[[trust.spam.rules]]`` names one field, a pattern and optionally a score threshold. The
default rules read SpamAssassin's ``X-Spam-Flag: YES`` and ``X-Spam-Status: Yes, score=...``; for
Rspamd add e.g. ``{header = "X-Rspamd-Score", score_at_least = 15}``.

Any field that matches flags the mail, wherever it is in the header: a sender can only make its
own mail look like spam (it is kept, in quarantine), never make flagged mail look clean.
"""

from __future__ import annotations

import re
from functools import lru_cache

from intaked.config import SpamRuleSettings, SpamSettings
from intaked.parsing import ParsedMessage

_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")


@lru_cache(maxsize=64)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


def _score(match: re.Match[str], value: str) -> float | None:
    text = match.groupdict().get("score")
    if text is None:
        found = _NUMBER.search(value)
        text = found.group(0) if found else None
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def _rule_matches(rule: SpamRuleSettings, value: str) -> bool:
    match = _compiled(rule.pattern).search(value)
    if match is None:
        return False
    if rule.score_at_least is None:
        return True
    score = _score(match, value)
    return score is not None and score >= rule.score_at_least


def spam_verdict(parsed: ParsedMessage | None, settings: SpamSettings) -> str | None:
    """Why this mail is spam (the field that says so, as a person reads it), or None."""
    if parsed is None or not settings.enabled or not parsed.spam_fields:
        return None
    for rule in settings.rules:
        wanted = rule.header.lower()
        for name, value in parsed.spam_fields:
            if name == wanted and _rule_matches(rule, value):
                return f"{rule.header}: {value}"[:500]
    return None
