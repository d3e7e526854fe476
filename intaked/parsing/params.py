"""Content-Type / Content-Disposition values and their parameters.

Follows RFC 2045 section 5.1 (``type/subtype; attribute=value``, quoted-string values) and RFC 2231
(``name*=charset'lang'%XX`` extended values and ``name*0*=`` / ``name*1=`` continuations), tolerating what
mailers actually send: unquoted values with spaces or tspecials, a missing closing quote, duplicated
parameters (the first wins), raw 8-bit bytes (kept surrogate-escaped for the caller to decode).

The standard library's ``get_param`` is not used because under ``compat32`` it replaces raw 8-bit bytes in
parameter values with U+FFFD before we can decode them.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass, field

from .charsets import decode_text
from .headers import decode_words, has_8bit, to_bytes, unfold


@dataclass(slots=True)
class HeaderParams:
    """A parsed structured value: the lower-cased main token and the raw parameters (names lower case)."""

    value: str = ""
    params: dict[str, str] = field(default_factory=dict)


def _split(text: str) -> list[str]:
    """Split on semicolons outside quoted strings; an unterminated quote runs to the end."""
    parts: list[str] = []
    buf: list[str] = []
    quoted = False
    escaped = False
    for ch in text:
        if escaped:
            buf.append(ch)
            escaped = False
        elif ch == "\\" and quoted:
            buf.append(ch)
            escaped = True
        elif ch == '"':
            quoted = not quoted
            buf.append(ch)
        elif ch == ";" and not quoted:
            parts.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
    parts.append("".join(buf))
    return parts


def _unquote(value: str) -> str:
    value = value.strip()
    if value.startswith('"'):
        inner = value[1:]
        if inner.endswith('"'):
            inner = inner[:-1]
        # Only \\ and \" are unescaped: Windows mailers put bare backslashes in file names.
        return inner.replace("\\\\", "\\").replace('\\"', '"')
    return value


def parse_structured(raw: str | None) -> HeaderParams:
    """Parse ``type/subtype; a=b; c="d"`` (or ``attachment; filename=...``); never raises."""
    if not raw:
        return HeaderParams()
    pieces = _split(unfold(raw))
    result = HeaderParams(value=re.sub(r"\s+", "", pieces[0]).strip('"').lower())
    for piece in pieces[1:]:
        name, eq, value = piece.partition("=")
        if not eq:
            continue
        key = name.strip().strip('"').lower()
        if key and key not in result.params:
            result.params[key] = _unquote(value)
    return result


def content_type(raw: str | None, default: str = "text/plain") -> HeaderParams:
    """The Content-Type (RFC 2045: an absent or syntactically invalid type means ``text/plain``)."""
    parsed = parse_structured(raw)
    main, slash, sub = parsed.value.partition("/")
    if not slash or not main or not sub or not re.fullmatch(r"[a-z0-9!#$%&'*+.^_`{|}~-]+", main + sub):
        if parsed.value:
            parsed.value = {"text": "text/plain", "html": "text/html"}.get(parsed.value, default)
        else:
            parsed.value = default
    return parsed


def _percent_decode(text: str) -> bytes:
    return urllib.parse.unquote_to_bytes(to_bytes(text))


def extended_param(
    params: dict[str, str], name: str, hint: str | None = None, problems: list[str] | None = None
) -> str | None:
    """The decoded value of parameter ``name``: RFC 2231 first, then plain (with RFC 2047 / raw 8-bit)."""
    if f"{name}*" in params:
        ext_value = params[f"{name}*"]
        ext_charset, sep1, rest = ext_value.partition("'")
        _lang, sep2, encoded_text = rest.partition("'")
        if sep1 and sep2:
            return decode_text(
                _percent_decode(encoded_text), ext_charset or None, problems, "file name", hint
            )
        return decode_text(_percent_decode(ext_value), None, problems, "file name", hint)
    segments: list[tuple[int, bool, str]] = []
    pattern = re.compile(re.escape(name) + r"\*(\d+)(\*?)$")
    for key, value in params.items():
        m = pattern.match(key)
        if m:
            segments.append((int(m.group(1)), bool(m.group(2)), value))
    if segments:
        segments.sort(key=lambda s: s[0])
        charset: str | None = None
        data = bytearray()
        for index, (_, encoded, value) in enumerate(segments):
            if encoded:
                if index == 0 and value.count("'") >= 2:
                    cs, _, rest = value.partition("'")
                    charset = cs or None
                    value = rest.partition("'")[2]
                data += _percent_decode(value)
            else:
                data += to_bytes(value)
        if charset is None and not any(s[1] for s in segments):
            return decode_words(bytes(data).decode("ascii", "surrogateescape"), hint, problems, "file name")
        return decode_text(bytes(data), charset, problems, "file name", hint)
    if name in params:
        value = params[name]
        if "=?" in value or has_8bit(value):
            return decode_words(value, hint, problems, "file name")
        return value
    return None
