"""Mail loop and noise protection: which inbound mail must never get an automatic answer (pure).

Follows RFC 3834 (Auto-Submitted; do not answer automatic mail, bounces, lists or ourselves) and
the de-facto headers of Exchange and other autoresponders. The parser found the indicators
(``ParsedMessage.noise``); this module turns them into a decision with a reason a person can read.
"""

from __future__ import annotations

from collections.abc import Collection

from intaked.parsing import ParsedMessage

_REASONS = {
    "auto-submitted": "Auto-Submitted: {value} (RFC 3834: automatic mail gets no automatic answer)",
    "x-autoreply": "X-Autoreply header (an autoresponder)",
    "x-autorespond": "X-Autorespond header (an autoresponder)",
    "x-auto-response-suppress": "X-Auto-Response-Suppress: {value} (the sender asks for no automatic answer)",
    "precedence": "Precedence: {value} (bulk or list mail)",
    "list-id": "List-Id header (mailing-list mail)",
    "list-unsubscribe": "List-Unsubscribe header (mailing-list mail)",
    "dsn": "a delivery status notification (bounce)",
    "sender": "sent by {value} (a mail system, not a person)",
}


def machine_mail_reason(parsed: ParsedMessage | None, envelope_from: str | None) -> str | None:
    """Why this mail was sent by a machine (an auto-reply, a bounce, list or bulk mail), or None
    for a person's mail. Machine mail joins its ticket as a message but never changes the ticket
    (no reopening, no cancelled auto-close) and never counts as the requester's reply."""
    if envelope_from == "":
        return "null envelope sender <> (a bounce or other automatic mail)"
    if parsed is None:
        return None
    for indicator in parsed.noise:
        name, _, value = indicator.partition(":")
        if name == "sender" and value == "null":
            return "null Return-Path <> (a bounce or other automatic mail)"
        if name in _REASONS:
            return _REASONS[name].format(value=value)
    return None


def suppression_reason(
    parsed: ParsedMessage | None,
    envelope_from: str | None,
    requester: str | None,
    our_addresses: Collection[str],
) -> str | None:
    """Why this mail must get no acknowledgement, or None when it may."""
    if envelope_from == "":
        return machine_mail_reason(parsed, envelope_from)
    if not requester:
        return "no sender address to answer"
    if requester.lower() in our_addresses:
        return f"sent from our own address {requester}"
    return machine_mail_reason(parsed, envelope_from)
