"""``database.url`` naming several PostgreSQL hosts, libpq style: what SQLAlchemy is given, what a
bad one says (the key, never the password), and what ``intaked check-config`` shows."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import make_url

from intaked.config import ConfigError, connectable_url, masked_dump, settings_from_mapping

SECRET = "Zr9-unguessable"


def test_a_libpq_host_list_becomes_psycopg_host_and_port_parameters() -> None:
    url = connectable_url(
        f"postgresql://intaked:{SECRET}@db1.example.com:5432,db2.example.com:5433/helpdesk"
        "?target_session_attrs=read-write&sslmode=require"
    )
    assert url.drivername == "postgresql+psycopg", "a bare postgresql:// means psycopg 3"
    assert (url.username, url.password, url.database) == ("intaked", SECRET, "helpdesk")
    assert url.host is None and url.port is None
    assert dict(url.query) == {
        "host": "db1.example.com,db2.example.com",
        "port": "5432,5433",
        "target_session_attrs": "read-write",
        "sslmode": "require",
    }
    assert make_url(url.render_as_string(hide_password=False)) == url, "the string form reads back the same"


@pytest.mark.parametrize(
    ("raw", "query"),
    [
        ("postgresql+psycopg://u@a,b/db", {"host": "a,b", "target_session_attrs": "read-write"}),
        (
            "postgresql+psycopg://u@[::1]:5432,[fd00::2]:6432/db?target_session_attrs=primary",
            {"host": "::1,fd00::2", "port": "5432,6432", "target_session_attrs": "primary"},
        ),
        (
            "postgresql+psycopg://u@/db?host=a:5432&host=b:5432",  # SQLAlchemy's own form
            {"host": ("a:5432", "b:5432"), "target_session_attrs": "read-write"},
        ),
    ],
)
def test_several_hosts_connect_only_to_the_primary(raw: str, query: dict[str, object]) -> None:
    assert dict(connectable_url(raw).query) == query


def test_one_host_is_left_as_written() -> None:
    assert connectable_url("postgresql+psycopg://u@db/x").render_as_string() == "postgresql+psycopg://u@db/x"
    assert connectable_url("sqlite:////var/lib/intaked/intaked.db").database == "/var/lib/intaked/intaked.db"


@pytest.mark.parametrize(
    ("host_list", "reason"),
    [
        ("db1:5432,db2:54x2/db", "the host list has a bad port '54x2' (after host 'db2')"),
        ("db1:5432,db2:70000/db", "the host list has a bad port '70000'"),
        ("db1,,db2/db", "the host list has an empty host"),
        ("::1,db2/db", "an IPv6 address in a host list needs brackets"),
        ("[::1:5432,db2/db", "a bracketed IPv6 address in the host list is not closed"),
        ("db1,db2/db?host=db3", "name the hosts either in the address or in host=/port= parameters"),
        (
            "db1,db2/db?target_session_attrs=prefer-standby",
            "several hosts with target_session_attrs=prefer-standby: intaked writes",
        ),
    ],
)
def test_a_bad_host_list_names_the_key_and_never_the_password(host_list: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping({"database": {"url": f"postgresql://intaked:{SECRET}@{host_list}"}}, environ={})
    message = str(caught.value)
    assert f"database.url: {reason}" in message
    assert SECRET not in message


def test_check_config_shows_the_url_as_written_and_as_connected_without_the_password() -> None:
    settings = settings_from_mapping(
        {"database": {"url": f"postgresql://intaked:{SECRET}@db1:5432,db2:5432/helpdesk"}}, environ={}
    )
    dumped = masked_dump(settings)["database"]
    assert dumped["url"] == "postgresql://intaked:***@db1:5432,db2:5432/helpdesk"
    assert dumped["effective_url"] == (
        "postgresql+psycopg://intaked:***@/helpdesk"
        "?host=db1%2Cdb2&port=5432%2C5432&target_session_attrs=read-write"
    )
    assert SECRET not in str(dumped)
