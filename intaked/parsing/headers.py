"""Header field decoding: unfolding, encoded-words, raw 8-bit text, addresses, message ids, dates.

Follows RFC 5322 (unfolding, address lists, msg-id, date-time), RFC 2047 (encoded-words, with the usual
leniency: encoded-words inside quoted strings and next to other text are decoded too, adjacent
encoded-words of one charset are joined as *bytes* before decoding so a multibyte character split across
two words comes out whole) and RFC 6532 (raw UTF-8 — or, in the wild, raw Big5/GBK — in header fields).

Header values come from ``email`` with ``policy=compat32``, which keeps 8-bit bytes surrogate-escaped;
everything here turns them back into bytes and decodes them itself, and nothing here raises.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import email.utils
import re
from email.message import Message

from .charsets import clean_label, decode_header_bytes, decode_text
from .model import Address

_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([QqBb])\?([^?]*)\?=")
_FOLD = re.compile(r"(?:[ \t]*(?:\r\n|\n|\r)[ \t]*)+")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_SURROGATE = re.compile(r"[\udc80-\udcff]")


def raw_values(msg: Message, name: str) -> list[str]:
    """All raw values of header ``name`` (case-insensitive), as parsed, 8-bit bytes surrogate-escaped."""
    wanted = name.lower()
    out: list[str] = []
    for key, value in msg.raw_items():
        if isinstance(key, str) and key.strip().lower() == wanted:
            out.append(value if isinstance(value, str) else str(value))
    return out


def raw_value(msg: Message, name: str) -> str | None:
    """The first raw value of header ``name``, or None."""
    values = raw_values(msg, name)
    return values[0] if values else None


def to_bytes(text: str) -> bytes:
    """The original bytes of a surrogate-escaped string."""
    return text.encode("utf-8", "surrogateescape")


def has_8bit(text: str) -> bool:
    """Whether the string carries raw 8-bit bytes (surrogate escapes)."""
    return _SURROGATE.search(text) is not None


def unfold(value: str) -> str:
    """Unfold a header value: line breaks with their surrounding blanks become one space."""
    return _FOLD.sub(" ", value)


def _decode_raw(text: str, hint: str | None, problems: list[str] | None, what: str) -> str:
    if not has_8bit(text):
        return text
    return decode_header_bytes(to_bytes(text), hint=hint, problems=problems, what=what)


def _q_decode(text: str) -> bytes:
    raw = text.replace("_", " ").encode("ascii", "surrogateescape")
    return binascii.a2b_qp(raw, header=False)


def _b_decode(text: str) -> bytes:
    clean = re.sub(r"[^A-Za-z0-9+/]", "", text)
    if len(clean) % 4 == 1:
        clean = clean[:-1]
    clean += "=" * (-len(clean) % 4)
    return base64.b64decode(clean)


def decode_words(
    value: str, hint: str | None = None, problems: list[str] | None = None, what: str = "header"
) -> str:
    """Decode RFC 2047 encoded-words and raw 8-bit bytes in one (unfolded) header value."""
    tokens: list[tuple[str, str, bytes]] = []  # (kind, text-or-charset, bytes); kind "t" or "w"
    pos = 0
    for match in _ENCODED_WORD.finditer(value):
        charset, encoding, payload = match.group(1), match.group(2).lower(), match.group(3)
        try:
            data = _q_decode(payload) if encoding == "q" else _b_decode(payload)
        except (binascii.Error, ValueError, UnicodeError):
            continue  # leave the malformed word as literal text
        if match.start() > pos:
            tokens.append(("t", value[pos : match.start()], b""))
        tokens.append(("w", clean_label(charset), data))
        pos = match.end()
    if pos < len(value):
        tokens.append(("t", value[pos:], b""))
    # Whitespace between two encoded-words is not displayed (RFC 2047 section 6.2).
    kept: list[tuple[str, str, bytes]] = []
    for i, tok in enumerate(tokens):
        if (
            tok[0] == "t"
            and not tok[1].strip()
            and 0 < i < len(tokens) - 1
            and tokens[i - 1][0] == "w"
            and tokens[i + 1][0] == "w"
        ):
            continue
        kept.append(tok)
    out: list[str] = []
    i = 0
    while i < len(kept):
        kind, text, data = kept[i]
        if kind == "t":
            out.append(_decode_raw(text, hint, problems, what))
            i += 1
            continue
        joined = bytearray(data)
        j = i + 1
        while j < len(kept) and kept[j][0] == "w" and kept[j][1] == text:
            joined += kept[j][2]
            j += 1
        out.append(decode_text(bytes(joined), text or None, problems, what, hint=hint))
        i = j
    return "".join(out)


def decode_unstructured(
    value: str | None, hint: str | None = None, problems: list[str] | None = None, what: str = "header"
) -> str:
    """Decode an unstructured field such as Subject: unfold, decode, drop control characters, strip."""
    if not value:
        return ""
    text = decode_words(unfold(value), hint, problems, what)
    text = text.replace("\r", " ").replace("\n", " ").replace("\t", " ")
    return _CONTROL.sub("", text).strip()


def _clean_address(addr: str) -> str:
    addr = addr.strip().strip("<>").strip()
    local, at, domain = addr.rpartition("@")
    if not at:
        return addr
    return f"{local}@{domain.lower()}"


def parse_addresses(
    values: list[str], hint: str | None = None, problems: list[str] | None = None, what: str = "address"
) -> list[Address]:
    """Parse address-list fields; display names are decoded only after the list is split."""
    result: list[Address] = []
    for value in values:
        unfolded = unfold(value)
        pairs = email.utils.getaddresses([unfolded])
        if any("=?" in addr for _, addr in pairs):
            # A whole "name <addr>" sent as one encoded-word: decode first, then split.
            decoded = decode_words(unfolded, hint, problems, what)
            pairs = email.utils.getaddresses([decoded])
        for name, addr in pairs:
            name_text = _CONTROL.sub("", decode_words(name, hint, problems, what)).strip()
            name_text = name_text.replace("\r", " ").replace("\n", " ").strip().strip('"').strip()
            addr_text = _CONTROL.sub("", _clean_address(_decode_raw(addr, hint, problems, what)))
            if not name_text and not addr_text:
                continue
            result.append(Address(name=name_text, address=addr_text))
    return result


_MSG_ID = re.compile(r"<([^<>]*)>")
_COMMENT = re.compile(r"\([^()]*\)")


def parse_msg_ids(value: str | None) -> list[str]:
    """Bare message ids (no angle brackets) from a Message-ID / In-Reply-To / References value."""
    if not value:
        return []
    text = unfold(value)
    if has_8bit(text):
        text = to_bytes(text).decode("utf-8", "replace")
    found = [re.sub(r"\s+", "", m) for m in _MSG_ID.findall(text)]
    ids = [i for i in found if i]
    if not ids and not found:
        stripped = text
        for _ in range(5):
            stripped = _COMMENT.sub(" ", stripped)
        ids = [t.strip("<>\"'") for t in re.split(r"[\s,;]+", stripped)]
        ids = [t for t in ids if t and ("@" in t or len(ids) == 1)]
    seen: set[str] = set()
    unique: list[str] = []
    for i in ids:
        i = _CONTROL.sub("", i)
        if i and i not in seen:
            seen.add(i)
            unique.append(i)
    return unique


def parse_date(value: str | None, problems: list[str]) -> dt.datetime | None:
    """A timezone-aware datetime from a Date field, or None (with a problem) when it cannot be read."""
    if not value or not value.strip():
        return None
    text = unfold(value).strip()
    if has_8bit(text):
        text = to_bytes(text).decode("utf-8", "replace")
    try:
        parsed = email.utils.parsedate_to_datetime(text)
    except Exception:  # ValueError, TypeError, OverflowError, IndexError in the wild
        parsed = None
    if parsed is None:
        problems.append("date: unreadable Date header")
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    try:
        parsed.utcoffset()
        parsed.astimezone(dt.UTC)
    except (OverflowError, ValueError):
        problems.append("date: out of range")
        return None
    return parsed
