"""Content-Transfer-Encoding decoding of one leaf part's body.

Follows RFC 2045 section 6 (``7bit``, ``8bit``, ``binary``, ``quoted-printable``, ``base64``) plus the
non-standard ``x-uuencode``, and tolerates what breaks strict decoders: base64 with missing or extra padding
and junk characters, quoted-printable with blanks after a soft line break or stray ``=``, encoding labels
with trailing junk (``base64;``, `` Quoted-Printable ``). Unknown encodings give the raw bytes.
"""

from __future__ import annotations

import base64
import binascii
import re
from email.message import Message

from .headers import raw_value

_B64_JUNK = re.compile(rb"[^A-Za-z0-9+/]")
_QP_SOFT_BREAK = re.compile(rb"=[ \t]+(\r?\n)")


def raw_payload(part: Message) -> bytes:
    """The undecoded body bytes of a leaf part (8-bit bytes restored from the parser's escapes)."""
    payload: object = getattr(part, "_payload", None)
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, str):
        return payload.encode("utf-8", "surrogateescape")
    return b""


def transfer_encoding(part: Message) -> str:
    """The Content-Transfer-Encoding token, lower case, junk removed ("" when absent)."""
    value = raw_value(part, "content-transfer-encoding") or ""
    token = re.split(r"[\s;,]+", value.strip().lower(), maxsplit=1)[0] if value.strip() else ""
    return token.strip("\"'")


def decode_base64(data: bytes) -> bytes:
    """Lenient base64: ignores junk, repairs padding; an impossible final char is dropped."""
    clean = _B64_JUNK.sub(b"", data)
    if len(clean) % 4 == 1:
        clean = clean[:-1]
    clean += b"=" * (-len(clean) % 4)
    return base64.b64decode(clean)


def decode_qp(data: bytes) -> bytes:
    """Lenient quoted-printable: blanks after a soft break are ignored, bad escapes kept literally."""
    return binascii.a2b_qp(_QP_SOFT_BREAK.sub(rb"=\1", data))


def decode_uu(data: bytes) -> bytes:
    """uuencode body (``begin ... end``); lines that do not decode are skipped."""
    out = bytearray()
    started = False
    for line in data.splitlines():
        if not started:
            started = line.startswith(b"begin")
            continue
        if line.strip() == b"end":
            break
        try:
            out += binascii.a2b_uu(line)
        except binascii.Error:
            try:
                nbytes = (((line[0] - 32) & 63) * 4 + 5) // 3
                out += binascii.a2b_uu(line[:nbytes])
            except (binascii.Error, IndexError):
                continue
    return bytes(out)


def decoded_payload(part: Message, problems: list[str]) -> bytes:
    """The body bytes of a leaf part after undoing its transfer encoding; never raises."""
    data = raw_payload(part)
    cte = transfer_encoding(part)
    try:
        if cte == "base64":
            return decode_base64(data)
        if cte in ("quoted-printable", "quotedprintable", "qp"):
            return decode_qp(data)
        if cte in ("x-uuencode", "uuencode", "x-uue", "uue"):
            return decode_uu(data)
    except (binascii.Error, ValueError) as exc:
        problems.append(f"body: bad {cte} encoding ({type(exc).__name__}), kept raw bytes")
    return data
