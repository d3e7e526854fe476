"""The pure rules behind issue 14's points 2-4: spam verdicts from the MTA's header fields (rules
as data in ``[trust.spam]``), who may join a ticket by its tag, and what counts as machine mail."""

from __future__ import annotations

import re

import pytest

from intaked.config import ConfigError, Settings, settings_from_mapping
from intaked.outbound.loops import machine_mail_reason
from intaked.parsing import ParsedMessage, parse_message
from intaked.routing.reply_threading import tag_refusal
from intaked.routing.spam import spam_verdict

RSPAMD = [{"header": "X-Spamd-Result", "pattern": r"\[(?P<score>-?\d+(\.\d+)?) / ", "score_at_least": 15}]


def parsed(*fields: str) -> ParsedMessage:
    return parse_message(
        ("\r\n".join([*fields, "From: <a@example.com>", "Subject: x"]) + "\r\n\r\nbody\r\n").encode()
    )


@pytest.mark.parametrize(
    ("fields", "verdict"),
    [
        (["X-Spam-Flag: YES"], "X-Spam-Flag: YES"),
        (["X-Spam-Flag: yes"], "X-Spam-Flag: yes"),
        (["X-Spam-Status: Yes, score=7.1 required=5.0 tests=BAYES_99"], "X-Spam-Status: Yes, score=7.1"),
        (["X-Spam-Status: No, score=1.2 required=5.0"], None),
        (["X-Spam-Flag: NO"], None),
        (["X-Spam-Flag: NO", "X-Spam-Flag: YES"], "X-Spam-Flag: YES"),  # any field that says so
        (["X-Spam-Status: Yes,\r\n\tscore=9.9"], "X-Spam-Status: Yes, score=9.9"),  # folded
        ([], None),
    ],
)
def test_spamassassin_fields_by_default(fields: list[str], verdict: str | None) -> None:
    found = spam_verdict(parsed(*fields), Settings().trust.spam)
    assert (found if verdict is None else (found or "")[: len(verdict)]) == verdict


@pytest.mark.parametrize(
    ("value", "spam"),
    [
        ("default: False [3.40 / 15.00]; R_SPF_ALLOW(-0.20)", False),
        ("default: True [15.00 / 15.00]; BAYES_SPAM(5.1)", True),
        ("default: True [22.7 / 15.00]", True),
        ("garbage", False),
    ],
)
def test_a_configured_score_threshold(value: str, spam: bool) -> None:
    settings = settings_from_mapping({"trust": {"spam": {"rules": RSPAMD}}}, environ={})
    assert bool(spam_verdict(parsed(f"X-Spamd-Result: {value}"), settings.trust.spam)) is spam
    assert spam_verdict(parsed("X-Spam-Flag: YES"), settings.trust.spam) is None, "rules replace the defaults"


def test_disabled_means_nothing_is_spam() -> None:
    settings = settings_from_mapping({"trust": {"spam": {"enabled": False}}}, environ={})
    assert spam_verdict(parsed("X-Spam-Flag: YES"), settings.trust.spam) is None


@pytest.mark.parametrize(
    ("rule", "words"),
    [
        ({"header": "X-Priority"}, "trust.spam.rules[0].header"),
        ({"header": "X-Spam: Flag"}, 'containing "spam"'),
        ({"header": "X-Spam-Flag", "pattern": "("}, "trust.spam.rules[0].pattern"),
        ({"header": "X-Spam-Flag", "score_at_least": "high"}, "trust.spam.rules[0].score_at_least"),
        ({"header": "X-Spam-Flag", "colour": "red"}, "colour"),
    ],
)
def test_a_bad_rule_names_the_key(rule: dict[str, object], words: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(words)):
        settings_from_mapping({"trust": {"spam": {"rules": [rule]}}}, environ={})


def test_who_may_join_by_tag() -> None:
    on_ticket = {"lin@example.com", "chen@partner.example"}
    internal = ["corp.example"]
    ours = {"helpdesk@example.com"}
    assert tag_refusal("Lin@Example.com", on_ticket, internal, ours) is None
    assert tag_refusal("chen@partner.example", on_ticket, internal, ours) is None
    assert tag_refusal("boss@it.corp.example", on_ticket, internal, ours) is None
    assert "neither on the ticket" in (tag_refusal("x@evil.example", on_ticket, internal, ours) or "")
    assert "neither on the ticket" in (tag_refusal("x@corp.example.evil", on_ticket, internal, ours) or "")
    assert "our own address" in (tag_refusal("helpdesk@example.com", on_ticket | ours, internal, ours) or "")
    assert "no sender" in (tag_refusal(None, on_ticket, internal, ours) or "")


@pytest.mark.parametrize(
    ("fields", "envelope_from", "machine"),
    [
        (["Auto-Submitted: auto-replied"], "lin@example.com", True),
        (["Auto-Submitted: no"], "lin@example.com", False),
        (["X-Autoreply: yes"], "lin@example.com", True),
        (["X-Auto-Response-Suppress: OOF"], "lin@example.com", True),
        (["Precedence: bulk"], "lin@example.com", True),
        (["List-Id: <it.example.com>"], "lin@example.com", True),
        ([], "", True),
        ([], "lin@example.com", False),
    ],
)
def test_machine_mail(fields: list[str], envelope_from: str, machine: bool) -> None:
    assert bool(machine_mail_reason(parsed(*fields), envelope_from)) is machine
