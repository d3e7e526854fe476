"""The employee directory: a CSV exported from HR or the AD, used to enrich requesters (a phone
number finds the e-mail and name, an address finds the department, site and phone numbers).

The file (``directory.path``) has a header row; column names are matched case-insensitively:
``name``, ``email``, ``phone`` and ``mobile`` (or ``phones``, ``tel``; several numbers in one cell
separated by ``;``), ``extension``, ``department``, ``site``, ``manager``. Unknown columns are
ignored. It may be UTF-8 (with or without BOM) or Big5/CP950 as Excel exports it in Taiwan.

Phone numbers are normalised to E.164 for lookups (:func:`to_e164`; ``directory.country_code``,
default 886: ``0912345678`` → ``+886912345678``, ``02-2345-6789`` → ``+886223456789``, and the
``912345678`` that Excel leaves after eating the leading zero).

Reloading: at most every ``directory.reload_seconds`` a lookup compares the file's mtime and size
with the loaded version (one ``stat``, no read) and loads it again when they changed. A file that
cannot be read or parsed (half written, a broken line) keeps the previous version in use and logs
an error naming the line; a missing file logs a warning: the directory is empty when it never
existed, and keeps the version last loaded when it disappears (being replaced, say). Nothing
here raises into the daemon.
"""

from __future__ import annotations

import csv
import io
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import structlog
from charset_normalizer import from_bytes

from intaked.config import DirectorySettings, Settings

log = structlog.get_logger(__name__)

PHONE_COLUMNS = frozenset({"phone", "phones", "mobile", "tel", "telephone", "cell"})
EMAIL_COLUMNS = frozenset({"email", "e-mail", "mail"})
OTHER_COLUMNS = ("name", "extension", "department", "site", "manager")
MIN_NATIONAL_DIGITS = 7


class DirectoryFileError(ValueError):
    """The file cannot be used; the message names the line."""


@dataclass(frozen=True, slots=True)
class Person:
    """One employee as the directory lists them."""

    name: str
    email: str
    phones: tuple[str, ...] = ()  # E.164
    extension: str = ""
    department: str = ""
    site: str = ""
    manager: str = ""
    line: int = 0  # where in the file


@dataclass(frozen=True, slots=True)
class DirectoryTable:
    """One loaded version of the file, indexed both ways."""

    by_email: dict[str, Person] = field(default_factory=dict)
    by_phone: dict[str, Person] = field(default_factory=dict)
    signature: tuple[int, int] | None = None  # (mtime_ns, size) of the file it came from

    def __len__(self) -> int:
        return len({id(p) for p in (*self.by_email.values(), *self.by_phone.values())})


def to_e164(number: str, country_code: str = "886") -> str | None:
    """``number`` in E.164 (``+<country><national>``), or None when it is not a phone number.

    ``+...`` is kept; ``00`` starts an international number; a leading ``0`` is the national
    trunk prefix; a number already starting with the country code is taken as international; a
    bare national number of 8-10 digits (Excel drops leading zeros) gets the country code. An
    extension (``#123``, ``ext. 123``, ``分機 123``) is dropped.
    """
    text = number.strip()
    for marker in ("#", "ext", "EXT", "Ext", "分機", "轉", " x", " X"):
        if marker in text:
            text = text.split(marker, 1)[0]
    digits = "".join(str(int(c)) for c in text if c.isdecimal())
    if not digits:
        return None
    if text.lstrip().startswith(("+", "＋")):
        international = digits
    elif digits.startswith("00"):
        international = digits[2:]
    elif digits.startswith("0"):
        international = country_code + digits[1:]
    elif digits.startswith(country_code) and len(digits) >= len(country_code) + MIN_NATIONAL_DIGITS + 1:
        international = digits
    elif 8 <= len(digits) <= 10:
        international = country_code + digits
    else:
        return None
    if not 8 <= len(international) <= 15 or international.startswith("0"):
        return None
    return "+" + international


def decode_directory(data: bytes) -> str:
    """The text of a directory file: UTF-8 (BOM or not), else Big5/CP950, else what
    charset-normalizer finds; DirectoryFileError when nothing reads it."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    for encoding in ("cp950", "big5hkscs"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    best = from_bytes(data).best()
    if best is None:
        raise DirectoryFileError("the file is in no encoding intaked can read (UTF-8 or Big5 expected)")
    return str(best)


def parse_directory(text: str, country_code: str = "886") -> DirectoryTable:
    """Index the CSV ``text``; DirectoryFileError (naming the line) when a line is malformed."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise DirectoryFileError("line 1: the file is empty (a header row is expected)") from None
    except csv.Error as exc:
        raise DirectoryFileError(f"line 1: {exc}") from None
    columns = [name.strip().lstrip("\ufeff").lower() for name in header]
    email_at = [i for i, name in enumerate(columns) if name in EMAIL_COLUMNS]
    if not email_at:
        raise DirectoryFileError(f"line 1: no email column in the header {header!r}")
    phone_at = [i for i, name in enumerate(columns) if name in PHONE_COLUMNS]
    other_at = {name: columns.index(name) for name in OTHER_COLUMNS if name in columns}
    by_email: dict[str, Person] = {}
    by_phone: dict[str, Person] = {}
    line = reader.line_num
    try:
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(columns):
                raise DirectoryFileError(
                    f"line {line}: {len(row)} fields where the header has {len(columns)} "
                    "(a half-written file, or a stray comma or quote)"
                )
            email = row[email_at[0]].strip().lower()
            if email and ("@" not in email or any(c.isspace() for c in email)):
                raise DirectoryFileError(f"line {line}: {email!r} is not an e-mail address")
            phones: list[str] = []
            for i in phone_at:
                for entry in row[i].split(";"):
                    if entry.strip():
                        normalised = to_e164(entry, country_code)
                        if normalised is None:
                            raise DirectoryFileError(f"line {line}: {entry.strip()!r} is not a phone number")
                        phones.append(normalised)
            values = {name: row[i].strip() for name, i in other_at.items()}
            person = Person(
                name=values.get("name", ""),
                email=email,
                phones=tuple(dict.fromkeys(phones)),
                extension=values.get("extension", ""),
                department=values.get("department", ""),
                site=values.get("site", ""),
                manager=values.get("manager", ""),
                line=line,
            )
            if email:
                by_email.setdefault(email, person)
            for phone in person.phones:
                by_phone.setdefault(phone, person)
    except csv.Error as exc:
        raise DirectoryFileError(f"line {reader.line_num}: {exc}") from None
    return DirectoryTable(by_email, by_phone)


def _signature(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


class Directory:
    """The directory file, loaded lazily, re-checked at most every ``reload_seconds`` on use.

    Thread-safe: a reload replaces the whole table at once; lookups never see half a file.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None,
        *,
        reload_seconds: float = 30.0,
        country_code: str = "886",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(path) if path else None
        self.reload_seconds = reload_seconds
        self.country_code = country_code
        self._clock = clock
        self._table = DirectoryTable()
        self._checked_at: float | None = None
        self._lock = threading.Lock()
        self._missing_logged = False
        self.last_error: str | None = None

    @classmethod
    def from_settings(cls, cfg: DirectorySettings) -> Directory:
        return cls(cfg.path or None, reload_seconds=cfg.reload_seconds, country_code=cfg.country_code)

    @property
    def table(self) -> DirectoryTable:
        """The version in use, after checking the file if it is time to."""
        self.refresh()
        return self._table

    def refresh(self, *, force: bool = False) -> None:
        """Reload the file if it changed (checked at most every ``reload_seconds``)."""
        if self.path is None:
            return
        now = self._clock()
        if not force and self._checked_at is not None and now - self._checked_at < self.reload_seconds:
            return
        with self._lock:
            if not force and self._checked_at is not None and now - self._checked_at < self.reload_seconds:
                return
            self._checked_at = now
            signature = _signature(self.path)
            if signature is None:
                if not self._missing_logged:
                    log.warning("directory_missing", path=str(self.path), kept=len(self._table))
                    self._missing_logged = True
                return
            self._missing_logged = False
            if signature == self._table.signature:
                return
            self._load(signature)

    def _load(self, signature: tuple[int, int]) -> None:
        assert self.path is not None
        try:
            data = self.path.read_bytes()
            table = parse_directory(decode_directory(data), self.country_code)
        except Exception as exc:  # whatever is wrong with the file, the daemon keeps running
            self.last_error = f"{self.path}: {exc}"
            # remember the signature so a broken file is reported once, not on every lookup
            self._table = DirectoryTable(self._table.by_email, self._table.by_phone, signature)
            log.error("directory_unreadable_keeping_previous", path=str(self.path), error=str(exc))
            return
        self._table = DirectoryTable(table.by_email, table.by_phone, signature)
        self.last_error = None
        log.info("directory_loaded", path=str(self.path), people=len(table))

    def by_email(self, address: str | None) -> Person | None:
        """The person with this address (case-insensitive)."""
        if not address:
            return None
        return self.table.by_email.get(address.strip().lower())

    def by_phone(self, number: str | None) -> Person | None:
        """The person with this phone number (any national or international spelling)."""
        normalised = to_e164(number, self.country_code) if number else None
        return self.table.by_phone.get(normalised) if normalised else None

    def lookup(self, key: str) -> Person | None:
        """By e-mail when ``key`` has an ``@``, else by phone number."""
        return self.by_email(key) if "@" in key else self.by_phone(key)

    def people(self) -> Iterable[Person]:
        return self.table.by_email.values()


_cached: list[tuple[DirectorySettings, Directory]] = []
_cache_lock = threading.Lock()


def directory_for(settings: Settings) -> Directory:
    """The directory of ``settings``, one object per settings object (its table is cached)."""
    cfg = settings.directory
    cached = _cached[:1]
    if cached and cached[0][0] is cfg:
        return cached[0][1]
    with _cache_lock:
        if _cached and _cached[0][0] is cfg:
            return _cached[0][1]
        directory = Directory.from_settings(cfg)
        _cached[:] = [(cfg, directory)]
        return directory
