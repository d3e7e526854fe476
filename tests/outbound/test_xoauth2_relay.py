"""The outbox sending through a relay that wants SMTP AUTH XOAUTH2 (Exchange Online), with
tokens from the local token endpoint stand-in: delivered, a refused cached token renewed once,
a refused token request naming the key without the secret."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine

from intaked.config import Settings
from intaked.outbound.dispatcher import dispatch_once
from intaked.ports.mail import RelayUnavailable
from tests.outbound.test_outbox_dispatch import FROM, engine, outbox, queue
from tests.support.daemon import make_settings
from tests.support.token_endpoint import CLIENT_ID, CLIENT_SECRET, TokenEndpoint
from tests.support.xoauth2_relay import Xoauth2Relay

__all__ = ["engine"]  # the fixture, shared
SENDER = "helpdesk@example.com.tw"


@pytest.fixture
def endpoint() -> Iterator[TokenEndpoint]:
    with TokenEndpoint(SENDER) as stand_in:
        yield stand_in


@pytest.fixture
def relay(endpoint: TokenEndpoint) -> Iterator[Xoauth2Relay]:
    server = Xoauth2Relay(endpoint=endpoint).start()
    yield server
    server.stop()


def relay_settings(
    url: str, relay: Xoauth2Relay, endpoint: TokenEndpoint, secret: str = CLIENT_SECRET
) -> Settings:
    oauth2: dict[str, Any] = {
        "client_id": CLIENT_ID,
        "client_secret": secret,
        "token_url": endpoint.token_url,
    }
    mail = {"host": "127.0.0.1", "port": relay.port, "from_address": FROM, "username": SENDER}
    mail |= {"auth": "xoauth2", "oauth2": oauth2, "allow_plaintext_auth": True}
    return make_settings(url, outbound_mail=mail)


def test_the_outbox_delivers_through_a_relay_checking_xoauth2(
    engine: Engine, sqlite_url: str, relay: Xoauth2Relay, endpoint: TokenEndpoint
) -> None:
    queue(engine, "a@example.com", "b@example.com")
    assert dispatch_once(engine, relay_settings(sqlite_url, relay, endpoint)) == 2
    assert sorted(r.rcpt_tos[0] for r in relay.messages()) == ["a@example.com", "b@example.com"]
    assert relay.logins == [SENDER] and relay.tokens == endpoint.issued
    assert {row.state for row in outbox(engine).values()} == {"sent"}


def test_a_cached_token_the_relay_refuses_is_renewed_once(
    engine: Engine, sqlite_url: str, relay: Xoauth2Relay, endpoint: TokenEndpoint
) -> None:
    settings = relay_settings(sqlite_url, relay, endpoint)
    queue(engine, "a@example.com")
    dispatch_once(engine, settings)
    endpoint.revoked.add(endpoint.issued[0])
    queue(engine, "b@example.com", "c@example.com")
    assert dispatch_once(engine, settings) == 2
    assert relay.tokens == [endpoint.issued[0], endpoint.issued[0], endpoint.issued[1]]
    assert len(relay.messages()) == 3


def test_a_refused_token_request_names_the_key_and_never_the_secret(
    engine: Engine, sqlite_url: str, relay: Xoauth2Relay, endpoint: TokenEndpoint
) -> None:
    wrong = "wrong-relay-secret-77"
    queue(engine, "a@example.com")
    with pytest.raises(RelayUnavailable) as raised:
        dispatch_once(engine, relay_settings(sqlite_url, relay, endpoint, secret=wrong))
    message = str(raised.value)
    assert "outbound_mail.oauth2.client_secret refused by the token endpoint: invalid_client" in message
    assert wrong not in message and not relay.tokens and not relay.messages()
