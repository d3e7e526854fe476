"""Which configuration values are secrets, and the effective settings with them masked
(``intaked check-config``). An error message asks :func:`is_secret` before it shows a value."""

from __future__ import annotations

from functools import lru_cache
from typing import Any, get_args

from pydantic import BaseModel, SecretStr

from intaked.config.dburl import connectable_url, masked_url
from intaked.config.model import Settings, effective_database_url

#: Keys whose values may come from a credential file or an environment variable.
SECRET_KEYS: tuple[str, ...] = (
    "database.url",
    "outbound_mail.password",
    "outbound_mail.oauth2.client_secret",
    "twilio.auth_token",
    "twilio.previous_auth_token",
)


@lru_cache(maxsize=1)
def _secret_field_names(model: type[BaseModel]) -> frozenset[str]:
    """The names of the SecretStr fields anywhere under ``model`` (password, auth_token, ...)."""
    names: set[str] = set()
    seen: set[type[BaseModel]] = set()

    def walk(annotation: Any) -> None:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if annotation in seen:
                return
            seen.add(annotation)
            for name, info in annotation.model_fields.items():
                if info.annotation is SecretStr:
                    names.add(name)
                walk(info.annotation)
        for arg in get_args(annotation):
            walk(arg)

    walk(model)
    return frozenset(names)


def is_secret(loc: tuple[int | str, ...]) -> bool:
    """Whether the value at ``loc`` is a secret (a SecretStr field or one of :data:`SECRET_KEYS`,
    wherever it came from: file, credential or environment): an error never shows it."""
    names = [part for part in loc if isinstance(part, str)]
    return bool(names) and (names[-1] in _secret_field_names(Settings) or ".".join(names) in SECRET_KEYS)


def masked_dump(settings: Settings) -> dict[str, Any]:
    """The effective settings as plain data, with secrets and URL passwords masked."""
    data = settings.model_dump(mode="json")
    if data["outbound_mail"]["password"]:
        data["outbound_mail"]["password"] = "********"
    for key in ("auth_token", "previous_auth_token"):
        if data["twilio"][key]:
            data["twilio"][key] = "********"
    for mailbox in data["imap"]:
        if mailbox["password"]:
            mailbox["password"] = "********"
    for table in [data["outbound_mail"], *data["imap"]]:
        if table["oauth2"] and table["oauth2"]["client_secret"]:
            table["oauth2"]["client_secret"] = "********"
    url = settings.database.url
    data["database"]["url"] = masked_url(url) if url else ""
    # What SQLAlchemy is given: several hosts as host=/port= parameters, the driver named.
    data["database"]["effective_url"] = connectable_url(effective_database_url(settings)).render_as_string(
        hide_password=True
    )
    return data
