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


def certificate_files(directory: Path) -> tuple[Path, Path, Path]:
    """A good PEM (key and certificate), one whose key is another's, and one without a key."""
    from tests.support.token_endpoint import self_signed_certificate

    key, certificate = self_signed_certificate()
    other_key, _ = self_signed_certificate()
    good, mismatched, no_key = directory / "good.pem", directory / "mismatched.pem", directory / "nokey.pem"
    good.write_bytes(key + certificate)
    mismatched.write_bytes(other_key + certificate)
    no_key.write_bytes(certificate)
    return good, mismatched, no_key


def test_a_certificate_file_in_the_credentials_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read where systemd puts it (``LoadCredential=``), also when the token is fetched later."""
    good, _, _ = certificate_files(tmp_path)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    oauth2 = {**OAUTH2, "certificate_file": good.name}
    settings = settings_from_mapping({"imap": [{**MAILBOX, "auth": "xoauth2", "oauth2": oauth2}]})
    assert settings.imap[0].oauth2 is not None
    certificate = settings.imap[0].oauth2.certificate()
    assert certificate is not None and certificate.private_key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert len(certificate.thumbprint) == 27  # a SHA-1 digest, base64url without padding


@pytest.mark.parametrize(
    ("which", "extra", "message"),
    [
        ("missing", {}, "cannot be read: No such file or directory"),
        ("mismatched", {}, "the private key is not the certificate's"),
        ("nokey", {}, "holds no unencrypted PEM private key"),
        ("good", {"client_secret": "s"}, "set client_secret or certificate_file, not both"),
    ],
)
def test_a_certificate_file_that_cannot_sign_is_a_config_error(
    tmp_path: Path, which: str, extra: dict[str, str], message: str
) -> None:
    certificate_files(tmp_path)
    oauth2 = {**OAUTH2, "certificate_file": str(tmp_path / f"{which}.pem"), **extra}
    with pytest.raises(ConfigError) as error:
        settings_from_mapping({"imap": [{**MAILBOX, "auth": "xoauth2", "oauth2": oauth2}]}, environ={})
    assert "imap[0].oauth2" in str(error.value) and message in str(error.value)
    assert "BEGIN" not in str(error.value)
