"""Configuration: defaults, the example file, secrets, and errors that name the key."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from intaked.cli import EXIT_CONFIG, main
from intaked.config import (
    CalendarSettings,
    ConfigError,
    ImapMailboxSettings,
    OAuth2Settings,
    OncallScheduleSettings,
    PersonSettings,
    Settings,
    TeamSettings,
    TwilioSettings,
    WebhookSettings,
    effective_database_url,
    load_settings,
    masked_dump,
    settings_from_mapping,
)

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config" / "intaked.example.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "intaked.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_no_file_means_embedded_sqlite_and_smtp_on_2525(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("INTAKED_CONFIG", raising=False)
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setattr("intaked.config.DEFAULT_CONFIG_PATH", tmp_path / "absent.toml")
    settings, path = load_settings(None, environ={})
    assert path is None
    assert settings.smtp_intake.host_port == ("127.0.0.1", 2525)
    assert settings.smtp_intake.protocol == "smtp"
    assert effective_database_url(settings) == f"sqlite:///{tmp_path / 'state' / 'intaked' / 'intaked.db'}"


def test_systemd_state_directory_holds_the_embedded_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/intaked")
    assert effective_database_url(Settings()) == "sqlite:////var/lib/intaked/intaked.db"


def test_env_names_the_config_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = write(tmp_path, '[tickets]\nnumber_prefix = "HD"\n')
    monkeypatch.setenv("INTAKED_CONFIG", str(path))
    settings, used = load_settings(None, environ={})
    assert used == path and settings.tickets.number_prefix == "HD"


def _keys(model: type[BaseModel], prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if name in (
            "imap",
            "teams",
            "policies",
            "people",
            "oncall",
            "twilio",
            "webhooks",
            "oauth2",
            "levels",  # [security.levels.N]
        ):  # commented
            continue
        if name == "calendars":  # one calendar, "default", by default
            keys |= _keys(CalendarSettings, f"{prefix}{name}.default.")
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys |= _keys(annotation, f"{prefix}{name}.")
        else:
            keys.add(prefix + name)
    return keys


def _flatten(data: dict[str, Any], prefix: str = "") -> set[str]:
    out: set[str] = set()
    for key, value in data.items():
        if isinstance(value, dict) and value:
            out |= _flatten(value, f"{prefix}{key}.")
        else:
            out.add(prefix + key)
    return out


def test_example_file_documents_every_key_with_its_default() -> None:
    data = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    assert _flatten(data) == _keys(Settings), "every key is in the example, and nothing else"
    settings, _ = load_settings(EXAMPLE, environ={})
    assert settings == Settings(), "the example shows the defaults"
    text = EXAMPLE.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(text):
        if line and not line.startswith(("#", "[")) and "=" in line:
            assert text[i - 1].startswith("#"), f"key on line {i + 1} has no comment: {line}"


def _commented_example(first_line: str) -> dict[str, Any]:
    """The commented-out TOML block of the example file that starts at ``first_line``, parsed."""
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    block = []
    for line in lines[lines.index(first_line) :]:
        if not line.startswith("#"):
            break
        block.append(line.removeprefix("# "))
    return tomllib.loads("\n".join(block))


def test_example_file_documents_every_imap_key() -> None:
    data = _commented_example("# [[imap]]")
    (mailbox,) = data["imap"]
    oauth2 = mailbox.pop("oauth2")  # the [imap.oauth2] table, for auth = "xoauth2"
    assert set(mailbox) | {"oauth2"} == set(ImapMailboxSettings.model_fields)
    settings = settings_from_mapping(data, environ={})
    defaults = ImapMailboxSettings(host=mailbox["host"], username=mailbox["username"])
    assert settings.imap[0] == defaults, "the commented example shows the defaults"
    assert set(oauth2) == set(OAuth2Settings.model_fields)
    assert OAuth2Settings(**oauth2) == OAuth2Settings(tenant=oauth2["tenant"], client_id=oauth2["client_id"])


def test_example_file_documents_every_outbound_oauth2_key() -> None:
    data = _commented_example("# [outbound_mail.oauth2]")
    oauth2 = data["outbound_mail"]["oauth2"]
    assert set(oauth2) == set(OAuth2Settings.model_fields)
    assert OAuth2Settings(**oauth2) == OAuth2Settings(tenant=oauth2["tenant"], client_id=oauth2["client_id"])


def test_example_file_documents_every_team_key() -> None:
    data = _commented_example("# [teams.field_service]")
    assert set(data["teams"]["field_service"]) == set(TeamSettings.model_fields)
    assert settings_from_mapping(data, environ={}).teams["field_service"].lead_email == "fs-lead@example.com"


def test_example_file_documents_every_paging_policy_key() -> None:
    from intaked.config import PagePolicySettings, PageStepSettings

    data = _commented_example("# [paging.policies.P1]")
    data |= _commented_example("# [people.chen]") | _commented_example("# [oncall.qrc_duty]")
    policy = data["paging"]["policies"]["P1"]
    assert set(policy) == set(PagePolicySettings.model_fields)
    assert set(policy["steps"][0]) == set(PageStepSettings.model_fields)
    parsed = settings_from_mapping(data, environ={}).paging.policies["P1"]
    assert parsed.steps[0].targets[0].oncall == "qrc_duty" and parsed.steps[0].channels == ["sms", "call"]


def test_example_file_documents_every_people_and_oncall_key() -> None:
    data = {**_commented_example("# [people.chen]"), **_commented_example("# [oncall.qrc_duty]")}
    assert set(data["people"]["chen"]) == set(PersonSettings.model_fields)
    assert set(data["oncall"]["qrc_duty"]) == set(OncallScheduleSettings.model_fields)
    settings = settings_from_mapping(data, environ={})
    assert settings.people["chen"].phone == "+886912345678"
    assert settings.people["lin"].display_name == "" and settings.people["lin"].language == "zh-TW"
    duty = settings.oncall["qrc_duty"]
    assert duty.people == ["chen", "lin", "wang"] and duty.handoff_weekday == "monday"
    assert settings.oncall["qrc_director"].people == ["huang"]
    defaults = settings.oncall["qrc_backup"]
    assert (defaults.timezone, defaults.handoff_time, defaults.shift) == ("Asia/Taipei", "09:00", "1w")


_PEOPLE = {"chen": {"phone": "+886912345678"}, "lin": {"phone": "+886912345679"}}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"people": {"chen": {"phone": "0912345678"}}},
            "people.chen.phone: '0912345678' is not an E.164 phone number",
        ),
        ({"people": {"chen": {"phone": "+8869"}}}, "people.chen.phone: '+8869' is not an E.164"),
        ({"people": {"chen": {"email": "chen@example.com"}}}, "people.chen.phone: required key is missing"),
        (
            {"people": {"chen": {"phone": "+886912345678", "email": "chen"}}},
            "people.chen.email: 'chen' is not",
        ),
        (
            {"people": _PEOPLE, "oncall": {"qrc_duty": {"people": ["chen", "lin", "wang"]}}},
            "oncall.qrc_duty.people[2]: no person named 'wang' (defined: chen, lin; add [people.wang])",
        ),
        ({"people": _PEOPLE, "oncall": {"qrc_duty": {"people": []}}}, "oncall.qrc_duty.people: List should"),
        (
            {"people": _PEOPLE, "oncall": {"qrc_duty": {"people": ["chen"], "timezone": "Asia/Taipeh"}}},
            "oncall.qrc_duty.timezone: unknown time zone 'Asia/Taipeh'",
        ),
        (
            {"people": _PEOPLE, "oncall": {"qrc_duty": {"people": ["chen"], "handoff_time": "9am"}}},
            "oncall.qrc_duty.handoff_time: '9am' is not a time of day",
        ),
        (
            {"people": _PEOPLE, "oncall": {"qrc_duty": {"people": ["chen"], "handoff_weekday": "montag"}}},
            "oncall.qrc_duty.handoff_weekday: 'montag' is not a weekday",
        ),
        (
            {"people": _PEOPLE, "oncall": {"qrc_duty": {"people": ["chen"], "shift": "30m"}}},
            "oncall.qrc_duty.shift: '30m' is not a shift length",
        ),
        (
            {
                "people": _PEOPLE,
                "oncall": {"x": {"people": ["chen"], "shift": "1d", "handoff_weekday": "monday"}},
            },
            "oncall.x: handoff_weekday needs a shift of whole weeks",
        ),
        (
            {
                "people": _PEOPLE,
                "oncall": {"x": {"people": ["chen"], "start": "2026-01-06", "handoff_weekday": "mon"}},
            },
            "oncall.x: start 2026-01-06 is a tuesday, but handoff_weekday is monday",
        ),
    ],
)
def test_bad_people_and_oncall_settings_name_the_key(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping(data, environ={})
    assert message in str(caught.value)


def test_phone_numbers_are_kept_in_e164_form() -> None:
    settings = settings_from_mapping({"people": {"chen": {"phone": "+886 912-345 678"}}}, environ={})
    assert settings.people["chen"].phone == "+886912345678"


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (
            {"oncall": "qrc_dutty"},
            "paging.policies.P1.steps[0].targets[0].oncall: no schedule named 'qrc_dutty'",
        ),
        ({"person": "chan"}, "paging.policies.P1.steps[0].targets[0].person: no person named 'chan'"),
        ({"oncall": "qrc_duty", "person": "chen"}, "give exactly one of oncall"),
        ({}, "give exactly one of oncall"),
    ],
)
def test_a_page_target_must_exist(target: dict[str, str], message: str) -> None:
    data = _commented_example("# [people.chen]") | _commented_example("# [oncall.qrc_duty]")
    data["paging"] = {"policies": {"P1": {"steps": [{"targets": [target]}]}}}
    with pytest.raises(ConfigError, match=re.escape(message)):
        settings_from_mapping(data, environ={})


def test_example_file_documents_every_twilio_and_webhook_key() -> None:
    data = _commented_example("# [twilio]")
    assert set(data["twilio"]) == set(TwilioSettings.model_fields)
    hooks = _commented_example("# [webhooks]")
    assert set(hooks["webhooks"]) == set(WebhookSettings.model_fields)
    settings = settings_from_mapping(data | hooks, environ={})
    shown = {"account_sid", "auth_token", "from_number"}
    for name in set(TwilioSettings.model_fields) - shown:
        assert getattr(settings.twilio, name) == getattr(TwilioSettings(), name), name
    assert settings.twilio.enabled and settings.twilio.from_number == "+886212345678"
    assert settings.webhooks.listen == WebhookSettings().listen
    assert settings.webhooks.max_body_bytes == WebhookSettings().max_body_bytes
    assert settings.webhooks.public_url == "https://intaked.example.com"
    assert not Settings().twilio.enabled, "paging is off without configuration"


def test_twilio_secrets_come_from_credentials_and_are_masked(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "twilio.auth_token").write_text("token-from-credential\n")
    settings = settings_from_mapping(
        {
            "twilio": {"account_sid": "AC" + "0" * 32, "from_number": "+886212345678"},
            "webhooks": {"public_url": "https://intaked.example.com/"},
        },
        environ={"CREDENTIALS_DIRECTORY": str(creds), "INTAKED_TWILIO__PREVIOUS_AUTH_TOKEN": "old"},
    )
    assert settings.twilio.auth_token.get_secret_value() == "token-from-credential"
    assert settings.twilio.previous_auth_token.get_secret_value() == "old"
    assert settings.webhooks.public_url == "https://intaked.example.com"
    dumped = masked_dump(settings)["twilio"]
    assert dumped["auth_token"] == dumped["previous_auth_token"] == "********"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"twilio": {"account_sid": "AC123"}}, "twilio.account_sid: 'AC123' is not an Account Sid"),
        (
            {"twilio": {"account_sid": "AC" + "a" * 32, "from_number": "+886212345678"}},
            "twilio: auth_token is required when account_sid is set",
        ),
        ({"twilio": {"from_number": "0912345678"}}, "twilio.from_number: '0912345678' is not an E.164"),
        (
            {"twilio": {"account_sid": "AC" + "a" * 32, "auth_token": "t", "from_number": "+886212345678"}},
            "webhooks.public_url: required when twilio.account_sid is set",
        ),
        ({"webhooks": {"listen": "8088"}}, "webhooks.listen"),
    ],
)
def test_twilio_errors_name_the_key(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        settings_from_mapping(values, environ={})


@pytest.mark.parametrize(
    ("section", "values", "message"),
    [
        ("sla", {"calendar": "us"}, "sla.calendar: no calendar named 'us'"),
        ("sla", {"warn_at": 1.5}, "sla.warn_at"),
        ("triage", {"within": "soon"}, "triage.within: 'soon' is not a duration"),
        (
            "lifecycle",
            {"auto_close_after": "3 weeks"},
            "lifecycle.auto_close_after: '3 weeks' is not a duration",
        ),
        ("calendars", {"default": {"hours": ["08:30-12:00", "11:00-17:30"]}}, "calendars.default.hours"),
        (
            "calendars",
            {"default": {"working_days": ["monday"]}},
            "calendars.default.working_days[0]: Input should be 'mon'",
        ),
        ("calendars", {"default": {"timezone": "Asia/Taipeh"}}, "calendars.default.timezone"),
        ("teams", {"network": {"calendar": "mars"}}, "teams.network.calendar: no calendar named 'mars'"),
        (
            "daemon",
            {"back_office_nice": 20},
            "daemon.back_office_nice: Input should be less than or equal to 19",
        ),
        (
            "daemon",
            {"back_office_nice": -5},
            "daemon.back_office_nice: Input should be greater than or equal to 0",
        ),
    ],
)
def test_bad_working_time_settings_name_the_key(section: str, values: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping({section: values}, environ={})
    assert message in str(caught.value)


def test_one_or_many_mailboxes_and_their_secrets(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "imap.security.password").write_text("from-credential\n")
    data = {
        "imap": [
            {"name": "helpdesk", "host": "imap.example.com", "username": "helpdesk"},
            {"name": "security", "host": "imap.example.com", "username": "security", "tls": "starttls"},
        ]
    }
    settings = settings_from_mapping(
        data, environ={"CREDENTIALS_DIRECTORY": str(creds), "INTAKED_IMAP__HELPDESK__PASSWORD": "from-env"}
    )
    assert [m.password.get_secret_value() for m in settings.imap] == ["from-env", "from-credential"]
    assert [m.effective_port for m in settings.imap] == [993, 143]
    single = settings_from_mapping(
        {"imap": {"host": "h", "username": "u"}}, environ={"INTAKED_IMAP__PASSWORD": "pw"}
    )
    assert single.imap[0].name == "default" and single.imap[0].password.get_secret_value() == "pw"
    assert "pw" not in str(masked_dump(single))
    with pytest.raises(ConfigError, match="imap: mailbox name 'x' is used twice"):
        settings_from_mapping({"imap": [{"name": "x", "host": "h", "username": "u"}] * 2}, environ={})


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        (
            '[smtp_intake]\nlisten = "localhost"\n',
            "smtp_intake.listen: expected \"host:port\", got 'localhost'",
        ),
        ('[smtp_intake]\nlisten = "127.0.0.1:99999"\n', "smtp_intake.listen: port 99999 is out of range"),
        ('[smtp_intake]\nprotocol = "pop3"\n', "smtp_intake.protocol: Input should be 'smtp' or 'lmtp'"),
        (
            '[smtp_intake]\nrecipients = ["not an address"]\n',
            "smtp_intake.recipients: 'not an address' is not",
        ),
        ("[smtp_intake]\nmax_message_bytes = 10\n", "smtp_intake.max_message_bytes: Input should be greater"),
        ("[intake]\nbatch_max_bytes = 0\n", "intake.batch_max_bytes: Input should be greater"),
        ('[smtp_intake]\nlistne = "127.0.0.1:25"\n', "smtp_intake.listne: unknown key"),
        ('[smpt_intake]\nlisten = "127.0.0.1:25"\n', "smpt_intake: unknown key"),
        ('[database]\nurl = "mysql://x@y/z"\n', "database.url: unsupported database 'mysql'"),
        ('[database]\nurl = "::nonsense::"\n', "database.url: not a database URL"),
        ('[tickets]\nnumber_prefix = "IT-"\n', "tickets.number_prefix: String should match pattern"),
        ('[tickets]\ntimezone = "Asia/Taipie"\n', "tickets.timezone: unknown time zone 'Asia/Taipie'"),
        ('[outbound_mail]\nport = "twenty-five"\n', "outbound_mail.port: Input should be a valid integer"),
        (
            '[outbound_mail]\nfrom_address = "helpdesk"\n',
            "outbound_mail.from_address: 'helpdesk' is not an e-mail",
        ),
        ("[logging]\nlevel = 3\n", "logging.level: Input should be"),
        ('[imap]\nhost = "h"\n', "imap[0].username: required key is missing"),
        (
            '[imap]\nhost = "h"\nusername = "u"\ntls = "maybe"\n',
            "imap[0].tls: Input should be 'ssl', 'starttls'",
        ),
        ('[[imap]]\nhost = "h"\nusername = "u"\nidle_renew_seconds = 3600\n', "imap[0].idle_renew_seconds"),
    ],
)
def test_bad_values_name_the_key_and_the_reason(tmp_path: Path, toml: str, expected: str) -> None:
    path = write(tmp_path, toml)
    with pytest.raises(ConfigError) as error:
        load_settings(path, environ={})
    assert f"{path}: {expected}" in str(error.value)


def test_invalid_toml_says_where(tmp_path: Path) -> None:
    path = write(tmp_path, "[smtp_intake\nlisten = 1\n")
    with pytest.raises(ConfigError, match=r"not valid TOML: .*line 1"):
        load_settings(path, environ={})


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_settings(tmp_path / "nope.toml", environ={})


def test_secrets_from_environment_and_credentials(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "outbound_mail.password").write_text("from-credential\n")
    (creds / "database.url").write_text("postgresql+psycopg://intaked:s3cret@db.example.com/helpdesk\n")
    settings = settings_from_mapping(
        {"outbound_mail": {"password": "from-file"}}, environ={"CREDENTIALS_DIRECTORY": str(creds)}
    )
    assert settings.outbound_mail.password.get_secret_value() == "from-credential"
    assert settings.database.url == "postgresql+psycopg://intaked:s3cret@db.example.com/helpdesk"
    settings = settings_from_mapping(
        {}, environ={"CREDENTIALS_DIRECTORY": str(creds), "INTAKED_OUTBOUND_MAIL__PASSWORD": "from-env"}
    )
    assert settings.outbound_mail.password.get_secret_value() == "from-env"
    dumped = masked_dump(settings)
    assert dumped["outbound_mail"]["password"] == "********"
    assert "s3cret" not in str(dumped) and "from-env" not in str(dumped)


def test_check_config_prints_masked_settings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(
        tmp_path,
        '[outbound_mail]\npassword = "hunter2"\nusername = "svc"\nstarttls = true\n'
        '[smtp_intake]\nrecipients = ["helpdesk@example.com"]\n',
    )
    assert main(["check-config", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "hunter2" not in out
    assert '"password": "********"' in out and '"username": "svc"' in out
    assert '"helpdesk@example.com"' in out


def test_check_config_exits_78_naming_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, '[smtp_intake]\nprotocol = "pop3"\nbogus = 1\n')
    assert main(["check-config", "--config", str(path)]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert "smtp_intake.protocol" in err and "smtp_intake.bogus: unknown key" in err


def test_hotline_settings_name_the_key() -> None:
    from intaked.config import HotlineSettings

    with pytest.raises(ConfigError, match=re.escape("hotline.numbers: the hotline needs [twilio]")):
        settings_from_mapping({"hotline": {"numbers": ["+886225551234"]}}, environ={})
    with pytest.raises(ConfigError, match=r"hotline\.numbers\[0\]: .*not an E.164 number"):
        settings_from_mapping({"hotline": {"numbers": ["02-2555-1234"]}}, environ={})
    with pytest.raises(ConfigError, match=r"hotline.desk_calendar: no calendar named 'desk'"):
        settings_from_mapping({"hotline": {"desk_calendar": "desk"}}, environ={})
    with pytest.raises(ConfigError, match=r"hotline.sms_ack_prefixes: .*'09' is not a caller-id prefix"):
        settings_from_mapping({"hotline": {"sms_ack_prefixes": ["09"]}}, environ={})
    assert HotlineSettings(numbers=["+886 2 2555-1234"]).numbers == ["+886225551234"]
    assert not Settings().hotline.enabled and Settings().hotline.repeat_window == "30m"


@pytest.mark.parametrize(
    ("daemon", "message"),
    [
        ({"heartbeat_seconds": 0}, "daemon.heartbeat_seconds: Input should be greater than 0 (got 0)"),
        ({"lease_seconds": -5}, "daemon.lease_seconds: Input should be greater than 0 (got -5)"),
        (
            {"heartbeat_seconds": 3, "lease_seconds": 5},
            "daemon: lease_seconds must be at least twice heartbeat_seconds",
        ),
        ({"node_name": "node a"}, "daemon.node_name: String should match pattern"),
        ({"node_name": "a/b"}, "daemon.node_name: String should match pattern"),
    ],
)
def test_bad_liveness_settings_name_the_key(daemon: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping({"daemon": daemon}, environ={})
    assert message in str(caught.value)


@pytest.mark.parametrize("key", ["intake.claim_timeout_seconds", "outbox.claim_timeout_seconds"])
@pytest.mark.parametrize("value", [0, -1])
def test_claim_timeouts_must_be_positive(key: str, value: int) -> None:
    section, name = key.split(".")
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping({section: {name: value}}, environ={})
    assert f"{key}: Input should be greater than 0" in str(caught.value)


@pytest.mark.parametrize(
    ("section", "values", "message"),
    [
        (
            "webhooks",
            {"max_connections": 0},
            "webhooks.max_connections: Input should be greater than or equal to 1",
        ),
        (
            "webhooks",
            {"header_timeout_seconds": 0},
            "webhooks.header_timeout_seconds: Input should be greater than 0",
        ),
        (
            "webhooks",
            {"body_timeout_seconds": -1},
            "webhooks.body_timeout_seconds: Input should be greater than 0",
        ),
        (
            "webhooks",
            {"keepalive_timeout_seconds": -0.5},
            "webhooks.keepalive_timeout_seconds: Input should be greater than 0",
        ),
        (
            "smtp_intake",
            {"max_sessions": 0},
            "smtp_intake.max_sessions: Input should be greater than or equal to 1",
        ),
        (
            "smtp_intake",
            {"max_sessions": -3},
            "smtp_intake.max_sessions: Input should be greater than or equal to 1",
        ),
    ],
)
def test_connection_caps_and_timeouts_must_be_positive(
    section: str, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping({section: values}, environ={})
    assert message in str(caught.value)


def test_connection_limits_default_to_what_fits_systemds_default_descriptor_limit() -> None:
    from intaked.descriptors import budget_shortfall, descriptor_budget

    defaults = settings_from_mapping(
        {
            "twilio": {"account_sid": "AC" + "a" * 32, "auth_token": "t", "from_number": "+886212345678"},
            "webhooks": {"public_url": "https://intaked.example.com"},
        },
        environ={},
    )
    assert (defaults.webhooks.max_connections, defaults.smtp_intake.max_sessions) == (256, 100)
    assert (defaults.webhooks.header_timeout_seconds, defaults.webhooks.body_timeout_seconds) == (10.0, 10.0)
    assert budget_shortfall(descriptor_budget(defaults), 1024) is None
    problem = budget_shortfall(descriptor_budget(defaults), 400)
    assert problem is not None
    assert "smtp_intake.max_sessions (100) + webhooks.max_connections (256)" in problem
    assert "LimitNOFILE=" in problem
