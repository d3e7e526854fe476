"""Reading the configuration: the TOML file, then the secrets from systemd credentials and the
environment, layered with pydantic-settings into one validated :class:`Settings`.

Where the file comes from, first found wins: ``--config PATH``, ``$INTAKED_CONFIG``,
``/etc/intaked/intaked.toml``, else the built-in defaults. Secrets (the keys in
:data:`SECRET_KEYS`, and each IMAP mailbox's password) may come from ``$CREDENTIALS_DIRECTORY/<key>``
(e.g. ``outbound_mail.password``, ``imap.helpdesk.password``, ``imap.helpdesk.oauth2.client_secret``)
or from ``INTAKED_<SECTION>__<KEY>`` (e.g. ``INTAKED_OUTBOUND_MAIL__PASSWORD``,
``INTAKED_IMAP__HELPDESK__OAUTH2__CLIENT_SECRET``); the environment
beats a credential, which beats the file. With a single mailbox, ``imap.password`` /
``INTAKED_IMAP__PASSWORD`` (and ``imap.oauth2.client_secret``) work too, below the named ones.

pydantic-settings merges the layers (:meth:`_LayeredSettings.settings_customise_sources`). Its own
environment and secrets-directory sources are not used: they would read every ``INTAKED_*``
variable as configuration (only secrets are read, as documented) and cannot name a credential
``outbound_mail.password`` nor find a mailbox's password by its name in a list; two small custom
sources (:class:`SecretKeySource`, :class:`MailboxPasswordSource`) do exactly that.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from intaked.config.errors import ConfigError, format_validation_error
from intaked.config.model import Settings
from intaked.config.redaction import SECRET_KEYS

DEFAULT_CONFIG_PATH = Path("/etc/intaked/intaked.toml")
ENV_CONFIG_PATH = "INTAKED_CONFIG"

#: Finds a secret by its key's parts (``("imap", "helpdesk", "password")``) in one store, or None.
SecretStore = Callable[[tuple[str, ...]], str | None]


def find_config_path(explicit: str | os.PathLike[str] | None) -> Path | None:
    """The config file to read, or None for built-in defaults."""
    import intaked.config as package  # its DEFAULT_CONFIG_PATH, which tests and packagers may repoint

    if explicit:
        return Path(explicit)
    if env := os.environ.get(ENV_CONFIG_PATH):
        return Path(env)
    if package.DEFAULT_CONFIG_PATH.exists():
        return package.DEFAULT_CONFIG_PATH
    return None


def environment_store(environ: Mapping[str, str]) -> SecretStore:
    """Secrets from ``INTAKED_<PART>__<PART>...`` (each part upper-cased, other characters as ``_``)."""

    def read(parts: tuple[str, ...]) -> str | None:
        name = "INTAKED_" + "__".join(re.sub(r"[^A-Za-z0-9]", "_", part).upper() for part in parts)
        return environ.get(name)

    return read


def credentials_store(directory: str | None) -> SecretStore:
    """Secrets from systemd credentials: the file ``<directory>/<key>``, without its final newline."""

    def read(parts: tuple[str, ...]) -> str | None:
        path = Path(directory or "") / ".".join(parts)
        if not directory or not path.is_file():
            return None
        return path.read_text(encoding="utf-8").rstrip("\r\n")

    return read


class SecretKeySource(PydanticBaseSettingsSource):
    """The keys of :data:`SECRET_KEYS` found in one store, as ``{section: {key: value}}``. A section
    the file gives as something other than a table is left for validation to reject."""

    def __init__(
        self, settings_cls: type[BaseSettings], store: SecretStore, file_data: Mapping[str, Any]
    ) -> None:
        super().__init__(settings_cls)
        self.store = store
        self.file_data = file_data

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # __call__ reads the nested keys itself

    def __call__(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for key in SECRET_KEYS:
            parts = tuple(key.split("."))
            value = self.store(parts)
            if value is not None and _table_present(self.file_data, parts[:-1]):
                table = found
                for part in parts[:-1]:
                    table = table.setdefault(part, {})
                table[parts[-1]] = value
        return found


def _table_present(data: Mapping[str, Any], path: tuple[str, ...]) -> bool:
    """Whether a secret may go into the table at ``path``: the section may be absent (its defaults
    take the secret), a table inside it must be in the file (``oauth2`` is optional), and none may
    be given as something other than a table (validation rejects that)."""
    section = data.get(path[0], {})
    for part in path[1:]:
        if not isinstance(section, Mapping) or not isinstance(section.get(part), Mapping):
            return False
        section = section[part]
    return isinstance(section, Mapping)


class MailboxPasswordSource(PydanticBaseSettingsSource):
    """Each IMAP mailbox's password, found by the mailbox's name: ``imap.<name>.password``, and with
    one mailbox also ``imap.password``. The mailboxes are a list, which pydantic-settings cannot
    merge entry by entry, so this source gives the file's whole list with the passwords set."""

    def __init__(
        self,
        settings_cls: type[BaseSettings],
        stores: tuple[SecretStore, SecretStore],
        file_data: Mapping[str, Any],
    ) -> None:
        super().__init__(settings_cls)
        self.credentials, self.environment = stores
        self.file_data = file_data

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # __call__ reads the mailboxes itself

    def _secret(self, name: str, single: bool, key: tuple[str, ...]) -> str | None:
        """The secret ``key`` (``("password",)``) of mailbox ``name``; later candidates beat earlier ones."""
        keys: list[tuple[str, ...]] = [("imap", *key)] if single else []
        keys.append(("imap", name, *key))
        secret = None
        for parts in keys:
            for store in (self.credentials, self.environment):
                value = store(parts)
                if value is not None:
                    secret = value
        return secret

    def _with_secrets(self, entry: Mapping[str, Any], single: bool) -> Mapping[str, Any]:
        """The mailbox's table with its password and, given an ``oauth2`` table, its client secret."""
        name = str(entry.get("name", "default"))
        password = self._secret(name, single, ("password",))
        if password is not None:
            entry = {**entry, "password": password}
        oauth2 = entry.get("oauth2")
        if isinstance(oauth2, Mapping):
            secret = self._secret(name, single, ("oauth2", "client_secret"))
            if secret is not None:
                entry = {**entry, "oauth2": {**oauth2, "client_secret": secret}}
        return entry

    def __call__(self) -> dict[str, Any]:
        mailboxes = self.file_data.get("imap")
        entries = [mailboxes] if isinstance(mailboxes, Mapping) else mailboxes
        if not isinstance(entries, list):
            return {}
        result: list[Any] = []
        for entry in entries:
            if isinstance(entry, Mapping):
                entry = dict(self._with_secrets(entry, len(entries) == 1))
            result.append(entry)
        return {"imap": result}


@dataclass(frozen=True)
class _Layers:
    """What one load layers: the file's tables and the environment its secrets are read from."""

    file_data: Mapping[str, Any]
    environ: Mapping[str, str]


_LAYERS: ContextVar[_Layers] = ContextVar("intaked_config_layers")


class _LayeredSettings(BaseSettings, Settings):
    """:class:`Settings` built by pydantic-settings from the layers of the current load."""

    model_config = SettingsConfigDict(extra="forbid", frozen=True, validate_default=True, case_sensitive=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Highest first: mailbox passwords, the environment, credentials, the file."""
        layers = _LAYERS.get()
        environment = environment_store(layers.environ)
        credentials = credentials_store(layers.environ.get("CREDENTIALS_DIRECTORY"))
        return (
            MailboxPasswordSource(settings_cls, (credentials, environment), layers.file_data),
            SecretKeySource(settings_cls, environment, layers.file_data),
            SecretKeySource(settings_cls, credentials, layers.file_data),
            InitSettingsSource(settings_cls, init_kwargs=dict(layers.file_data)),
        )


def settings_from_mapping(
    data: Mapping[str, Any], *, source: str = "config", environ: Mapping[str, str] | None = None
) -> Settings:
    """Validate a parsed config mapping (plus secret overrides) into :class:`Settings`."""
    file_data = {
        k: dict(v) if isinstance(v, Mapping) else list(v) if isinstance(v, list) else v
        for k, v in data.items()
    }
    token = _LAYERS.set(_Layers(file_data, os.environ if environ is None else environ))
    try:
        layered = _LayeredSettings()
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None
    finally:
        _LAYERS.reset(token)
    values = {name: getattr(layered, name) for name in Settings.model_fields}
    return Settings.model_construct(_fields_set=set(layered.model_fields_set), **values)


def load_settings(
    path: str | os.PathLike[str] | None = None, *, environ: Mapping[str, str] | None = None
) -> tuple[Settings, Path | None]:
    """Find, read and validate the configuration; returns the settings and the file used."""
    found = find_config_path(path)
    if found is None:
        return settings_from_mapping({}, source="defaults", environ=environ), None
    try:
        text = found.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{found}: no such config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{found}: cannot read: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{found}: not valid TOML: {exc}") from None
    return settings_from_mapping(data, source=str(found), environ=environ), found
