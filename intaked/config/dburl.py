"""Database URLs as an operator writes them, turned into what SQLAlchemy connects with.

PostgreSQL URLs may name several hosts the way libpq does
(``postgresql://h1:5432,h2:5432/helpdesk?target_session_attrs=read-write``): SQLAlchemy cannot
parse that, so the hosts move into psycopg's ``host=h1,h2&port=5432,5432`` query parameters
(SQLAlchemy's own multi-host form, written directly, is taken as it is). With several hosts the
connection must land on the primary: ``target_session_attrs`` is ``read-write`` unless the URL
asks for ``primary``; anything that would accept a standby is an error, since intaked writes.
A bare ``postgresql://`` means psycopg 3, the driver intaked ships.

Error messages name the part that is wrong, never the URL (it may hold a password).
"""

from __future__ import annotations

import re

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

POSTGRESQL_DRIVER = "postgresql+psycopg"
#: What ``target_session_attrs`` may say when the URL names several hosts: only the primary.
PRIMARY_ONLY = ("read-write", "primary")
DEFAULT_SESSION_ATTRS = "read-write"

_URL_PARTS = re.compile(r"^(?P<scheme>[A-Za-z][\w+.-]*)://(?P<netloc>[^/?#]*)(?P<rest>.*)$", re.DOTALL)
_USER_PASSWORD = re.compile(r"^(?P<head>[A-Za-z][\w+.-]*://[^:/@?#]*:)[^/?#]*@")
_PORT = re.compile(r"^\d{1,5}$")


def connectable_url(raw: str) -> URL:
    """``raw`` as the SQLAlchemy URL intaked connects with. Raises ValueError (without the URL's
    text) when it cannot be used."""
    parts = _URL_PARTS.match(raw.strip())
    if parts and "," in parts["netloc"] and parts["scheme"].startswith("postgresql"):
        url = _from_host_list(parts["scheme"], parts["netloc"], parts["rest"])
    else:
        try:
            url = make_url(raw)
        except (ArgumentError, ValueError) as exc:
            raise ValueError(f"not a database URL: {exc}") from None
    if url.drivername == "postgresql":
        url = url.set(drivername=POSTGRESQL_DRIVER)
    if url.get_backend_name() == "postgresql" and host_count(url) > 1:
        url = _primary_only(url)
    return url


def masked_url(raw: str) -> str:
    """``raw`` with its password (if any) replaced by ``***``, for showing to an operator."""
    return _USER_PASSWORD.sub(r"\g<head>***@", raw.strip())


def host_count(url: URL) -> int:
    """How many hosts ``url`` names (SQLAlchemy's ``host`` query parameters count too)."""
    hosts = url.query.get("host")
    if isinstance(hosts, tuple):
        return len(hosts)
    if isinstance(hosts, str):
        return len(hosts.split(","))
    return 1


def _from_host_list(scheme: str, netloc: str, rest: str) -> URL:
    userinfo, at, host_list = netloc.rpartition("@")
    hosts: list[str] = []
    ports: list[str] = []
    for token in host_list.split(","):
        host, port = _host_and_port(token)
        hosts.append(host)
        ports.append(port)
    try:
        base = make_url(f"{scheme}://{userinfo}{at}{rest}")
    except (ArgumentError, ValueError) as exc:
        raise ValueError(f"not a database URL: {exc}") from None
    if "host" in base.query or "port" in base.query:
        raise ValueError("name the hosts either in the address or in host=/port= parameters, not both")
    query: dict[str, str] = {"host": ",".join(hosts)}
    if any(ports):
        query["port"] = ",".join(ports)
    return base.update_query_dict(query)


def _host_and_port(token: str) -> tuple[str, str]:
    """One ``host[:port]`` of a libpq host list (``[v6 address][:port]`` for IPv6)."""
    token = token.strip()
    if token.startswith("["):
        host, bracket, port_part = token[1:].partition("]")
        if not bracket or (port_part and not port_part.startswith(":")):
            raise ValueError("a bracketed IPv6 address in the host list is not closed properly")
        port = port_part[1:]
    elif token.count(":") > 1:
        raise ValueError("an IPv6 address in a host list needs brackets: [address]:port")
    else:
        host, _, port = token.partition(":")
    if not host:
        raise ValueError("the host list has an empty host")
    if port and (not _PORT.match(port) or not 0 < int(port) < 65536):
        raise ValueError(f"the host list has a bad port {port!r} (after host {host!r})")
    return host, port


def _primary_only(url: URL) -> URL:
    wanted = url.query.get("target_session_attrs")
    if wanted is None:
        return url.update_query_dict({"target_session_attrs": DEFAULT_SESSION_ATTRS})
    if wanted not in PRIMARY_ONLY:
        raise ValueError(
            f"several hosts with target_session_attrs={wanted}: intaked writes, so it must be "
            "read-write (the default) or primary"
        )
    return url
