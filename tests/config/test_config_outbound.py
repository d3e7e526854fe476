"""Configuration of outbound mail and of secrets: ``outbound_mail.from_address`` parsed as an
address (a bad one names the key), ``intaked check-config`` showing the From header as it will be
sent, no login to the relay in clear unless allowed, and no secret ever shown in a config error
(from the file, a credential file or the environment)."""

from __future__ import annotations

from email.header import decode_header, make_header
from pathlib import Path

import pytest

from intaked.cli import EXIT_CONFIG, main
from intaked.config import ConfigError, load_settings, settings_from_mapping

SECRET = "98765432"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "intaked.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("value", "display_name", "address"),
    [
        ("helpdesk@example.com.tw", "", "helpdesk@example.com.tw"),
        ("IT 服務台 <helpdesk@example.com.tw>", "IT 服務台", "helpdesk@example.com.tw"),
        ('"Desk, IT" <helpdesk@example.com.tw>', "Desk, IT", "helpdesk@example.com.tw"),
    ],
)
def test_from_address_with_or_without_a_display_name(value: str, display_name: str, address: str) -> None:
    settings = settings_from_mapping({"outbound_mail": {"from_address": value}}, environ={})
    sender = settings.outbound_mail.sender
    assert (sender.display_name, sender.addr_spec, sender.domain) == (display_name, address, "example.com.tw")


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("helpdesk", "is not an e-mail address"),
        ("IT <helpdesk@", "is not an e-mail address"),
        ("IT <helpdesk@example.com", "missing trailing '>'"),
        ("a@example.com, b@example.com", "is not one e-mail address"),
        ("用戶@例子.台灣", "the address must be ASCII"),
        ("IT\r\nBcc: x@evil.example <helpdesk@example.com>", "a line break"),
    ],
)
def test_a_bad_from_address_is_a_config_error_naming_the_key(value: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping({"outbound_mail": {"from_address": value}}, source="t.toml", environ={})
    assert str(caught.value).startswith("t.toml: outbound_mail.from_address: ")
    assert reason in str(caught.value)


def test_check_config_shows_the_from_header_as_sent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, '[outbound_mail]\nfrom_address = "IT 服務台 <helpdesk@example.com.tw>"\n')
    assert main(["check-config", "--config", str(path)]) == 0
    (line,) = [line for line in capsys.readouterr().out.splitlines() if "From header:" in line]
    encoded, _, readable = line.removeprefix("# From header: ").partition("  ")
    assert (
        encoded.isascii()
        and encoded.startswith("=?utf-8?b?")
        and encoded.endswith(" <helpdesk@example.com.tw>")
    )
    assert str(make_header(decode_header(encoded))) == "IT 服務台 <helpdesk@example.com.tw>"
    assert readable == "(IT 服務台 <helpdesk@example.com.tw>)"


def test_check_config_shows_the_default_display_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, '[outbound_mail]\nfrom_address = "helpdesk@example.com.tw"\n')
    assert main(["check-config", "--config", str(path)]) == 0
    assert "(IT 服務台 IT Service Desk <helpdesk@example.com.tw>)" in capsys.readouterr().out


def test_login_without_tls_is_refused_unless_allowed() -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping(
            {"outbound_mail": {"username": "svc", "password": "pw", "starttls": False}},
            source="t",
            environ={},
        )
    message = str(caught.value)
    assert message.startswith("t: outbound_mail.username: ")
    assert "outbound_mail.starttls" in message and "outbound_mail.allow_plaintext_auth = true" in message
    assert "pw" not in message.replace("password", "")
    for allowed in ({"starttls": True}, {"allow_plaintext_auth": True}):
        settings = settings_from_mapping(
            {"outbound_mail": {"username": "svc", "password": "pw", **allowed}}, environ={}
        )
        assert settings.outbound_mail.username == "svc"


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        (f"[outbound_mail]\npassword = {SECRET}\n", "outbound_mail.password"),
        (f"[twilio]\nauth_token = {SECRET}\n", "twilio.auth_token"),
        (f"[twilio]\nprevious_auth_token = [{SECRET}]\n", "twilio.previous_auth_token"),
        (f'[imap]\nhost = "h"\nusername = "u"\npassword = {SECRET}\n', "imap[0].password"),
        (f'[[imap]]\nname = "a"\nhost = "h"\nusername = "u"\npassword = {SECRET}.5\n', "imap[0].password"),
        (f"[database]\nurl = {SECRET}\n", "database.url"),
    ],
)
def test_a_secret_of_the_wrong_type_is_never_shown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], toml: str, key: str
) -> None:
    path = write(tmp_path, toml)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    message = str(caught.value)
    assert SECRET not in message
    assert f"{path}: {key}: Input should be a valid string" in message
    assert "the value is a secret: not shown" in message
    assert main(["check-config", "--config", str(path)]) == EXIT_CONFIG  # the command line too
    err = capsys.readouterr().err
    assert SECRET not in err and key in err


def test_secrets_from_the_environment_and_credential_files_are_never_shown(tmp_path: Path) -> None:
    secret_url = f"mysql://intaked:{SECRET}@db.example.com/helpdesk"
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping({}, environ={"INTAKED_DATABASE__URL": secret_url})
    assert "database.url: unsupported database 'mysql'" in str(caught.value) and SECRET not in str(
        caught.value
    )
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "database.url").write_text(f"postgresql://intaked:{SECRET}@db.example.com:port/x\n")
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping({}, environ={"CREDENTIALS_DIRECTORY": str(creds)})
    assert "database.url: " in str(caught.value) and SECRET not in str(caught.value)
    with pytest.raises(ConfigError) as caught:  # a secret beside a bad key of the same table
        settings_from_mapping(
            {"outbound_mail": {"port": "twenty-five"}},
            environ={"INTAKED_OUTBOUND_MAIL__PASSWORD": SECRET},
        )
    assert "outbound_mail.port" in str(caught.value) and SECRET not in str(caught.value)


def test_a_table_that_holds_a_secret_is_not_shown_whole() -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping({"outbound_mail": [{"password": SECRET}]}, environ={})
    assert "outbound_mail: Input should be a valid dictionary" in str(caught.value)
    assert SECRET not in str(caught.value)
