"""Trust of a suggestion: the Authentication-Results parser, and what a forger can and cannot do.

Mail goes through the real parser (raw bytes), so header order is what the message says."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from intaked.config import ConfigError, TrustSettings, settings_from_mapping
from intaked.parsing import parse_message
from intaked.routing.authres import AuthResultsSyntaxError, parse_authentication_results
from intaked.routing.trust import TrustVerdict, assess_hotline, assess_mail

OURS = "mx1.corp.example.com.tw"
CFG = TrustSettings(internal_domains=["corp.example.com.tw"], authserv_id=OURS)


def verdict(
    auth: Sequence[str],
    sender: str = "mei.lin@corp.example.com.tw",
    envelope_from: str | None = None,
    cfg: TrustSettings = CFG,
) -> TrustVerdict:
    """Build the raw mail, parse it with the real parser, and ask."""
    lines = [f"Authentication-Results: {a}" for a in auth]
    lines += ["Received: from outside.example by mx1", f"From: {sender}", "Subject: 產線停工"]
    parsed = parse_message(("\r\n".join(lines) + "\r\n\r\n全廠停機\r\n").encode("utf-8"))
    header_from = parsed.sender.address if parsed.sender else None
    return assess_mail(cfg, header_from, envelope_from, parsed.authentication_results)


# --- the parser ---------------------------------------------------------------------------------


def test_parses_methods_results_reasons_and_properties() -> None:
    parsed = parse_authentication_results(
        "MX1.Example.COM 1 (our mta); spf=pass (sender SPF authorized) smtp.mailfrom=a@example.com;"
        ' dkim/1=fail reason="bad sig" header.d=example.com header.i=@example.com header.b=AbC+/d=='
        "; dmarc=none"
    )
    assert parsed.authserv_id == "mx1.example.com" and parsed.version == "1"
    spf, dkim, dmarc = parsed.results
    assert (spf.method, spf.result, spf.get("smtp.mailfrom")) == ("spf", "pass", "a@example.com")
    assert (dkim.method, dkim.version, dkim.result, dkim.reason) == ("dkim", "1", "fail", "bad sig")
    assert dkim.get("header.b") == "AbC+/d==" and dkim.get("HEADER.D") == "example.com"
    assert (dmarc.method, dmarc.result) == ("dmarc", "none")
    assert parsed.problems == ()


def test_comments_and_quoted_strings_never_make_a_result() -> None:
    parsed = parse_authentication_results(
        'mx1.example.com; spf=fail (spf=pass; dkim=pass) smtp.mailfrom="x;dkim=pass"@evil.example'
    )
    (spf,) = parsed.results
    assert (spf.method, spf.result) == ("spf", "fail")
    assert spf.get("smtp.mailfrom") == "x;dkim=pass@evil.example"


def test_nested_comments_and_escapes() -> None:
    parsed = parse_authentication_results(
        r"mx1 (a (nested \) ; spf=pass) comment); dkim=pass header.d=x.example"
    )
    assert [(r.method, r.result) for r in parsed.results] == [("dkim", "pass")]


def test_no_result_and_a_broken_resinfo() -> None:
    assert parse_authentication_results("mx1.example.com; none").results == ()
    parsed = parse_authentication_results("mx1.example.com; spf pass; dkim=pass header.d=a.example")
    assert [r.method for r in parsed.results] == ["dkim"]
    assert parsed.problems and "resinfo 1" in parsed.problems[0]
    with pytest.raises(AuthResultsSyntaxError):
        parse_authentication_results("  (only a comment)")
    with pytest.raises(AuthResultsSyntaxError):
        parse_authentication_results("; spf=pass")


# --- trust --------------------------------------------------------------------------------------


def test_internal_sender_with_spf_pass_from_our_mta_is_trusted() -> None:
    result = verdict([f"{OURS}; spf=pass smtp.mailfrom=mei.lin@corp.example.com.tw"])
    assert result.trusted and result.source == "spf"


def test_spf_without_mailfrom_uses_the_envelope_sender() -> None:
    assert verdict([f"{OURS}; spf=pass"], envelope_from="mei.lin@corp.example.com.tw").trusted
    assert not verdict([f"{OURS}; spf=pass"], envelope_from="x@evil.example").trusted
    assert not verdict([f"{OURS}; spf=pass"]).trusted


def test_dkim_pass_with_header_d_or_header_i_in_an_internal_domain() -> None:
    assert verdict([f"{OURS}; spf=none; dkim=pass header.d=corp.example.com.tw header.s=sel"]).trusted
    assert verdict([f"{OURS}; dkim=pass header.i=@hr.corp.example.com.tw"]).trusted
    result = verdict([f"{OURS}; dkim=pass header.d=evil.example"])
    assert not result.trusted and "dkim=pass (evil.example)" in result.reason


@pytest.mark.parametrize("outcome", ["fail", "softfail", "neutral", "temperror", "permerror", "none"])
def test_anything_but_pass_is_not_trusted(outcome: str) -> None:
    result = verdict(
        [
            f"{OURS}; spf={outcome} smtp.mailfrom=corp.example.com.tw;"
            f" dkim={outcome} header.d=corp.example.com.tw"
        ]
    )
    assert not result.trusted and f"spf={outcome}" in result.reason


def test_a_field_from_another_authserv_id_is_ignored() -> None:
    result = verdict(["mx.evil.example; spf=pass smtp.mailfrom=corp.example.com.tw"])
    assert not result.trusted and "not our MTA" in result.reason


def test_forged_field_with_our_id_below_our_mtas_real_field_is_ignored() -> None:
    result = verdict(
        [
            f"{OURS}; spf=softfail smtp.mailfrom=corp.example.com.tw; dkim=none",
            f"{OURS}; spf=pass smtp.mailfrom=corp.example.com.tw; dkim=pass header.d=corp.example.com.tw",
        ]
    )
    assert not result.trusted
    assert "1 field(s) below ours ignored" in result.reason


def test_forged_field_below_a_foreign_top_field_is_ignored() -> None:
    """A hop after our MTA stamped its own field on top (or our MTA did not run): fail closed."""
    result = verdict(
        ["exchange.corp.example.com.tw; spf=none", f"{OURS}; spf=pass smtp.mailfrom=corp.example.com.tw"]
    )
    assert not result.trusted


def test_two_fields_from_our_mta_when_configured() -> None:
    two = TrustSettings(internal_domains=["corp.example.com.tw"], authserv_id=OURS, authserv_fields=2)
    auth = [
        f"{OURS}; dmarc=pass header.from=corp.example.com.tw",
        f"{OURS}; dkim=pass header.d=corp.example.com.tw",
    ]
    assert verdict(auth, cfg=two).trusted
    assert not verdict(auth).trusted, "with one field configured the second is not read"


def test_external_from_is_never_trusted_even_with_an_internal_pass() -> None:
    result = verdict([f"{OURS}; spf=pass smtp.mailfrom=corp.example.com.tw"], sender="x@evil.example")
    assert not result.trusted and "'evil.example' is not internal" in result.reason
    lookalike = verdict(
        [f"{OURS}; spf=pass smtp.mailfrom=a@corp.example.com.tw.evil.example"],
        sender="a@corp.example.com.tw.evil.example",
    )
    assert not lookalike.trusted


def test_without_configuration_nothing_is_trusted() -> None:
    auth = [f"{OURS}; spf=pass smtp.mailfrom=corp.example.com.tw"]
    assert not verdict(auth, cfg=TrustSettings(internal_domains=["corp.example.com.tw"])).trusted
    assert not verdict(auth, cfg=TrustSettings(authserv_id=OURS)).trusted
    assert not verdict([]).trusted


def test_hotline_emergency_choice() -> None:
    assert assess_hotline(CFG, "1").trusted
    assert not assess_hotline(CFG, "2").trusted and not assess_hotline(CFG, None).trusted
    nine = settings_from_mapping({"trust": {"hotline_emergency_choice": "9"}}, environ={}).trust
    assert assess_hotline(nine, "9").trusted and not assess_hotline(nine, "1").trusted


def test_bad_trust_settings_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"trust\.internal_domains\[0\]: 'a b' is not a domain"):
        settings_from_mapping({"trust": {"internal_domains": ["a b"]}}, environ={})
    with pytest.raises(ConfigError, match=r"trust\.authserv_id: 'mx1; x' is not a host name"):
        settings_from_mapping({"trust": {"authserv_id": "mx1; x"}}, environ={})
