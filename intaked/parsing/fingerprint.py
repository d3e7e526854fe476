"""The content fingerprint of a mail: what tells a resent copy from a different mail that reuses
the same Message-ID.

Definition (version 1, ``docs/schema.md``, ``messages.content_digest``): the hex SHA-256 of

* the values of the ``From`` and ``Date`` fields of the header block, in order, each unfolded and
  with every run of blanks made one space;
* the body: every byte after the first empty line, line endings made LF (CRLF and lone CR),
  trailing blanks and line ends at its end removed.

Only the author's own fields and the body count, so the trace fields a mail system adds on the
way (Received, Return-Path, Delivered-To, X-Original-To, DKIM-Signature, ARC-*,
Authentication-Results, spam and virus scanner headers), CRLF versus LF, and the trailing line
end an IMAP server adds or drops do not change it: the same mail resent, re-fetched, or arriving
by SMTP and by IMAP has one fingerprint. It is computed from the raw bytes alone (no parser
heuristics), so a parser fix never changes it.
"""

from __future__ import annotations

import hashlib
import re

_LINE_END = re.compile(rb"\r\n|\r")
_BLANKS = re.compile(rb"[ \t]+")
_HEADER_END = re.compile(rb"\n[ \t]*\n")
_FIELD = re.compile(rb"^(from|date)[ \t]*:(.*)$", re.IGNORECASE | re.DOTALL)
#: The fields that count, besides the body.
FINGERPRINT_FIELDS = ("from", "date")


def _fields(head: bytes) -> list[bytes]:
    """``name:value`` of each counted field, unfolded and with blanks collapsed."""
    unfolded: list[bytes] = []
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t") and unfolded:
            unfolded[-1] += b" " + line
        else:
            unfolded.append(line)
    out: list[bytes] = []
    for line in unfolded:
        match = _FIELD.match(line)
        if match:
            value = _BLANKS.sub(b" ", match.group(2)).strip()
            out.append(match.group(1).lower() + b":" + value)
    return out


def content_digest(raw: bytes) -> str:
    """The fingerprint of ``raw`` (see the module docstring): 64 hex digits."""
    text = _LINE_END.sub(b"\n", raw)
    end = _HEADER_END.search(text)
    head, body = (text[: end.start()], text[end.end() :]) if end else (text, b"")
    digest = hashlib.sha256(b"intaked-content-v1\n")
    for field in _fields(head):
        digest.update(field + b"\n")
    digest.update(b"\n")
    digest.update(body.rstrip(b" \t\n"))
    return digest.hexdigest()
