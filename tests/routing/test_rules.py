"""Routing rules: from TOML text to a result, first match wins per field, every condition type."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from intaked.config import ConfigError, RoutingRuleSettings, Settings, load_settings, settings_from_mapping
from intaked.routing.rules import RoutingFacts, compiled_rules, route

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "intaked.example.toml"


def settings_from_toml(tmp_path: Path, text: str) -> Settings:
    path = tmp_path / "intaked.toml"
    path.write_text(text, encoding="utf-8")
    settings, _ = load_settings(path, environ={})
    return settings


def example_rules_settings() -> Settings:
    """The commented [[routing.rules]] block of the example file, uncommented."""
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    block = []
    for line in lines[lines.index("# [[routing.rules]]") :]:
        if not line.startswith("#"):
            break
        block.append(line.removeprefix("# "))
    return settings_from_mapping(tomllib.loads("\n".join(block)), environ={})


def mail(subject: str = "", body: str = "", **more: Any) -> RoutingFacts:
    return RoutingFacts(channel=more.pop("channel", "email"), subject=subject, body=body, **more)


FIRST_MATCH = """
[[routing.rules]]
name = "plant-p1"
keywords = ["產線停工"]
suggested_priority = "P1"

[[routing.rules]]
name = "plant-team"
keywords = ["產線", "停工"]
category = "incident"
team = "field_service_apac"
suggested_priority = "P3"

[[routing.rules]]
name = "everything-else"
channel = "email"
category = "service_request"
team = "collaboration"
suggested_priority = "P4"
"""


def test_each_field_comes_from_the_first_matching_rule_that_sets_it(tmp_path: Path) -> None:
    rules = compiled_rules(settings_from_toml(tmp_path, FIRST_MATCH))
    result = route(rules, mail("緊急", "三廠的產線停工了，請盡快處理"))
    assert (result.category, result.team, result.suggested_priority) == (
        "incident",
        "field_service_apac",
        "P1",
    )
    assert result.set_by == {
        "suggested_priority": "plant-p1",
        "category": "plant-team",
        "team": "plant-team",
    }
    other = route(rules, mail("密碼重設", "請幫我重設密碼"))
    assert (other.category, other.team, other.suggested_priority) == (
        "service_request",
        "collaboration",
        "P4",
    )
    assert set(other.set_by.values()) == {"everything-else"}


def test_explain_checks_every_rule_and_says_why(tmp_path: Path) -> None:
    rules = compiled_rules(settings_from_toml(tmp_path, FIRST_MATCH))
    result = route(rules, mail("", "產線停工"), explain=True)
    verdicts = {v.rule: v for v in result.verdicts}
    assert verdicts["plant-p1"].matched and "keyword '產線停工'" in verdicts["plant-p1"].reasons[-1]
    assert verdicts["everything-else"].matched
    assert "already set" in verdicts["everything-else"].reasons[-1]
    quiet = route(rules, mail("", "產線停工"))
    assert [v.rule for v in quiet.verdicts] == ["plant-p1", "plant-team"], "stops once every field is set"
    phone = route(rules, mail("", "hello", channel="phone"), explain=True)
    assert phone.verdicts[2].reasons == ("channel 'phone' is not one of [email]",)


def test_no_rules_routes_nothing() -> None:
    result = route(compiled_rules(Settings()), mail("產線停工", "全廠 MES 當機"), explain=True)
    assert (result.category, result.team, result.suggested_priority, result.verdicts) == (
        None,
        None,
        None,
        (),
    )


@pytest.mark.parametrize(
    ("condition", "facts", "matches"),
    [
        ('channel = ["phone"]', mail(channel="phone"), True),
        ('channel = ["phone"]', mail(), False),
        ('recipient = "VIP@Example.com"', mail(recipients=("vip@example.com",)), True),
        ('recipient = "vip@example.com"', mail(recipients=("helpdesk@example.com",)), False),
        ('hotline_choice = ["1", "2"]', mail(channel="phone", hotline_choice="2"), True),
        ('hotline_choice = "1"', mail(channel="phone", hotline_choice="3"), False),
        ('hotline_choice = "1"', mail(channel="phone"), False),
        ('sender = "Boss@Example.com"', mail(sender="boss@example.com"), True),
        ('sender = "boss@example.com"', mail(sender="boss@example.com.evil"), False),
        ('sender_domain = "@fab.example.com"', mail(sender="op@FAB.example.com"), True),
        ('sender_domain = "example.com"', mail(sender="op@fab.example.com"), False),
        ('department = "製造部"', mail(department="製造部"), True),
        ('department = "製造部"', mail(), False),
        ('site = ["Hsinchu", "Tainan"]', mail(site="tainan"), True),
        ('site = "Hsinchu"', mail(site="Taichung"), False),
        ('keywords = ["印表機"]', mail("", "三樓的印表機卡紙"), True),
        ('keywords = ["how do i"]', mail("How do I reset my VPN?"), True),
        ('keywords = ["printer"]', mail("VPN"), False),
        ('keywords = ["印表機"]\nsubject_only = true', mail("卡紙", "印表機"), False),
        ('keywords = ["印表機"]\nsubject_only = true', mail("印表機卡紙"), True),
        ("patterns = ['ERP\\s*無法使用']", mail("ERP 無法使用"), True),
        ("patterns = ['(?<![A-Za-z])MES(?![A-Za-z])']", mail("MES系統當機"), True),
        ("patterns = ['(?<![A-Za-z])MES(?![A-Za-z])']", mail("lost messages"), False),
        ("patterns = ['(?i)ransom']", mail("", "RANSOMWARE note"), True),
    ],
)
def test_every_condition_type(tmp_path: Path, condition: str, facts: RoutingFacts, matches: bool) -> None:
    toml = f'[[routing.rules]]\nname = "r"\n{condition}\ncategory = "incident"\n'
    result = route(compiled_rules(settings_from_toml(tmp_path, toml)), facts, explain=True)
    assert result.verdicts[0].matched is matches, result.verdicts[0].reasons
    assert result.category == ("incident" if matches else None)


def test_all_given_conditions_must_hold(tmp_path: Path) -> None:
    toml = (
        '[[routing.rules]]\nname = "r"\nchannel = "email"\nsender_domain = "example.com"\n'
        'keywords = ["印表機"]\nteam = "collaboration"\n'
    )
    rules = compiled_rules(settings_from_toml(tmp_path, toml))
    assert route(rules, mail("印表機", sender="a@example.com")).team == "collaboration"
    failed = route(rules, mail("印表機", sender="a@other.example"), explain=True)
    assert failed.team is None
    assert failed.verdicts[0].reasons[-1] == "sender domain 'other.example' is not one of [example.com]"


def test_keyword_inside_a_chinese_sentence() -> None:
    settings = settings_from_mapping(
        {"routing": {"rules": [{"name": "p1", "keywords": ["產線停工"], "suggested_priority": "P1"}]}},
        environ={},
    )
    result = route(compiled_rules(settings), mail("急件", "今天早上八點三廠B棟產線停工，MES無法登入"))
    assert result.suggested_priority == "P1" and result.set_by == {"suggested_priority": "p1"}


def test_bad_regex_is_a_config_error_naming_the_key(tmp_path: Path) -> None:
    toml = (
        "".join(f'[[routing.rules]]\nname = "r{n}"\nkeywords = ["x"]\nteam = "qrc"\n' for n in range(3))
        + '[[routing.rules]]\nname = "r3"\npatterns = [\'(無法\']\nteam = "qrc"\n'
    )
    with pytest.raises(ConfigError) as caught:
        settings_from_toml(tmp_path, toml)
    message = str(caught.value)
    assert "routing.rules[3].patterns[0]: not a valid regular expression: missing )" in message


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"name": "r", "keywords": ["x"]}, "routing.rules[0]: rule 'r' sets nothing"),
        ({"name": "r", "team": "qrc"}, "routing.rules[0]: rule 'r' has no condition"),
        (
            {"name": "r", "keywords": ["x"], "category": "outage"},
            "routing.rules[0].category: Input should be",
        ),
        ({"name": "r", "keywords": ["x"], "suggested_priority": "P5"}, "routing.rules[0].suggested_priority"),
        (
            {"name": "r", "keywords": ["x"], "team": "qrc", "colour": "red"},
            "routing.rules[0].colour: unknown key",
        ),
        (
            {"name": "r", "sender": "nobody", "team": "qrc"},
            "routing.rules[0].sender[0]: 'nobody' is not an e-mail",
        ),
        ({"keywords": ["x"], "team": "qrc"}, "routing.rules[0].name: required key is missing"),
    ],
)
def test_bad_rules_name_the_key(rule: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping({"routing": {"rules": [rule]}}, environ={})
    assert message in str(caught.value)


def test_rule_names_are_unique() -> None:
    rule = {"name": "twice", "keywords": ["x"], "team": "qrc"}
    with pytest.raises(ConfigError, match=r"routing\.rules: .*'twice' is used twice"):
        settings_from_mapping({"routing": {"rules": [rule, rule]}}, environ={})


def test_example_file_documents_every_rule_key() -> None:
    settings = example_rules_settings()
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    block = lines[lines.index("# [[routing.rules]]") :]
    shown = {
        line.removeprefix("# ").split("=")[0].strip()
        for line in block
        if line.startswith("# ") and "=" in line
    }
    assert set(RoutingRuleSettings.model_fields) <= shown
    documented = {
        line.removeprefix("# # ").split(":")[0].split(".")[-1].strip()
        for line in block
        if line.startswith("# # ")
    }
    for key in RoutingRuleSettings.model_fields:
        assert any(key in d for d in documented) or key == "name", f"rule key {key} has no comment"
    assert len(settings.routing.rules) >= 6


@pytest.mark.parametrize(
    ("subject", "body", "expected"),
    [
        ("MES系統當機", "", ("incident", "field_service_apac", "P1")),
        ("SCADA down", "", ("incident", "field_service_apac", "P1")),
        ("the ERP is down", "", ("incident", "server", "P2")),
        ("TIMES SQUARE", "MESSAGES", (None, None, None)),
        ("請協助", "三廠產線停工了", ("incident", "field_service_apac", "P1")),
        ("全廠網路中斷", "", ("incident", "field_service_apac", "P1")),
        ("ERP 無法使用", "", ("incident", "server", "P2")),
        ("印表機卡紙", "", ("incident", "collaboration", "P3")),
        ("如何申請VPN", "", ("service_request", None, "P4")),
        ("How do I map a network drive?", "", ("service_request", None, "P4")),
        ("可疑郵件", "這是釣魚信嗎？", ("security_incident", "security", None)),
        ("全廠電腦中了勒索病毒", "", ("security_incident", "security", "P1")),
        ("lost messages", "my times are wrong", (None, None, None)),
    ],
)
def test_the_example_rules_route_the_seed_examples(
    subject: str, body: str, expected: tuple[str | None, ...]
) -> None:
    result = route(compiled_rules(example_rules_settings()), mail(subject, body))
    assert (result.category, result.team, result.suggested_priority) == expected


def test_rules_are_compiled_once_per_settings_object() -> None:
    settings = example_rules_settings()
    assert compiled_rules(settings) is compiled_rules(settings)
    assert compiled_rules(example_rules_settings()) is not compiled_rules(settings)
