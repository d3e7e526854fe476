"""Threading rules: which existing ticket an inbound message belongs to (pure functions).

In this order (RFC 5322 section 3.6.4 for the headers):
1. ``In-Reply-To``, then ``References`` from the newest id back, naming a Message-ID we stored or
   sent;
2. a ticket-number tag in the subject, ``[IT-202611-00042]``, also behind ``Re:``/``回覆:``/``RE:``/
   ``答复:``/``Fwd:``/``轉寄:`` prefixes in any case (the tag is searched anywhere in the subject).
Otherwise the message opens a new ticket. What happens when the ticket found is resolved or closed
is decided by :func:`decide`.

Ticket numbers are sequential, so anyone can guess a tag; our Message-IDs cannot be guessed. A tag
alone therefore joins only mail from someone already on the ticket (:func:`tag_refusal`): the
requester, a sender or recipient of one of its messages, or an internal address
(``trust.internal_domains``). Other tagged mail opens a new ticket linked to the tagged one.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Collection, Sequence
from functools import lru_cache

from intaked.parsing import ParsedMessage
from intaked.routing.trust import domain_of, is_internal


class Decision(enum.Enum):
    """What an inbound message does to the ticket it threads to."""

    NEW = "new"  # opens a new ticket
    JOIN = "join"  # added to the ticket
    REOPEN = "reopen"  # added, and the resolved ticket is open again
    FOLLOW_UP = "follow_up"  # the ticket is closed: a new ticket, linked to it as its parent


@lru_cache(maxsize=16)
def _tag_pattern(prefix: str) -> re.Pattern[str]:
    return re.compile(rf"\[\s*({re.escape(prefix)}-\d{{6}}-\d{{5,}})\s*\]", re.IGNORECASE)


def subject_ticket_numbers(subject: str, prefix: str) -> list[str]:
    """Ticket numbers tagged in ``subject``, first first, normalised to upper case."""
    return list(dict.fromkeys(m.upper() for m in _tag_pattern(prefix).findall(subject or "")))


_RETURNED_MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*<([^>\r\n]+)>", re.IGNORECASE | re.MULTILINE)
_RETURNED_PARTS = ("message/rfc822", "text/rfc822-headers", "message/rfc822-headers")


def referenced_ids(parsed: ParsedMessage) -> list[str]:
    """Message-IDs this message replies to, most specific first: In-Reply-To, then References newest
    first; for a bounce (RFC 3464), also the Message-ID of the returned message, so a bounce of our
    own mail lands on the ticket that sent it."""
    ids: list[str] = []
    if parsed.in_reply_to:
        ids.append(parsed.in_reply_to)
    ids.extend(reversed(parsed.references))
    if "dsn" in parsed.noise or "sender:mailer-daemon" in parsed.noise or "sender:postmaster" in parsed.noise:
        for attachment in parsed.attachments:
            if attachment.content_type.lower() in _RETURNED_PARTS:
                ids.extend(
                    m.decode("ascii", "replace")
                    for m in _RETURNED_MESSAGE_ID.findall(attachment.content[:65536])
                )
    return list(dict.fromkeys(i.strip() for i in ids if i and i.strip()))


def decide(status: str | None) -> Decision:
    """The decision for a message threading to a ticket in ``status`` (None: no ticket found)."""
    if status is None:
        return Decision.NEW
    if status == "closed":
        return Decision.FOLLOW_UP
    if status == "resolved":
        return Decision.REOPEN
    return Decision.JOIN


def first_match(candidates: Sequence[str], known: dict[str, int]) -> int | None:
    """The ticket of the first candidate that ``known`` has."""
    for candidate in candidates:
        if candidate in known:
            return known[candidate]
    return None


def tag_refusal(
    sender: str | None,
    on_ticket: Collection[str],
    internal_domains: Sequence[str],
    ours: Collection[str],
    unauthenticated: str | None = None,
) -> str | None:
    """Why a subject tag from ``sender`` may not join the tagged ticket (None: it may).
    ``on_ticket``: the lower-case addresses already on it (requester, senders and recipients of
    its messages); ``ours``: our own addresses, which never vouch for a sender (anyone can write
    them in a From: field); ``unauthenticated``: when our MTA's Authentication-Results are read
    (``trust.authserv_id`` set), why they do not vouch for this mail, None when they do or are not
    read. An internal address our MTA did not authenticate is a forgery from outside, whether or
    not it is on the ticket: most requesters are internal."""
    address = (sender or "").strip().lower()
    if not address:
        return "the mail has no sender address"
    if address in ours:
        return f"{address} is our own address: a tag in mail from it is not trusted"
    internal = is_internal(domain_of(address), internal_domains)
    if internal and unauthenticated is not None:
        return f"{address} is internal but our MTA did not authenticate it ({unauthenticated})"
    if address in on_ticket or internal:
        return None
    return f"{address} is neither on the ticket nor internal (trust.internal_domains)"
