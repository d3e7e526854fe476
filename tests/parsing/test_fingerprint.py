"""The content fingerprint: the same for copies of one mail whatever mail systems added on the way,
different for a different mail with the same Message-ID."""

from __future__ import annotations

from intaked.parsing import parse_message
from intaked.parsing.fingerprint import content_digest

from .samples import crlf

MAIL = crlf(
    "From: Scanner A <scanner-a@example.com>\n"
    "To: helpdesk@example.com\n"
    "Subject: Scan to mail\n"
    "Date: Mon, 07 Dec 2026 08:00:00 +0800\n"
    "Message-ID: <1@localhost>\n"
    "\n"
    "Scanned page 1 of 1.\n"
)


def test_copies_of_one_mail_have_one_fingerprint() -> None:
    delivered = (
        crlf(
            "Return-Path: <scanner-a@example.com>\n"
            "Delivered-To: helpdesk@example.com\n"
            "X-Original-To: helpdesk@example.com\n"
            "Received: from mx.example.org\n\tby imap.example.org with LMTP; Mon, 7 Dec 2026 08:00:02 +0800\n"
            "Authentication-Results: mx.example.org; dkim=none\n"
            "ARC-Seal: i=1; a=rsa-sha256; cv=none; d=example.org; s=arc; b=abc\n"
            "DKIM-Signature: v=1; a=rsa-sha256; d=example.com; b=xyz\n"
        )
        + MAIL
    )
    lf_and_no_final_newline = MAIL.replace(b"\r\n", b"\n").rstrip(b"\n")
    refolded = MAIL.replace(b"Date: Mon,", b"Date:  Mon,\r\n\t")
    digests = {content_digest(raw) for raw in (MAIL, delivered, lf_and_no_final_newline, refolded)}
    assert len(digests) == 1
    assert parse_message(delivered).content_digest == content_digest(MAIL)


def test_a_different_body_date_or_author_is_a_different_mail() -> None:
    others = [
        MAIL.replace(b"Scanned page 1 of 1.", b"Toner low."),
        MAIL.replace(b"08:00:00", b"09:00:00"),
        MAIL.replace(b"scanner-a@example.com", b"printer-b@other.example"),
    ]
    digests = {content_digest(raw) for raw in [MAIL, *others]}
    assert len(digests) == 4
