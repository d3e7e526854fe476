"""How the configuration's layers combine (intaked/config/loader.py): only secrets come from the
environment and credentials, a named mailbox credential beats the generic one, the file cannot reach
the loader's own options, and the config package stands alone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from intaked.config import ConfigError, load_settings, settings_from_mapping


def test_only_secrets_come_from_the_environment() -> None:
    settings = settings_from_mapping(
        {},
        environ={
            "INTAKED_SMTP_INTAKE__LISTEN": "0.0.0.0:25",
            "INTAKED_TICKETS": '{"number_prefix": "ENV"}',
            "INTAKED_OUTBOUND_MAIL__HOST": "relay.example.com",
        },
    )
    assert settings.smtp_intake.listen == "127.0.0.1:2525"
    assert settings.tickets.number_prefix == "IT"
    assert settings.outbound_mail.host == "localhost"


def test_secret_environment_names_are_upper_case_as_documented() -> None:
    settings = settings_from_mapping({}, environ={"intaked_outbound_mail__password": "lower"})
    assert settings.outbound_mail.password.get_secret_value() == ""


def test_a_named_mailbox_credential_beats_the_generic_environment_variable(tmp_path: Path) -> None:
    (tmp_path / "imap.helpdesk.password").write_text("named-credential\n", encoding="utf-8")
    settings = settings_from_mapping(
        {"imap": {"name": "helpdesk", "host": "imap.example.com", "username": "u"}},
        environ={"CREDENTIALS_DIRECTORY": str(tmp_path), "INTAKED_IMAP__PASSWORD": "generic-env"},
    )
    assert settings.imap[0].password.get_secret_value() == "named-credential"


def test_each_mailbox_of_several_gets_its_own_password(tmp_path: Path) -> None:
    (tmp_path / "imap.b.password").write_text("b-credential\n", encoding="utf-8")
    boxes = [{"name": name, "host": "imap.example.com", "username": "u"} for name in ("a", "b")]
    settings = settings_from_mapping(
        {"imap": boxes},
        environ={
            "CREDENTIALS_DIRECTORY": str(tmp_path),
            "INTAKED_IMAP__A__PASSWORD": "a-env",
            "INTAKED_IMAP__PASSWORD": "generic-ignored-with-two-mailboxes",
        },
    )
    assert [box.password.get_secret_value() for box in settings.imap] == ["a-env", "b-credential"]


@pytest.mark.parametrize("key", ["_secrets_dir", "_env_prefix", "_case_sensitive"])
def test_the_file_cannot_set_the_loaders_own_options(tmp_path: Path, key: str) -> None:
    path = tmp_path / "intaked.toml"
    path.write_text(f'{key} = "{tmp_path}"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    assert str(caught.value) == f"{path}: {key}: unknown key"


def test_section_names_are_case_sensitive() -> None:
    with pytest.raises(ConfigError, match=r"^config: Tickets: unknown key$"):
        settings_from_mapping({"Tickets": {"number_prefix": "HD"}}, environ={})


def test_the_config_package_imports_nothing_else_of_intaked() -> None:
    code = (
        "import sys, intaked.config\n"
        "print(sorted(m for m in sys.modules if m.startswith('intaked.')"
        " and not m.startswith('intaked.config')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
