"""Property tests: no input makes the parser raise, and what it returns is always storable text."""

from __future__ import annotations

import base64

from hypothesis import given, settings
from hypothesis import strategies as st

from intaked.parsing import ParsedMessage, parse_message

from . import samples as s

SEEDS = [s.outlook_big5("quoted-printable"), s.foxmail_gbk(), s.outlook_big5("base64")]
HEADER_BITS = [
    b"=?big5?B?",
    b"=?utf-8?Q?",
    b"?=",
    b"\r\n ",
    b"\r\n\r\n",
    b"--",
    b"boundary=",
    b"; filename*0*=",
    b"%B4",
    b"Content-Type: multipart/mixed; boundary=x\r\n",
    b"Content-Transfer-Encoding: base64\r\n",
    b"\x00",
    b"\xff\xfe",
    b"<",
    b">",
    b'"',
    b"\\",
]


def check(result: ParsedMessage) -> None:
    assert isinstance(result, ParsedMessage)
    texts = [result.subject, result.body_text, result.body_html or "", *result.problems, *result.noise]
    texts += [a.filename for a in result.attachments]
    texts += [x for a in [result.sender, *result.to, *result.cc] if a for x in (a.name, a.address)]
    for text in texts:
        text.encode("utf-8")
        assert "\x00" not in text
    for att in result.attachments:
        assert att.filename and "/" not in att.filename and "\\" not in att.filename


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_random_bytes_never_raise(raw: bytes) -> None:
    check(parse_message(raw))


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 12))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "dup"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[pos] = draw(st.integers(0, 255))
        elif op == "cut":
            del data[pos : pos + draw(st.integers(1, 64))]
        elif op == "insert":
            data[pos:pos] = draw(st.sampled_from(HEADER_BITS))
        else:
            data[pos:pos] = data[pos : pos + draw(st.integers(1, 128))]
    return bytes(data)


@settings(max_examples=300, deadline=None)
@given(mutated())
def test_mutated_fixtures_never_raise(raw: bytes) -> None:
    check(parse_message(raw))


@settings(max_examples=150, deadline=None)
@given(
    st.text(max_size=200),
    st.sampled_from(["utf-8", "big5", "gb2312", "x-unknown", "iso-2022-jp", "utf-7", ""]),
)
def test_any_text_in_any_encoded_word(text: str, charset: str) -> None:
    subject = (
        b"Subject: =?"
        + charset.encode()
        + b"?B?"
        + base64.b64encode(text.encode("utf-8", "surrogatepass"))
        + b"?="
    )
    result = parse_message(subject + b"\r\nFrom: " + text.encode("utf-8", "surrogatepass") + b"\r\n\r\nbody")
    check(result)
