"""Recovering a header block a strict parser gives up on, before ``email`` reads it.

``email`` ends the header block at the first line that is neither a field nor an indented
continuation, so everything after such a line (From, Subject, Message-ID ...) becomes body text.
Real mail has such lines: continuation lines that lost their leading blank (a ``Received:`` field
folded onto lines starting ``by``, ``for``, ``id``), a stray line before the first field (``----
Original email message ----``), garbage like ``quite Delivered-To: x``, the obsolete ``Subject  :``
form (RFC 5322 section 4.5). Inside the header block (up to the first blank line):

* a line before the first field is skipped, when known fields follow it;
* a line without a field name after a field is a continuation of that field (re-indented), when a
  new known field follows it within a few lines, or when it continues a trace field with one of
  the ``Received:`` clause words (``by``, ``for``, ``id`` ...);
* otherwise the body starts there (a body that starts without a blank line, a ``--`` separator or
  MIME boundary, a quoted header block whose field repeats one already seen: nothing is eaten).

Only the bytes handed to the parser change; the ledger keeps the raw bytes as received. Each kind
of repair is reported as one parse problem.
"""

from __future__ import annotations

import re

MAX_HEADER_BYTES = 512 * 1024
#: A run of lines without a field name longer than this is never a continuation: it is body text.
MAX_CONTINUATION_RUN = 10
#: A junk run before the first field longer than this is never skipped.
MAX_LEADING_JUNK = 3

_FIELD_LINE = re.compile(rb"^([!-9;-~]+)[ \t]*:")
_BLANK_LINE = re.compile(rb"\r?\n[ \t]*\r?\n")
_MBOX_FROM = re.compile(rb"From [^\s:]")
_BOUNDARY_LIKE = re.compile(rb"^--[^ \t\r\n]*\r?$")

#: Field names that show a block really is a header block (prefixes end with "-").
KNOWN_FIELDS = frozenset(
    {
        "from",
        "to",
        "cc",
        "bcc",
        "subject",
        "date",
        "message-id",
        "in-reply-to",
        "references",
        "received",
        "received-spf",
        "return-path",
        "delivered-to",
        "reply-to",
        "sender",
        "mime-version",
        "dkim-signature",
        "authentication-results",
        "auto-submitted",
        "precedence",
        "importance",
        "priority",
        "organization",
        "user-agent",
        "thread-index",
        "thread-topic",
        "disposition-notification-to",
        "accept-language",
    }
)
KNOWN_PREFIXES = ("x-", "content-", "list-", "arc-", "resent-")
#: Fields a message has once: the same one again after a run of text is a quoted header, not ours.
SINGLE_FIELDS = frozenset({"from", "subject", "date", "message-id", "sender", "to", "cc", "in-reply-to"})
#: Trace fields whose lost-indent continuation lines start with one of the clause words below.
TRACE_FIELDS = frozenset({"received"})
TRACE_CLAUSES = re.compile(rb"^(?:by|for|id|with|via|from)[ \t]|^;", re.IGNORECASE)


def _name(match: re.Match[bytes]) -> str:
    return match.group(1).decode("ascii").lower()


def is_known_field(name: str) -> bool:
    """Whether ``name`` (lower case) is a header field this module trusts as one."""
    return name in KNOWN_FIELDS or name.startswith(KNOWN_PREFIXES)


def _split_head(raw: bytes) -> tuple[bytes, bytes] | None:
    """The header block and the rest (from its blank line on); None when no blank line comes
    within ``MAX_HEADER_BYTES`` of a longer message (nothing to repair there)."""
    match = _BLANK_LINE.search(raw, 0, MAX_HEADER_BYTES)
    if match is None:
        return None if len(raw) > MAX_HEADER_BYTES else (raw, b"")
    return raw[: match.start()], raw[match.start() :]


def _known_field_follows(
    lines: list[bytes], fields: list[re.Match[bytes] | None], start: int, limit: int, seen: set[str]
) -> bool:
    """Whether, after lines ``start``..., a new known field comes within ``limit`` lines."""
    for index in range(start, min(len(lines), start + limit + 1)):
        line = lines[index]
        found = fields[index] if line[:1] not in (b" ", b"\t") else None
        if found is not None:
            name = _name(found)
            return is_known_field(name) and not (name in SINGLE_FIELDS and name in seen)
        if _BOUNDARY_LIKE.match(line):
            return False
    return False


def _repairs(skipped: int, joined: int, renamed: int) -> list[str]:
    """The parse problems that name the repairs made (none: nothing was repaired)."""
    problems: list[str] = []
    if skipped:
        problems.append(f"header: {skipped} line(s) before the first field skipped")
    if joined:
        problems.append(f"header: {joined} unindented continuation line(s) joined to their field")
    if renamed:
        problems.append("header: malformed field names repaired")
    return problems


def recover_header_block(raw: bytes) -> tuple[bytes, list[str]]:
    """The bytes to parse (``raw`` itself when nothing needed repair) and the repairs made."""
    split = _split_head(raw)
    if split is None:
        return raw, []
    head, rest = split
    lines = head.split(b"\n")
    fields = [_FIELD_LINE.match(line.lstrip(b" \t")) for line in lines]
    if not any(f is not None and is_known_field(_name(f)) for f in fields):
        return raw, []

    kept: list[bytes] = []
    seen: set[str] = set()
    skipped = joined = renamed = 0
    trace = False  # the current field is a trace field (Received)
    for index, line in enumerate(lines):
        if index == 0 and _MBOX_FROM.match(line):
            kept.append(line)
            continue
        if line[:1] in (b" ", b"\t"):
            if seen:
                kept.append(line)
                continue
            line = line.lstrip(b" \t")  # an indented first field
            renamed += 1
        found = fields[index]
        if found is not None:
            name = _name(found)
            normalized = found.group(1) + b":" + line[found.end() :]
            renamed += normalized != line
            kept.append(normalized)
            seen.add(name)
            trace = name in TRACE_FIELDS
            continue
        if not seen:
            if (
                index < MAX_LEADING_JUNK
                and not _BOUNDARY_LIKE.match(line)
                and _known_field_follows(lines, fields, index + 1, MAX_LEADING_JUNK, seen)
            ):
                skipped += 1
                continue
            kept += lines[index:]
            break
        if line.startswith(b"--") or not line.strip():
            kept += lines[index:]  # the body starts here: a separator or a MIME boundary
            break
        continues_trace = trace and TRACE_CLAUSES.match(line) is not None
        if continues_trace or _known_field_follows(lines, fields, index + 1, MAX_CONTINUATION_RUN, seen):
            kept.append(b" " + line)
            joined += 1
            continue
        kept += lines[index:]  # the body starts here, without a blank line
        break
    problems = _repairs(skipped, joined, renamed)
    if not problems:
        return raw, []
    return b"\n".join(kept) + rest, problems
