"""The parser against the shared real-world corpus (../shared/mail-corpus): nothing dropped, nothing raised,
clean decoding, and field-by-field agreement with other parsers' expected results where they are right."""

from __future__ import annotations

import base64
import json
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from intaked.parsing import ParsedMessage, parse_message

from .corpus import CORPUS, all_messages, corpus_available, load_imap_tools_expected, manifest_files, rel

pytestmark = pytest.mark.skipif(not corpus_available(), reason=f"mail corpus not found at {CORPUS}")

MESSAGES = all_messages() + sorted((CORPUS / "mimekit_tnef" / "tnef").glob("*.eml"))
_CACHE: dict[Path, ParsedMessage] = {}


def parsed(path: Path) -> ParsedMessage:
    if path not in _CACHE:
        _CACHE[path] = parse_message(path.read_bytes())
    return _CACHE[path]


def norm_ws(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def norm_text(text: str) -> str:
    """Line ends, trailing blanks and runs of empty lines do not matter when comparing bodies."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    return re.sub(r"\n{2,}", "\n", "\n".join(lines)).strip()


@pytest.mark.parametrize("path", MESSAGES, ids=[rel(p) for p in MESSAGES])
def test_every_message_parses(path: Path) -> None:
    raw = path.read_bytes()
    start = time.perf_counter()
    result = parse_message(raw)
    elapsed = time.perf_counter() - start
    _CACHE[path] = result
    assert isinstance(result, ParsedMessage)
    assert elapsed < 5.0, f"{rel(path)} took {elapsed:.1f}s"
    for text in (result.subject, result.body_text, result.body_html or ""):
        text.encode("utf-8")  # no lone surrogates left
        assert "\x00" not in text
    for att in result.attachments:
        assert att.filename and "/" not in att.filename and "\\" not in att.filename
        assert not att.filename.startswith(".")


@pytest.mark.parametrize("path", MESSAGES, ids=[rel(p) for p in MESSAGES])
def test_no_replacement_char_without_a_problem(path: Path) -> None:
    result = parsed(path)
    raw = path.read_bytes()
    for field, text in (("subject", result.subject), ("body_text", result.body_text)):
        if "\ufffd" in text and b"\xef\xbf\xbd" not in raw:  # a literal U+FFFD sent by the mailer is fine
            assert result.problems, f"U+FFFD in {field} without a recorded problem"


BIG5_SAMPLES = ["enmime/testdata/parts/chardet-success-big-5.raw"]


@pytest.mark.parametrize("name", BIG5_SAMPLES)
def test_enmime_big5_samples_decode_cleanly(name: str) -> None:
    result = parsed(CORPUS / name)
    assert "\ufffd" not in result.body_text
    assert re.search(r"[\u4e00-\u9fff]{4}", result.body_text), result.body_text[:80]


def test_enmime_big5_detection_text() -> None:
    result = parsed(CORPUS / "enmime/testdata/parts/chardet-success-big-5.raw")
    assert result.body_text.startswith("顏是家訓  北齊  顏之推\n\n卷第七\u3000音辭")


# --- imap_tools: expected dicts -------------------------------------------------------------------

IMAP_BASE = CORPUS / "imap_tools" / "tests"
IMAP_EXPECTED = manifest_files("imap_tools", "expected")


def imap_key(expected: Path) -> str:
    return str(expected.relative_to(IMAP_BASE / "messages_data").with_suffix(""))


# Where we deliberately differ from imap_tools. Every entry says why.
SUBJECT_DIFFERS = {
    "error_emails/invalid_subject_characters": "imap_tools drops the raw 8-bit bytes (ç, ã); we decode them",
    "plain_emails/raw_email_incorrect_header": "we drop the garbage header line and keep the fields after it",
    "rfc2822/example13": "we repair the obsolete 'Subject  :' field syntax (RFC 5322 4.5)",
    "rfc2822/example14": "RFC 2047 6.2: the space between plain text and an encoded-word is kept",
}
FROM_DIFFERS = {
    "plain_emails/raw_email_incorrect_header": "we drop the garbage header line and keep the fields after it",
    "rfc2822/example13": "we repair the obsolete 'From  :' field syntax (RFC 5322 4.5)",
}
ATTACHMENTS_DIFFER = {
    "attachment_emails/attachment_message_rfc822": "imap_tools lists the attached message's own PDF as ours",
    "attachment_emails/attachment_with_encoded_name": "bad iso-2022-jp byte: U+FFFD there, detected here",
    "plain_emails/raw_email8": "invalid byte under iso-2022-jp: U+FFFD there, detected here",
    "error_emails/missing_content_disposition": "imap_tools skips an unnamed image; we keep non-body parts",
    "mime_emails/raw_email11": "imap_tools ignores an unnamed part; we keep every non-body part",
    "multipart_report_emails/report_422": "we keep the delivery-status and headers parts as attachments",
    "multipart_report_emails/report_530": "we keep the delivery-status and headers parts as attachments",
    "multipart_report_emails/multi_address_bounce1": "we keep the delivery-status part as an attachment",
    "multipart_report_emails/multi_address_bounce2": "we keep the delivery-status part as an attachment",
    "multipart_report_emails/multipart_report_multiple_status": "delivery-status parts kept as attachments",
    "mime_emails/raw_email_with_mimepart_without_content_type": "delivery-status part kept as an attachment",
    "text_with_content_id": "an unnamed text/plain part with a Content-ID is body text for us",
}
TEXT_DIFFERS = {
    "attachment_2_base64": "imap_tools' text is the attached messages' raw base64",
    "attachment_8bit": "imap_tools appends the attached message's text",
    "attachment_emails/attachment_message_rfc822": "imap_tools appends the attached message's text",
    "mime_emails/raw_email_with_mimepart_without_content_type": "imap_tools appends the attached message",
    "multipart_report_emails/multi_address_bounce1": "imap_tools appends the returned message's text",
    "multipart_report_emails/multi_address_bounce2": "imap_tools appends the returned message's text",
    "multipart_report_emails/multipart_report_multiple_status": "imap_tools appends the returned message",
    "error_emails/content_transfer_encoding_7-bit": "imap_tools shows UTF-8 as Latin-1 mojibake (Ã\x86)",
    "error_emails/content_transfer_encoding_plain": "imap_tools drops undecodable bytes, we decode them",
    "plain_emails/raw_email6": "imap_tools drops 8-bit é; we decode it",
    "plain_emails/raw_email_incorrect_header": "we recover the header block, so the body starts later",
    "rfc2822/example13": "we recover the header block, so the body starts later",
}


def _imap_case(expected: Path) -> tuple[str, dict[str, Any], ParsedMessage]:
    key = imap_key(expected)
    data = load_imap_tools_expected(expected)
    return key, data, parsed(IMAP_BASE / "messages" / f"{key}.eml")


@pytest.mark.parametrize("expected", IMAP_EXPECTED, ids=[imap_key(p) for p in IMAP_EXPECTED])
def test_imap_tools_subject_and_sender(expected: Path) -> None:
    key, data, result = _imap_case(expected)
    if key not in SUBJECT_DIFFERS:
        assert norm_ws(result.subject) == norm_ws(data["subject"])
    if key not in FROM_DIFFERS:
        got = result.sender.address if result.sender else ""
        assert got.lower() == data["from_"].lower()


@pytest.mark.parametrize("expected", IMAP_EXPECTED, ids=[imap_key(p) for p in IMAP_EXPECTED])
def test_imap_tools_attachment_names(expected: Path) -> None:
    key, data, result = _imap_case(expected)
    if key in ATTACHMENTS_DIFFER:
        pytest.skip(ATTACHMENTS_DIFFER[key])
    want = [a["filename"] for a in data["attachments"]]
    got = [a.filename for a in result.attachments]
    assert len(got) == len(want), (got, want)
    for g, w in zip(got, want, strict=True):
        if w:  # imap_tools gives '' for an unnamed part; we always generate a name
            assert g == w
        else:
            assert g


@pytest.mark.parametrize("expected", IMAP_EXPECTED, ids=[imap_key(p) for p in IMAP_EXPECTED])
def test_imap_tools_text(expected: Path) -> None:
    key, data, result = _imap_case(expected)
    if key in TEXT_DIFFERS:
        pytest.skip(TEXT_DIFFERS[key])
    if not data["text"].strip():
        pytest.skip("imap_tools has no text/plain part here (we convert the HTML instead)")
    assert norm_text(result.body_text) == norm_text(data["text"])


def test_imap_tools_allow_lists_are_current() -> None:
    keys = {imap_key(p) for p in IMAP_EXPECTED}
    for table in (SUBJECT_DIFFERS, FROM_DIFFERS, ATTACHMENTS_DIFFER, TEXT_DIFFERS):
        assert set(table) <= keys


# --- stalwart mail-parser: JSON trees -------------------------------------------------------------

STALWART = manifest_files("stalwart_mail_parser", "message")
STALWART_DIFFERS = {
    "legacy/010": "raw 8-bit Latin-1 subject: U+FFFD there, decoded here",
    "legacy/020": "raw 8-bit Latin-1 subject: U+FFFD there, decoded here",
    "legacy/022": "raw 8-bit Latin-1 subject: U+FFFD there, decoded here",
    "legacy/027": "raw 8-bit Latin-1 subject: U+FFFD there, decoded here",
    "legacy/052": "raw 8-bit Latin-1 subject: U+FFFD there, decoded here",
    "rfc/001": "'From: Whomever' (no @): a name there, the address here (email.utils' reading)",
    "rfc/004": "'From: Moderator-Address' (no @): a name there, the address here",
    "malformed/019": "a garbled header block: we recover fewer fields than stalwart",
}


def stalwart_key(path: Path) -> str:
    return str(path.relative_to(CORPUS / "stalwart_mail_parser" / "resources" / "eml").with_suffix(""))


def _stalwart_fields(path: Path) -> tuple[str | None, tuple[str, str] | None]:
    tree = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    subject: str | None = None
    sender: tuple[str, str] | None = None
    for header in tree["parts"][0]["headers"]:
        value = header["value"]
        if header["name"] == "subject" and subject is None and isinstance(value, dict) and "Text" in value:
            subject = value["Text"]
        if header["name"] == "from" and sender is None and isinstance(value, dict) and "Address" in value:
            lst = value["Address"].get("List") or []
            if lst:
                sender = (lst[0].get("name") or "", lst[0].get("address") or "")
    return subject, sender


@pytest.mark.parametrize("path", STALWART, ids=[stalwart_key(p) for p in STALWART])
def test_stalwart_subject_and_from(path: Path) -> None:
    if not path.with_suffix(".json").is_file():
        pytest.skip("no JSON tree for this message")
    key = stalwart_key(path)
    if key in STALWART_DIFFERS:
        pytest.skip(STALWART_DIFFERS[key])
    subject, sender = _stalwart_fields(path)
    result = parsed(path)
    if subject is not None:
        assert norm_ws(result.subject) == norm_ws(subject)
    if sender is not None:
        assert result.sender is not None
        assert (result.sender.name, result.sender.address.lower()) == (sender[0], sender[1].lower())


# --- MimeKit TNEF payloads ------------------------------------------------------------------------

TNEF_DIR = CORPUS / "mimekit_tnef" / "tnef"
TNEF_FILES = sorted(TNEF_DIR.glob("*.tnef")) if TNEF_DIR.is_dir() else []
TNEF_DIFFERS = {
    "christmas": "tnefparse finds 2 of MimeKit's 4 untitled embedded-message attachments",
}


def wrap_tnef(data: bytes) -> bytes:
    """A minimal Outlook-style message carrying ``data`` as application/ms-tnef winmail.dat."""
    return (
        b"From: Outlook User <user@example.com>\r\nTo: helpdesk@example.com\r\nSubject: tnef\r\n"
        b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="tnef-boundary"\r\n\r\n'
        b'--tnef-boundary\r\nContent-Type: application/ms-tnef; name="winmail.dat"\r\n'
        b"Content-Transfer-Encoding: base64\r\n"
        b'Content-Disposition: attachment; filename="winmail.dat"\r\n\r\n'
        + base64.encodebytes(data).replace(b"\n", b"\r\n")
        + b"\r\n--tnef-boundary--\r\n"
    )


@pytest.mark.parametrize("path", TNEF_FILES, ids=[p.stem for p in TNEF_FILES])
def test_mimekit_tnef_attachment_names(path: Path) -> None:
    result = parse_message(wrap_tnef(path.read_bytes()))
    names = [a.filename for a in result.attachments]
    assert "winmail.dat" not in names, result.problems
    listing = path.with_suffix(".list")
    if not listing.is_file():
        return
    if path.stem in TNEF_DIFFERS:
        pytest.skip(TNEF_DIFFERS[path.stem])
    # MimeKit lists the message body as body.rtf / body.html; we put the body in body_text instead.
    want = [n.strip() for n in listing.read_text(encoding="utf-8").splitlines()]
    want = [n for n in want if n and not n.startswith("body.")]
    assert not (Counter(want) - Counter(names)), (want, names)
