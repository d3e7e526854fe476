"""Header blocks a strict parser gives up on: unindented continuation lines, a junk first line,
a duplicated From. The fields after the break are recovered, the defect is a parse problem, and
a body that starts without a blank line is not eaten."""

from __future__ import annotations

import pytest

from intaked.parsing import Address, parse_message

from .samples import crlf

RECEIVED_UNINDENTED = crlf(
    "Received: from scanner.example.com (scanner.example.com [192.0.2.10])\n"
    "by mx.example.org (Postfix) with ESMTP id 4F2A1C0042\n"
    "for <helpdesk@example.org>; Mon, 7 Dec 2026 08:00:00 +0800\n"
    "Received: from [10.0.0.5] (unknown [10.0.0.5])\n"
    "by scanner.example.com with SMTP\n"
    "id 12345; Mon, 7 Dec 2026 07:59:58 +0800\n"
    "From: Chen Mei <chen.mei@example.com>\n"
    "To: helpdesk@example.org\n"
    "Subject: Printer on 3F jams\n"
    "Message-ID: <jam-3f-001@example.com>\n"
    "Date: Mon, 7 Dec 2026 08:00:00 +0800\n"
    "\n"
    "The printer on the third floor jams on every page.\n"
)

RECEIVED_LAST = crlf(
    "From: Chen Mei <chen.mei@example.com>\n"
    "Subject: VPN drops every hour\n"
    "Message-ID: <vpn-002@example.com>\n"
    "Received: from laptop.example.com (laptop.example.com [192.0.2.11])\n"
    "by mx.example.org (Postfix) with ESMTPS\n"
    "id 9A8B7C6D5E\n"
    "for <helpdesk@example.org>; Mon, 7 Dec 2026 09:00:00 +0800\n"
    "\n"
    "The VPN disconnects every hour.\n"
)

SUBJECT_UNINDENTED = crlf(
    "From: Chen Mei <chen.mei@example.com>\n"
    "Subject: Outlook keeps asking for\n"
    "my password\n"
    "Message-ID: <pw-003@example.com>\n"
    "\n"
    "Since this morning.\n"
)

JUNK_FIRST_LINE = crlf(
    "---- Original email message ----\n"
    "From: Lin Ya <lin.ya@example.com>\n"
    "To: helpdesk@example.org\n"
    "Subject: Cannot open the shared drive\n"
    "Message-ID: <share-004@example.com>\n"
    "\n"
    "The S: drive says access denied.\n"
)

DUPLICATED_FROM = crlf(
    "From: Undisclosed sender\n"
    "From: Wang Wei <wang.wei@example.com>\n"
    "Subject: Monitor flickers\n"
    "Message-ID: <flicker-005@example.com>\n"
    "\n"
    "My monitor flickers.\n"
)


@pytest.mark.parametrize(
    ("raw", "sender", "subject", "message_id", "body", "problem"),
    [
        (
            RECEIVED_UNINDENTED,
            Address("Chen Mei", "chen.mei@example.com"),
            "Printer on 3F jams",
            "jam-3f-001@example.com",
            "The printer on the third floor jams on every page.",
            "header: 4 unindented continuation line(s) joined to their field",
        ),
        (
            RECEIVED_LAST,
            Address("Chen Mei", "chen.mei@example.com"),
            "VPN drops every hour",
            "vpn-002@example.com",
            "The VPN disconnects every hour.",
            "header: 3 unindented continuation line(s) joined to their field",
        ),
        (
            SUBJECT_UNINDENTED,
            Address("Chen Mei", "chen.mei@example.com"),
            "Outlook keeps asking for my password",
            "pw-003@example.com",
            "Since this morning.",
            "header: 1 unindented continuation line(s) joined to their field",
        ),
        (
            JUNK_FIRST_LINE,
            Address("Lin Ya", "lin.ya@example.com"),
            "Cannot open the shared drive",
            "share-004@example.com",
            "The S: drive says access denied.",
            "header: 1 line(s) before the first field skipped",
        ),
        (
            DUPLICATED_FROM,
            Address("Wang Wei", "wang.wei@example.com"),
            "Monitor flickers",
            "flicker-005@example.com",
            "My monitor flickers.",
            "from: 2 From fields, the first without an address: used the one with an address",
        ),
    ],
    ids=["received-unindented", "received-last-field", "subject-unindented", "junk-first-line", "two-from"],
)
def test_fields_after_the_break_are_recovered(
    raw: bytes, sender: Address, subject: str, message_id: str, body: str, problem: str
) -> None:
    result = parse_message(raw)
    assert result.sender == sender
    assert result.subject == subject
    assert result.message_id == message_id
    assert result.body_text.strip() == body
    assert problem in result.problems


def test_the_received_continuation_stays_in_its_field() -> None:
    from email import message_from_bytes

    from intaked.parsing.headerblock import recover_header_block

    repaired, _ = recover_header_block(RECEIVED_UNINDENTED)
    received = message_from_bytes(repaired).get_all("Received")
    assert received is not None and len(received) == 2
    assert "for <helpdesk@example.org>" in received[0]
    assert "id 12345" in received[1]


def test_a_body_without_a_blank_line_is_not_eaten() -> None:
    raw = crlf(
        "From: Chen Mei <chen.mei@example.com>\n"
        "Subject: Keyboard broken\n"
        "Message-ID: <kb-006@example.com>\n"
        "Hello,\n"
        "my keyboard lost its Enter key.\n"
        "\n"
        "Thanks, Chen\n"
    )
    result = parse_message(raw)
    assert result.subject == "Keyboard broken"
    assert result.body_text.startswith("Hello,\nmy keyboard lost its Enter key.")


def test_a_quoted_header_in_a_body_without_a_blank_line_is_not_read_as_a_field() -> None:
    raw = crlf(
        "From: Chen Mei <chen.mei@example.com>\n"
        "Subject: Fwd: printer\n"
        "Message-ID: <fwd-007@example.com>\n"
        "see below\n"
        "From: Someone Else <someone@example.net>\n"
        "\n"
        "the printer is broken\n"
    )
    result = parse_message(raw)
    assert result.sender == Address("Chen Mei", "chen.mei@example.com")
    assert result.subject == "Fwd: printer"
    assert "see below" in result.body_text


def test_a_forwarded_separator_after_the_fields_starts_the_body() -> None:
    raw = crlf(
        "From: Chen Mei <chen.mei@example.com>\n"
        "Subject: Fwd: disk full\n"
        "Message-ID: <fwd-008@example.com>\n"
        "---- Original email message ----\n"
        "From: Server <root@server.example.com>\n"
        "Subject: disk full\n"
        "\n"
        "/var is full\n"
    )
    result = parse_message(raw)
    assert result.sender == Address("Chen Mei", "chen.mei@example.com")
    assert result.subject == "Fwd: disk full"
    assert result.message_id == "fwd-008@example.com"
    assert "---- Original email message ----" in result.body_text


def test_a_well_formed_message_has_no_header_problem() -> None:
    raw = crlf(
        "Received: from a.example.com\n"
        "\tby b.example.org; Mon, 7 Dec 2026 08:00:00 +0800\n"
        "From: Chen Mei <chen.mei@example.com>\n"
        "Subject: ok\n"
        "\n"
        "body\n"
    )
    result = parse_message(raw)
    assert result.problems == []
    assert result.subject == "ok"


@pytest.mark.parametrize("first", ["From: <>", 'From: "Chen"', "From: Undisclosed recipients"])
def test_of_two_from_fields_the_one_with_an_address_is_the_sender(first: str) -> None:
    raw = crlf(f"{first}\nFrom: Wang Wei <wang.wei@example.com>\nSubject: s\n\nbody\n")
    result = parse_message(raw)
    assert result.sender == Address("Wang Wei", "wang.wei@example.com")
    assert any(p.startswith("from: 2 From fields, the first without an address") for p in result.problems)
