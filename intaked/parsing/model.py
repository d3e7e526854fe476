"""The parsed form of one inbound mail: what the parser hands to the rest of intaked.

Everything here is plain data. The parser (``intaked.parsing.mime.parse_message``) is a pure
function from raw bytes to a :class:`ParsedMessage`; it never raises on bad input, it records
what went wrong in :attr:`ParsedMessage.problems` instead.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Address:
    """One mailbox: display name (decoded, may be empty) and addr-spec (may be empty)."""

    name: str
    address: str


@dataclass(frozen=True, slots=True)
class ParsedAttachment:
    """One attachment, with a file name that is safe to show and to write to disk."""

    filename: str
    content_type: str
    content: bytes
    content_id: str | None = None
    inline: bool = False


@dataclass(slots=True)
class ParsedMessage:
    """The result of parsing one raw RFC 5322 message.

    ``message_id``, ``in_reply_to`` and ``references`` hold bare ids, without angle brackets.
    ``noise`` lists the auto-reply / bounce / list indicators found (e.g. ``auto-submitted:auto-replied``,
    ``precedence:bulk``, ``list-id``, ``dsn``, ``sender:mailer-daemon``); empty for a person's mail.
    ``spam_fields`` holds the header fields a spam filter wrote (name containing "spam").
    ``problems`` lists what could not be read cleanly; a message with problems is still a message.
    ``content_digest`` is the content fingerprint of the raw bytes (:mod:`intaked.parsing.fingerprint`):
    what tells a resent copy from a different mail reusing the same Message-ID.
    """

    subject: str = ""
    sender: Address | None = None
    to: list[Address] = field(default_factory=list)
    cc: list[Address] = field(default_factory=list)
    reply_to: list[Address] = field(default_factory=list)
    date: dt.datetime | None = None
    message_id: str | None = None
    in_reply_to: str | None = None
    references: list[str] = field(default_factory=list)
    body_text: str = ""
    body_html: str | None = None
    attachments: list[ParsedAttachment] = field(default_factory=list)
    noise: list[str] = field(default_factory=list)
    auto_submitted: str | None = None
    authentication_results: list[str] = field(default_factory=list)
    spam_fields: list[tuple[str, str]] = field(default_factory=list)  # (name lower case, value)
    problems: list[str] = field(default_factory=list)
    content_digest: str | None = None
