"""Indicators that a mail was sent by a machine: auto-replies, bounces, mailing lists.

Follows RFC 3834 (``Auto-Submitted``), RFC 3464 / RFC 6522 (delivery status notifications:
``multipart/report; report-type=delivery-status``, ``message/delivery-status``), RFC 2369 / RFC 2919
(``List-Unsubscribe``, ``List-Id``), RFC 5321 (null reverse-path ``Return-Path: <>``) and the de-facto
``Precedence``, ``X-Autoreply``, ``X-Autorespond`` and Microsoft ``X-Auto-Response-Suppress`` fields.
The indicators are plain strings; routing decides what to do with them.
"""

from __future__ import annotations

from collections.abc import Iterator
from email.message import Message

from .headers import raw_value, raw_values, to_bytes, unfold
from .model import Address
from .params import content_type

_SUPPRESS_FLAGS = {"all", "autoreply", "oof"}
_MAX_PARTS = 2000


def _plain(value: str) -> str:
    return to_bytes(unfold(value)).decode("utf-8", "replace").strip()


def auto_submitted(msg: Message) -> str | None:
    """The Auto-Submitted keyword, lower case (parameters after ``;`` dropped), or None."""
    value = raw_value(msg, "auto-submitted")
    if value is None:
        return None
    return _plain(value).split(";", 1)[0].strip().lower() or None


def _own_parts(msg: Message) -> Iterator[Message]:
    """The message's MIME parts, not descending into attached messages."""
    stack = [msg]
    seen = 0
    while stack and seen < _MAX_PARTS:
        part = stack.pop()
        seen += 1
        yield part
        if part.is_multipart() and content_type(raw_value(part, "content-type")).value.startswith(
            "multipart/"
        ):
            payload = part.get_payload()
            if isinstance(payload, list):
                stack.extend(reversed([p for p in payload if isinstance(p, Message)]))


def _is_dsn(msg: Message) -> bool:
    for part in _own_parts(msg):
        ctype = content_type(raw_value(part, "content-type"))
        if ctype.value == "message/delivery-status":
            return True
        if (
            ctype.value == "multipart/report"
            and ctype.params.get("report-type", "").lower() == "delivery-status"
        ):
            return True
    return False


_MAX_SPAM_FIELDS = 20


def spam_fields(msg: Message) -> list[tuple[str, str]]:
    """The top-level header fields a spam filter wrote (name containing "spam": ``X-Spam-Flag``,
    ``X-Spam-Status``, ``X-Spamd-Result``, ``X-Rspamd-Score``...), topmost first, as (lower-case
    name, unfolded value); the verdict is for routing to read (intaked/routing/spam.py)."""
    found: list[tuple[str, str]] = []
    for key, value in msg.raw_items():
        if isinstance(key, str) and "spam" in key.lower() and len(found) < _MAX_SPAM_FIELDS:
            found.append((key.strip().lower(), " ".join(_plain(str(value)).split())[:1000]))
    return found


def noise_indicators(msg: Message, sender: Address | None) -> list[str]:
    """The indicator strings for one message, in a fixed order, without duplicates."""
    found: list[str] = []
    submitted = auto_submitted(msg)
    if submitted and submitted != "no":
        found.append(f"auto-submitted:{submitted}")
    if raw_value(msg, "x-autoreply") is not None:
        found.append("x-autoreply")
    if raw_value(msg, "x-autorespond") is not None:
        found.append("x-autorespond")
    for value in raw_values(msg, "x-auto-response-suppress"):
        flags = [f.strip().lower() for f in _plain(value).split(",") if f.strip()]
        if _SUPPRESS_FLAGS.intersection(flags):
            found.append("x-auto-response-suppress:" + ",".join(flags))
    precedence = raw_value(msg, "precedence")
    if precedence is not None:
        word = _plain(precedence).lower()
        if word in ("bulk", "junk", "list"):
            found.append(f"precedence:{word}")
    if raw_value(msg, "list-id") is not None:
        found.append("list-id")
    if raw_value(msg, "list-unsubscribe") is not None:
        found.append("list-unsubscribe")
    if _is_dsn(msg):
        found.append("dsn")
    if sender is not None and sender.address:
        local = sender.address.rpartition("@")[0].lower() or sender.address.lower()
        if local in ("mailer-daemon", "postmaster"):
            found.append(f"sender:{local}")
    for value in raw_values(msg, "return-path"):
        if _plain(value).replace(" ", "") == "<>":
            found.append("sender:null")
            break
    return list(dict.fromkeys(found))
