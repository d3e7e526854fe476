"""IMAP with ``auth = "xoauth2"`` (Microsoft 365) against a real Dovecot whose ``oauth2`` passdb
checks each token with the local token endpoint stand-in: the mailbox drains, an expired token is
renewed, a cached token the server refuses is replaced once, a refused token request names the key."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine

from intaked.channels.imap import ImapMailboxWorker
from intaked.channels.imapstate import mailbox_status
from intaked.config import settings_from_mapping
from tests.channels.test_imap import count_messages, imap, report, start
from tests.support.dovecot import USER, Dovecot, dovecot_unavailable_reason
from tests.support.token_endpoint import CLIENT_ID, CLIENT_SECRET, TokenEndpoint, self_signed_certificate
from tests.support.waiting import wait_until


@pytest.fixture
def endpoint() -> Iterator[TokenEndpoint]:
    with TokenEndpoint(USER) as stand_in:
        yield stand_in


@pytest.fixture
def dovecot(endpoint: TokenEndpoint) -> Iterator[Dovecot]:
    if reason := dovecot_unavailable_reason():
        pytest.skip(reason)
    with Dovecot(oauth2_introspection_url=endpoint.introspection_url) as server:
        yield server


def xoauth2(server: Dovecot, endpoint: TokenEndpoint, secret: str = CLIENT_SECRET) -> dict[str, Any]:
    oauth2 = {"tenant": "contoso.test", "client_id": CLIENT_ID, "client_secret": secret}
    return imap(server, password="", auth="xoauth2", oauth2={**oauth2, "token_url": endpoint.token_url})


def worker(mailbox: dict[str, Any]) -> ImapMailboxWorker:
    settings = settings_from_mapping({"imap": [mailbox]}, environ={})
    return ImapMailboxWorker(settings.imap[0], create_engine("sqlite://"))


def test_the_mailbox_drains_logging_in_with_xoauth2(
    sqlite_url: str, dovecot: Dovecot, endpoint: TokenEndpoint
) -> None:
    dovecot.append([report(1), report(2)])
    daemon = start(sqlite_url, xoauth2(dovecot, endpoint))
    try:
        wait_until(lambda: count_messages(daemon) == 2, what="both messages filed")
        assert dovecot.count("INBOX") == 0 and dovecot.count("Processed") == 2
    finally:
        daemon.stop()
    assert endpoint.issued and set(endpoint.introspected) <= set(endpoint.issued)
    assert endpoint.requests[0]["scope"] == "https://outlook.office365.com/.default"


def test_an_expired_token_is_renewed_before_the_next_login(dovecot: Dovecot, endpoint: TokenEndpoint) -> None:
    endpoint.lifetime = 2  # renewed after half its lifetime
    pulling = worker(xoauth2(dovecot, endpoint))
    pulling._connect().logout()
    pulling._connect().logout()
    assert len(endpoint.issued) == 1, "a token still fresh is reused"
    time.sleep(1.2)
    pulling._connect().logout()
    assert len(endpoint.issued) == 2 and endpoint.introspected[-1] == endpoint.issued[1]


def test_a_cached_token_the_server_refuses_is_replaced_once(
    dovecot: Dovecot, endpoint: TokenEndpoint
) -> None:
    pulling = worker(xoauth2(dovecot, endpoint))
    pulling._connect().logout()
    endpoint.revoked.add(endpoint.issued[0])  # e.g. the app's consent was revoked and granted again
    pulling._connect().logout()
    assert len(endpoint.issued) == 2 and endpoint.introspected[-2:] == endpoint.issued


def test_a_refused_token_request_names_the_key_and_never_the_secret(
    sqlite_url: str, dovecot: Dovecot, endpoint: TokenEndpoint, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = "wrong-secret-value-42"
    daemon = start(sqlite_url, xoauth2(dovecot, endpoint, secret=wrong))
    try:
        wait_until(
            lambda: (
                "TokenRefused" in (mailbox_status(daemon.engine).get("helpdesk", {}).get("last_error") or "")
            ),
            what="the refused token request recorded",
        )
        error = mailbox_status(daemon.engine)["helpdesk"]["last_error"]
    finally:
        daemon.stop()
    assert "imap.helpdesk.oauth2.client_secret refused by the token endpoint: invalid_client" in error
    output = capsys.readouterr()
    assert "imap.helpdesk.oauth2.client_secret refused" in output.out + output.err
    assert wrong not in error + output.out + output.err
    assert not endpoint.issued and not endpoint.introspected


def with_certificate(server: Dovecot, endpoint: TokenEndpoint, pem_file: Path) -> dict[str, Any]:
    oauth2 = {"tenant": "contoso.test", "client_id": CLIENT_ID, "certificate_file": str(pem_file)}
    return imap(server, password="", auth="xoauth2", oauth2={**oauth2, "token_url": endpoint.token_url})


def test_the_mailbox_drains_with_a_certificate_instead_of_a_secret(
    sqlite_url: str, dovecot: Dovecot, endpoint: TokenEndpoint, tmp_path: Path
) -> None:
    """The app proves itself with a client assertion signed by the certificate's key, as Entra
    ID asks of an app with a certificate; no secret is sent."""
    key_pem, certificate_pem = self_signed_certificate()
    endpoint.certificate_pem = certificate_pem
    pem_file = tmp_path / "m365.pem"
    pem_file.write_bytes(key_pem + certificate_pem)
    dovecot.append([report(1)])
    daemon = start(sqlite_url, with_certificate(dovecot, endpoint, pem_file))
    try:
        wait_until(lambda: count_messages(daemon) == 1, what="the message filed")
    finally:
        daemon.stop()
    request = endpoint.requests[0]
    assert request["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    assert "client_secret" not in request
    assert endpoint.issued and set(endpoint.introspected) <= set(endpoint.issued)


def test_a_certificate_the_app_does_not_have_is_refused_naming_the_key(
    sqlite_url: str, dovecot: Dovecot, endpoint: TokenEndpoint, tmp_path: Path
) -> None:
    _, registered = self_signed_certificate()
    endpoint.certificate_pem = registered
    key_pem, other = self_signed_certificate()
    pem_file = tmp_path / "m365.pem"
    pem_file.write_bytes(key_pem + other)
    daemon = start(sqlite_url, with_certificate(dovecot, endpoint, pem_file))
    try:
        wait_until(
            lambda: (
                "TokenRefused" in (mailbox_status(daemon.engine).get("helpdesk", {}).get("last_error") or "")
            ),
            what="the refused token request recorded",
        )
        error = mailbox_status(daemon.engine)["helpdesk"]["last_error"]
    finally:
        daemon.stop()
    assert "imap.helpdesk.oauth2.certificate_file refused by the token endpoint: invalid_client" in error
    assert "AADSTS700027" in error
    assert "PRIVATE KEY" not in error
    assert not endpoint.issued
