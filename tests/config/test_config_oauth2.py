"""``auth = "xoauth2"`` and the ``oauth2`` table of a mailbox and of the relay: defaults, the
client secret from credentials and the environment, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from intaked.config import ConfigError, masked_dump, settings_from_mapping

OAUTH2 = {"tenant": "contoso.onmicrosoft.com", "client_id": "app-1"}
MAILBOX = {"name": "helpdesk", "host": "outlook.office365.com", "username": "helpdesk@contoso.com"}


def test_default_token_url_and_scope() -> None:
    settings = settings_from_mapping({"imap": [{**MAILBOX, "auth": "xoauth2", "oauth2": OAUTH2}]}, environ={})
    oauth2 = settings.imap[0].oauth2
    assert oauth2 is not None and settings.imap[0].auth == "xoauth2"
    assert (
        oauth2.effective_token_url
        == "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
    )
    assert oauth2.scope == "https://outlook.office365.com/.default"
    assert settings_from_mapping({}, environ={}).outbound_mail.auth == "password"


def test_client_secrets_from_credentials_and_environment(tmp_path: Path) -> None:
    (tmp_path / "imap.helpdesk.oauth2.client_secret").write_text("from-credential\n")
    (tmp_path / "outbound_mail.oauth2.client_secret").write_text("relay-credential\n")
    data = {
        "imap": [{**MAILBOX, "auth": "xoauth2", "oauth2": OAUTH2}],
        "outbound_mail": {
            "auth": "xoauth2",
            "username": "helpdesk@contoso.com",
            "starttls": True,
            "oauth2": OAUTH2,
        },
    }
    settings = settings_from_mapping(data, environ={"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert (
        settings.imap[0].oauth2
        and settings.imap[0].oauth2.client_secret.get_secret_value() == "from-credential"
    )
    relay = settings.outbound_mail.oauth2
    assert relay and relay.client_secret.get_secret_value() == "relay-credential"
    environ = {
        "CREDENTIALS_DIRECTORY": str(tmp_path),
        "INTAKED_IMAP__HELPDESK__OAUTH2__CLIENT_SECRET": "from-env",
        "INTAKED_OUTBOUND_MAIL__OAUTH2__CLIENT_SECRET": "relay-env",
    }
    settings = settings_from_mapping(data, environ=environ)
    assert settings.imap[0].oauth2 and settings.imap[0].oauth2.client_secret.get_secret_value() == "from-env"
    assert (
        settings.outbound_mail.oauth2
        and settings.outbound_mail.oauth2.client_secret.get_secret_value() == "relay-env"
    )
    dumped = masked_dump(settings)
    assert dumped["imap"][0]["oauth2"]["client_secret"] == "********"
    assert dumped["outbound_mail"]["oauth2"]["client_secret"] == "********"
    assert "from-env" not in str(dumped) and "relay-env" not in str(dumped)


def test_a_secret_alone_does_not_make_an_oauth2_table() -> None:
    environ = {
        "INTAKED_OUTBOUND_MAIL__OAUTH2__CLIENT_SECRET": "x",
        "INTAKED_IMAP__OAUTH2__CLIENT_SECRET": "y",
    }
    settings = settings_from_mapping({"imap": MAILBOX}, environ=environ)
    assert settings.outbound_mail.oauth2 is None and settings.imap[0].oauth2 is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"imap": [{**MAILBOX, "auth": "xoauth2"}]}, 'imap[0]: auth = "xoauth2" needs an oauth2 table'),
        ({"imap": [{**MAILBOX, "auth": "token"}]}, "imap[0].auth: "),
        ({"imap": [{**MAILBOX, "oauth2": {"client_id": "a"}}]}, "imap[0].oauth2: needs tenant"),
        (
            {"imap": [{**MAILBOX, "oauth2": {"tenant": "t"}}]},
            "imap[0].oauth2.client_id: required key is missing",
        ),
        (
            {"outbound_mail": {"auth": "xoauth2", "oauth2": OAUTH2}},
            'outbound_mail: auth = "xoauth2" needs username',
        ),
        (
            {"outbound_mail": {"oauth2": {**OAUTH2, "client_secret": 5}}},
            "outbound_mail.oauth2.client_secret: Input should be a valid string (the value is a secret: not",
        ),
    ],
)
def test_errors_name_the_key(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        settings_from_mapping(data, source="intaked.toml", environ={})
    assert f"intaked.toml: {message}" in str(raised.value)
