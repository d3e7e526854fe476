"""The entry point: raw RFC 5322 bytes to a :class:`~intaked.parsing.model.ParsedMessage`.

The message is split with the standard library's ``email`` package under ``policy=compat32`` (RFC 5322 /
RFC 2045-2049 structure; it does not raise while reading and keeps raw 8-bit header bytes); every field is
then decoded by this package (see :mod:`.headers`, :mod:`.charsets`, :mod:`.body`). Each field is read
under its own guard: a failure loses that field, records a short English problem, and never loses the
message. :func:`parse_message` is pure and never raises.
"""

from __future__ import annotations

import email
from collections.abc import Callable
from email.message import Message
from email.policy import compat32
from typing import TypeVar

from .body import BodyResult, extract_body
from .charsets import codec_for, storable_text
from .fingerprint import content_digest
from .headerblock import recover_header_block
from .headers import (
    decode_unstructured,
    parse_addresses,
    parse_date,
    parse_msg_ids,
    raw_value,
    raw_values,
    to_bytes,
    unfold,
)
from .model import Address, ParsedMessage
from .noise import auto_submitted, noise_indicators, spam_fields
from .params import content_type

_T = TypeVar("_T")
_MAX_DEFECTS = 10


def _guard(problems: list[str], what: str, fn: Callable[[], _T], default: _T) -> _T:
    try:
        return fn()
    except RecursionError:
        problems.append(f"{what}: too deeply nested, skipped")
        return default
    except Exception as exc:  # a failure loses the field, never the message
        problems.append(f"{what}: unreadable ({type(exc).__name__})")
        return default


def _charset_hint(msg: Message) -> str | None:
    """The first non-ASCII, non-UTF-8 charset declared by a part: the likely charset of raw 8-bit headers."""
    for count, part in enumerate(msg.walk()):
        if count > 200:
            break
        charset = content_type(raw_value(part, "content-type")).params.get("charset")
        codec = codec_for(charset)
        if codec and codec not in ("ascii", "utf_8"):
            return charset
    return None


def _has_address(address: Address) -> bool:
    local, at, domain = address.address.rpartition("@")
    return bool(at and local and domain)


def _from_field(msg: Message, hint: str | None, problems: list[str]) -> Address | None:
    """The author from the From field(s). Of two or more From fields (RFC 5322 allows one), the
    first with a real address is used, and the duplication is recorded."""
    per_field = [
        [a for a in parse_addresses([value], hint, problems, "from") if a.address or a.name]
        for value in raw_values(msg, "from")
    ]
    usable = [addresses for addresses in per_field if addresses]
    if len(per_field) < 2 or not usable:
        return usable[0][0] if usable else None
    with_address = [a for addresses in usable for a in addresses if _has_address(a)]
    if with_address and not any(_has_address(a) for a in per_field[0]):
        problems.append(
            f"from: {len(per_field)} From fields, the first without an address: used the one with an address"
        )
        return with_address[0]
    problems.append(f"from: {len(per_field)} From fields, the first one used")
    return usable[0][0]


def _sender(msg: Message, hint: str | None, problems: list[str]) -> Address | None:
    author = _from_field(msg, hint, problems)
    if author is not None:
        return author
    for name in ("sender", "reply-to", "return-path"):
        addresses = parse_addresses(raw_values(msg, name), hint, problems, name)
        usable = [a for a in addresses if a.address or a.name]
        if usable:
            return usable[0]
    return None


def _defects(msg: Message, problems: list[str]) -> None:
    names: list[str] = []
    for count, part in enumerate(msg.walk()):
        if count > 500:
            break
        names += [type(d).__name__ for d in getattr(part, "defects", [])]
    for name in list(dict.fromkeys(names))[:_MAX_DEFECTS]:
        problems.append(f"mime: {name}")


def _sanitize(result: ParsedMessage) -> None:
    def addr(a: Address) -> Address:
        return Address(name=storable_text(a.name), address=storable_text(a.address))

    result.subject = storable_text(result.subject)
    result.body_text = storable_text(result.body_text)
    if result.body_html is not None:
        result.body_html = storable_text(result.body_html)
    result.sender = addr(result.sender) if result.sender else None
    result.to = [addr(a) for a in result.to]
    result.cc = [addr(a) for a in result.cc]
    result.reply_to = [addr(a) for a in result.reply_to]
    result.message_id = storable_text(result.message_id) if result.message_id else None
    result.in_reply_to = storable_text(result.in_reply_to) if result.in_reply_to else None
    result.references = [storable_text(r) for r in result.references]
    result.authentication_results = [storable_text(r) for r in result.authentication_results]
    result.noise = [storable_text(n) for n in result.noise]
    result.spam_fields = [(storable_text(name), storable_text(value)) for name, value in result.spam_fields]
    result.attachments = [
        a
        if a.filename == storable_text(a.filename)
        else type(a)(
            filename=storable_text(a.filename),
            content_type=a.content_type,
            content=a.content,
            content_id=a.content_id,
            inline=a.inline,
        )
        for a in result.attachments
    ]


def _parse(raw: bytes, result: ParsedMessage) -> None:
    problems = result.problems
    if not raw.strip():
        problems.append("empty input")
        return
    unrepaired: tuple[bytes, list[str]] = (raw, [])
    repaired, repairs = _guard(problems, "header repair", lambda: recover_header_block(raw), unrepaired)
    problems += repairs
    msg = email.message_from_bytes(repaired, policy=compat32)
    if not msg.keys():
        problems.append("no header fields found, whole input read as body")
    _guard(problems, "mime", lambda: _defects(msg, problems), None)
    hint = _guard(problems, "charset hint", lambda: _charset_hint(msg), None)

    _read_headers(msg, hint, result)
    body = _guard(problems, "body", lambda: extract_body(msg, problems, hint), BodyResult())
    result.body_text = body.body_text
    result.body_html = body.body_html
    result.attachments = body.attachments


def _read_headers(msg: Message, hint: str | None, result: ParsedMessage) -> None:
    """Fill ``result`` from the header fields, each on its own guard: one bad field is a problem
    noted, never a lost message."""
    problems = result.problems
    result.subject = _guard(
        problems,
        "subject",
        lambda: decode_unstructured(raw_value(msg, "subject"), hint, problems, "subject"),
        "",
    )
    result.sender = _guard(problems, "sender", lambda: _sender(msg, hint, problems), None)
    result.to = _guard(
        problems, "to", lambda: parse_addresses(raw_values(msg, "to"), hint, problems, "to"), []
    )
    result.cc = _guard(
        problems, "cc", lambda: parse_addresses(raw_values(msg, "cc"), hint, problems, "cc"), []
    )
    result.reply_to = _guard(
        problems,
        "reply-to",
        lambda: parse_addresses(raw_values(msg, "reply-to"), hint, problems, "reply-to"),
        [],
    )
    result.date = _guard(problems, "date", lambda: parse_date(raw_value(msg, "date"), problems), None)
    message_ids: list[str] = _guard(
        problems, "message-id", lambda: parse_msg_ids(raw_value(msg, "message-id")), []
    )
    result.message_id = message_ids[0] if message_ids else None
    replied: list[str] = _guard(
        problems, "in-reply-to", lambda: parse_msg_ids(raw_value(msg, "in-reply-to")), []
    )
    result.in_reply_to = replied[0] if replied else None
    result.references = _guard(
        problems,
        "references",
        lambda: [i for v in raw_values(msg, "references") for i in parse_msg_ids(v)],
        [],
    )
    result.authentication_results = _guard(
        problems,
        "authentication-results",
        lambda: [
            " ".join(to_bytes(unfold(v)).decode("utf-8", "replace").split())
            for v in raw_values(msg, "authentication-results")
        ],
        [],
    )
    result.spam_fields = _guard(problems, "spam fields", lambda: spam_fields(msg), [])
    result.auto_submitted = _guard(problems, "auto-submitted", lambda: auto_submitted(msg), None)
    result.noise = _guard(problems, "noise", lambda: noise_indicators(msg, result.sender), [])


def parse_message(raw: bytes) -> ParsedMessage:
    """Parse one raw message. Pure; never raises: problems are listed in ``ParsedMessage.problems``."""
    result = ParsedMessage()
    try:
        if not isinstance(raw, bytes):
            result.problems.append(f"input is {type(raw).__name__}, not bytes")
            raw = (
                bytes(raw)
                if isinstance(raw, (bytearray, memoryview))
                else str(raw).encode("utf-8", "surrogateescape")
            )
        result.content_digest = _guard(result.problems, "fingerprint", lambda: content_digest(raw), None)
        _parse(raw, result)
    except Exception as exc:  # last resort: the message survives with what we have
        result.problems.append(f"parser: unexpected {type(exc).__name__}")
    try:
        _sanitize(result)
    except Exception as exc:
        result.problems.append(f"parser: could not sanitize ({type(exc).__name__})")
    return result
