"""The parser on crafted messages shaped like real clients' mail, with exact expectations."""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path

import pytest

from intaked.parsing import Address, parse_message

from . import samples as s
from .corpus import CORPUS

FIXTURES = Path(__file__).parent / "fixtures"


def plain(
    headers: list[bytes], body: bytes, ctype: bytes | None = b"text/plain", cte: bytes | None = None
) -> bytes:
    return s.simple(
        [b"From: Chen <chen@example.com.tw>", b"To: helpdesk@example.com.tw", *headers], body, ctype, cte
    )


# --- charsets -------------------------------------------------------------------------------------


@pytest.mark.parametrize("cte", ["8bit", "quoted-printable", "base64"])
def test_outlook_big5_label_with_cp950_characters(cte: str) -> None:
    result = parse_message(s.outlook_big5(cte))
    assert result.subject == "【報修】三樓會議室印表機卡紙 碁銹裏恒"
    assert result.sender == Address("張碁恒", "chang.chiheng@corp.example.com.tw")
    assert result.to == [Address("IT Helpdesk", "helpdesk@corp.example.com.tw")]
    assert result.body_text == s.BIG5_BODY
    assert result.body_html is not None and "碁銹裏恒" in result.body_html
    assert result.message_id == "SG2PR06MB3456A1B2C3D4E5F6@SG2PR06MB3456.apcprd06.prod.outlook.com"
    assert result.date == dt.datetime(2025, 3, 3, 9, 15, 22, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    assert result.problems == []
    assert result.noise == []


def test_foxmail_gb2312_label_with_gbk_characters() -> None:
    result = parse_message(s.foxmail_gbk())
    assert result.subject == "报修：朱镕基路办公室网络断了"
    assert result.sender == Address("王喆", "wangzhe@example.cn")
    assert result.body_text == "你好，\n\n办公室网络断了，请尽快处理。\n联系人：李珺 电话 021-1234\n\n王喆"
    assert result.problems == []


BIG5_TEXT = "您好，我的電腦無法開機，請協助處理。\n謝謝！碁銹裏恒"


@pytest.mark.parametrize("ctype", [b"text/plain", None], ids=["no-charset", "no-content-type"])
def test_undeclared_8bit_big5_body(ctype: bytes | None) -> None:
    raw = plain([b"Subject: no charset"], BIG5_TEXT.replace("\n", "\r\n").encode("cp950"), ctype)
    result = parse_message(raw)
    assert result.body_text == BIG5_TEXT


def test_undeclared_8bit_utf8_body() -> None:
    result = parse_message(plain([b"Subject: utf8"], "網路斷線 ✔\r\nthanks".encode(), b"text/plain"))
    assert result.body_text == "網路斷線 ✔\nthanks"
    assert result.problems == []


def test_us_ascii_label_on_big5_bytes_is_detected() -> None:
    raw = plain([b"Subject: x"], BIG5_TEXT.encode("cp950"), b"text/plain; charset=us-ascii", b"8bit")
    assert parse_message(raw).body_text == BIG5_TEXT


def test_latin1_label_on_utf8_bytes() -> None:
    raw = plain([b"Subject: x"], "Grüße, 印表機 ok".encode(), b'text/plain; charset="iso-8859-1"', b"8bit")
    assert parse_message(raw).body_text == "Grüße, 印表機 ok"


def test_latin1_label_on_latin1_bytes_stays_latin1() -> None:
    raw = plain([b"Subject: x"], "Grüße aus München".encode("latin-1"), b"text/plain; charset=iso-8859-1")
    assert parse_message(raw).body_text == "Grüße aus München"


@pytest.mark.parametrize(
    ("payload", "text"),
    [("印表機壞了 ok".encode(), "印表機壞了 ok"), ("印表機壞了，碁銹".encode("cp950"), "印表機壞了，碁銹")],
    ids=["utf8", "big5"],
)
def test_unknown_charset_label(payload: bytes, text: str) -> None:
    subject = b"Subject: =?x-unknown?B?" + base64.b64encode(payload) + b"?="
    result = parse_message(plain([subject], payload, b"text/plain; charset=x-unknown", b"8bit"))
    assert result.subject == text
    assert result.body_text == text


def test_iso_2022_jp_with_nec_extension_characters() -> None:
    jis = b"\x1b$B\x2d\x21HV\x1b(B"  # ① 番 (① is an NEC row 13 character)
    subject = b"Subject: =?ISO-2022-JP?B?" + base64.b64encode(jis) + b"?="
    result = parse_message(plain([subject], jis + b"\r\n", b"text/plain; charset=ISO-2022-JP", b"7bit"))
    assert result.subject == "①番"
    assert result.body_text == "①番"


@pytest.mark.parametrize(
    ("label", "text", "codec"),
    [
        ("ks_c_5601-1987", "프린터 고장", "cp949"),
        ("windows-874", "เครื่องพิมพ์", "cp874"),
        ("x-sjis", "プリンタ故障", "cp932"),
        ("utf8", "印表機", "utf-8"),
        ("big-5", "碁銹", "cp950"),
        ("cn-big5", "碁銹", "cp950"),
        ("x-gbk", "镕", "gbk"),
        ("euc-cn", "朱镕基", "gbk"),
    ],
)
def test_charset_labels(label: str, text: str, codec: str) -> None:
    ctype = b"text/plain; charset=" + label.encode()
    result = parse_message(plain([b"Subject: x"], text.encode(codec), ctype, b"8bit"))
    assert result.body_text == text


def test_utf7_label() -> None:
    raw = plain([b"Subject: x"], "Frösche".encode("utf-7"), b"text/plain; charset=unicode-1-1-utf-7")
    assert parse_message(raw).body_text == "Frösche"


# --- headers --------------------------------------------------------------------------------------


def test_raw_utf8_headers() -> None:
    raw = s.simple(
        ["Subject: 無法列印 Re: test".encode(), "From: 陳小明 <ming@example.com.tw>".encode()], b"hi"
    )
    result = parse_message(raw)
    assert result.subject == "無法列印 Re: test"
    assert result.sender == Address("陳小明", "ming@example.com.tw")


def test_raw_big5_subject_uses_the_body_charset() -> None:
    raw = plain(
        [b"Subject: " + "維修單 碁銹".encode("cp950")], "內容".encode("cp950"), b"text/plain; charset=big5"
    )
    result = parse_message(raw)
    assert result.subject == "維修單 碁銹"
    assert result.body_text == "內容"


def test_raw_big5_subject_without_any_declaration() -> None:
    raw = plain([b"Subject: " + "印表機故障請協助".encode("cp950")], b"hello", b"text/plain")
    assert parse_message(raw).subject == "印表機故障請協助"


@pytest.mark.parametrize(("charset", "codec"), [("utf-8", "utf-8"), ("big5", "cp950")])
def test_encoded_words_split_inside_a_character(charset: str, codec: str) -> None:
    data = "測試碁銹中文".encode(codec)
    cut = 4 if codec == "utf-8" else 3  # both cut a character in two
    first = b"=?" + charset.encode() + b"?B?" + base64.b64encode(data[:cut]) + b"?="
    second = s.q_word(data[cut:], charset)
    result = parse_message(plain([b"Subject: Re: " + first + b"\r\n " + second + b" ok"], b"x"))
    assert result.subject == "Re: 測試碁銹中文 ok"


def test_encoded_word_leniency() -> None:
    words = b"=?utf-8?b?" + base64.b64encode("印表".encode()).rstrip(b"=") + b"?= =?UTF-8?q?=E6=A9=9F_ok?="
    result = parse_message(plain([b"Subject: " + words], b"x"))
    assert result.subject == "印表機 ok"


def test_subject_unfolding_and_reply_prefix() -> None:
    raw = plain([b"Subject: =?big5?B?pl6rSDo=?= RE: printer\r\n\tis broken  "], b"x")
    assert parse_message(raw).subject == "回信: RE: printer is broken"


def test_display_names_are_decoded_after_splitting() -> None:
    raw = s.simple(
        [
            b'From: "=?utf-8?Q?Chen=2C_Wei?=" <Wei.Chen@Example.COM.TW>',
            b"To: =?utf-8?B?"
            + base64.b64encode("林, 美玲".encode())
            + b"?= <mei@example.com.tw>, bob@example.com",
            b'Cc: "Lee, Ann" <ann@example.com>,\r\n =?big5?B?'
            + base64.b64encode("碁恒".encode("cp950"))
            + b"?= <c@x.tw>",
            b"Reply-To: helpdesk-reply@example.com",
            b"Subject: names",
        ],
        b"x",
    )
    result = parse_message(raw)
    assert result.sender == Address("Chen, Wei", "Wei.Chen@example.com.tw")
    assert result.to == [Address("林, 美玲", "mei@example.com.tw"), Address("", "bob@example.com")]
    assert result.cc == [Address("Lee, Ann", "ann@example.com"), Address("碁恒", "c@x.tw")]
    assert result.reply_to == [Address("", "helpdesk-reply@example.com")]


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([b"Sender: Desk <desk@example.com>"], Address("Desk", "desk@example.com")),
        ([b"Reply-To: r@example.com"], Address("", "r@example.com")),
        ([b"Return-Path: <bounce@example.com>"], Address("", "bounce@example.com")),
    ],
)
def test_sender_fallbacks(headers: list[bytes], expected: Address) -> None:
    result = parse_message(s.message([b"Subject: x", *headers], b"body"))
    assert result.sender == expected


@pytest.mark.parametrize(
    ("headers", "message_id", "in_reply_to", "references"),
    [
        ([b"Message-ID: <a1@x.tw>"], "a1@x.tw", None, []),
        ([b"Message-Id: a2@x.tw"], "a2@x.tw", None, []),
        ([b"Message-ID: < a3@x.tw >"], "a3@x.tw", None, []),
        ([b"In-Reply-To: <p1@x.tw> (Chen's message of Mon)"], None, "p1@x.tw", []),
        ([b"In-Reply-To: <p1@x.tw> <p2@x.tw>"], None, "p1@x.tw", []),
        ([b"In-Reply-To: p3@x.tw"], None, "p3@x.tw", []),
        (
            [b"References: <r1@x.tw>\r\n <r2@x.tw>\r\n\t<r3@x.tw>"],
            None,
            None,
            ["r1@x.tw", "r2@x.tw", "r3@x.tw"],
        ),
        ([b"References: <r1@x.tw>,<r2@x.tw> (comment) <r1@x.tw>"], None, None, ["r1@x.tw", "r2@x.tw"]),
        ([b"References: r4@x.tw r5@x.tw"], None, None, ["r4@x.tw", "r5@x.tw"]),
        ([b"In-Reply-To:", b"References:"], None, None, []),
    ],
)
def test_message_id_variants(
    headers: list[bytes], message_id: str | None, in_reply_to: str | None, references: list[str]
) -> None:
    result = parse_message(s.message([b"From: a@x.tw", b"Subject: ids", *headers], b"x"))
    assert result.message_id == message_id
    assert result.in_reply_to == in_reply_to
    assert result.references == references


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"Mon, 3 Mar 2025 09:15:22 +0800", dt.datetime(2025, 3, 3, 1, 15, 22, tzinfo=dt.UTC)),
        (b"3 Mar 2025 09:15:22 -0000", dt.datetime(2025, 3, 3, 9, 15, 22, tzinfo=dt.UTC)),
        (b"Mon, 3 Mar 2025 09:15:22 GMT", dt.datetime(2025, 3, 3, 9, 15, 22, tzinfo=dt.UTC)),
    ],
)
def test_dates(value: bytes, expected: dt.datetime) -> None:
    result = parse_message(s.message([b"Date: " + value, b"Subject: d"], b"x"))
    assert result.date == expected
    assert result.date is not None and result.date.tzinfo is not None


@pytest.mark.parametrize(
    "value", [b"Mon, 3 Mar 99999 09:15:22 +0800", b"Mon, 3 Mar 2025 09:15:22 +9999", b"yesterday"]
)
def test_bad_dates_are_none_with_a_problem(value: bytes) -> None:
    result = parse_message(s.message([b"Date: " + value, b"Subject: d"], b"x"))
    assert result.date is None
    assert any(p.startswith("date") for p in result.problems)
    assert result.subject == "d"


def test_authentication_results_unfolded() -> None:
    raw = s.message(
        [
            b"Authentication-Results: mx.example.com.tw;\r\n\tspf=pass smtp.mailfrom=example.com;"
            b"\r\n dkim=pass",
            b"Authentication-Results: other.example; dmarc=none",
            b"Subject: a",
        ],
        b"x",
    )
    assert parse_message(raw).authentication_results == [
        "mx.example.com.tw; spf=pass smtp.mailfrom=example.com; dkim=pass",
        "other.example; dmarc=none",
    ]


# --- bodies ---------------------------------------------------------------------------------------


def test_quoted_printable_with_broken_soft_breaks() -> None:
    body = b"=E5=8D=B0=E8=A1=A8=E6=A9=9F= \r\n=E5=A3=9E=E4=BA=86=\r\n ok =3D done=ZZ\r\n"
    result = parse_message(plain([b"Subject: qp"], body, b"text/plain; charset=utf-8", b"quoted-printable"))
    assert result.body_text == "印表機壞了 ok = done=ZZ"


@pytest.mark.parametrize("junk", [b"", b"=", b"==", b"A", b"\r\n!!"])
def test_base64_with_broken_padding(junk: bytes) -> None:
    data = base64.b64encode("網路斷線，請協助".encode()).rstrip(b"=") + junk
    result = parse_message(plain([b"Subject: b64"], data, b"text/plain; charset=utf-8", b"base64"))
    assert result.body_text == "網路斷線，請協助"


def test_transfer_encoding_label_with_junk() -> None:
    data = base64.b64encode("印表機".encode())
    result = parse_message(plain([b"Subject: x"], data, b"text/plain; charset=utf-8", b" Base64;"))
    assert result.body_text == "印表機"


def test_outlook_html_only() -> None:
    result = parse_message((FIXTURES / "outlook_html_only.eml").read_bytes())
    assert result.subject == "無法連上 VPN"
    assert result.sender == Address("Lin Mei-Ling", "meiling.lin@corp.example.com.tw")
    assert (
        result.body_text
        == "Hi IT,\n\n我的筆電無法連上VPN & Wi-Fi，錯誤碼 <809>。\n\n請協助處理，謝謝！\n\nLin Mei-Ling"
    )
    assert result.body_html is not None and "<o:p>" in result.body_html
    assert result.problems == []


def test_html_fallback_stripper_on_hostile_html() -> None:
    deep = "<div>" * 100_000 + "深層 text" + "</div>" * 100_000
    result = parse_message(plain([b"Subject: deep"], deep.encode(), b"text/html; charset=utf-8"))
    assert "深層 text" in result.body_text
    assert "<div>" not in result.body_text


def test_huge_html_is_truncated_with_a_problem() -> None:
    html = "<p>" + "x" * 3_000_000 + "</p><p>tail</p>"
    result = parse_message(plain([b"Subject: big"], html.encode(), b"text/html; charset=utf-8"))
    assert result.body_text.startswith("xxx")
    assert any("truncated" in p for p in result.problems)


def test_crlf_and_trailing_whitespace_normalised() -> None:
    result = parse_message(plain([b"Subject: x"], b"line 1\r\nline 2\rline 3\r\n\r\n  \r\n"))
    assert result.body_text == "line 1\nline 2\nline 3"


# --- forwarded messages and attachments -----------------------------------------------------------


def test_forwarded_message_stays_one_attachment() -> None:
    result = parse_message((FIXTURES / "thunderbird_forward.eml").read_bytes())
    assert result.subject == "Fwd: 印表機故障"
    assert result.sender == Address("Chen", "chen@example.com.tw")
    assert result.body_text == "請看下面轉寄的信，謝謝。\n\n-- \nChen"
    assert [(a.filename, a.content_type) for a in result.attachments] == [
        ("印表機故障.eml", "message/rfc822")
    ]
    inner = parse_message(result.attachments[0].content)
    assert inner.subject == "印表機故障"
    assert inner.sender == Address("吳銹裏", "wu@corp.example.com.tw")
    assert [a.filename for a in inner.attachments] == ["printer-log.txt"]


def test_forward_only_message_uses_the_forwarded_body() -> None:
    inner = s.outlook_big5("base64")
    boundary = b"fwd-only"
    body = b"\r\n".join(
        [b"--" + boundary, b"Content-Type: message/rfc822", b"", inner, b"--" + boundary + b"--", b""]
    )
    raw = plain([b"Subject: FW:"], body, b"multipart/mixed; boundary=" + boundary)
    result = parse_message(raw)
    assert result.body_text == s.BIG5_BODY
    assert [a.filename for a in result.attachments] == ["【報修】三樓會議室印表機卡紙 碁銹裏恒.eml"]


def _att(headers: list[bytes], body: bytes = b"data") -> tuple[list[bytes], bytes]:
    return headers, body


def test_attachment_file_names() -> None:
    long_name = "報告" * 120 + ".xlsx"
    raw = s.with_attachments(
        [
            _att(
                [
                    b"Content-Type: application/vnd.ms-excel",
                    b"Content-Disposition: attachment; filename*=big5''%B4%FA%B8%D5.xls",
                ]
            ),
            _att(
                [
                    b"Content-Type: application/octet-stream",
                    b"Content-Disposition: attachment;\r\n filename*0*=big5''%B4%FA%B8%D5;"
                    b"\r\n filename*1*=%B3%F8%A7i.xlsx",
                ]
            ),
            _att(
                [
                    b'Content-Type: application/pdf; name="=?big5?B?'
                    + base64.b64encode("維修單.pdf".encode("cp950"))
                    + b'?="'
                ]
            ),
            _att(
                [
                    b"Content-Type: image/png",
                    b'Content-Disposition: attachment; filename="' + "螢幕截圖.png".encode() + b'"',
                ]
            ),
            _att(
                [
                    b"Content-Type: application/octet-stream",
                    b'Content-Disposition: attachment; filename="..\\..\\windows\\evil.dll"',
                ]
            ),
            _att(
                [b"Content-Type: text/plain", b'Content-Disposition: attachment; filename="../../etc/passwd"']
            ),
            _att([b"Content-Type: text/plain", b'Content-Disposition: attachment; filename=".htaccess"']),
            _att([b"Content-Type: text/plain", b'Content-Disposition: attachment; filename="CON.txt"']),
            _att(
                [
                    b"Content-Type: text/plain",
                    b'Content-Disposition: attachment; filename="a\x01b\x7fc\tname?.txt"',
                ]
            ),
            _att([b"Content-Type: application/pdf", b"Content-Disposition: attachment"]),
            _att(
                [
                    b"Content-Type: application/octet-stream",
                    b'Content-Disposition: attachment; filename="' + long_name.encode() + b'"',
                ]
            ),
            _att(
                [
                    b'Content-Type: image/jpeg; name="logo.jpg"',
                    b"Content-ID: <logo@x>",
                    b"Content-Disposition: inline",
                ]
            ),
        ]
    )
    result = parse_message(raw)
    names = [a.filename for a in result.attachments]
    assert names[:10] == [
        "測試.xls",
        "測試報告.xlsx",
        "維修單.pdf",
        "螢幕截圖.png",
        "evil.dll",
        "passwd",
        "htaccess",
        "_CON.txt",
        "a_b_c_name_.txt",
        "attachment-10.pdf",
    ]
    capped = names[10]
    assert capped.endswith(".xlsx") and capped.startswith("報告報告") and len(capped.encode()) <= 200
    logo = result.attachments[11]
    assert (logo.filename, logo.content_id, logo.inline, logo.content) == (
        "logo.jpg",
        "logo@x",
        True,
        b"data",
    )
    assert result.body_text == "附件如上。"


def test_tnef_winmail_dat_from_the_corpus() -> None:
    path = CORPUS / "mimekit_tnef" / "tnef" / "two-files.tnef"
    if not path.is_file():
        pytest.skip(f"mail corpus not found at {CORPUS}")
    from .test_corpus import wrap_tnef

    result = parse_message(wrap_tnef(path.read_bytes()))
    assert [a.filename for a in result.attachments] == ["AUTHORS", "README"]
    assert all(a.content for a in result.attachments)
    assert result.problems == []


def test_unreadable_tnef_stays_winmail_dat() -> None:
    raw = s.with_attachments(
        [
            _att(
                [
                    b"Content-Type: application/ms-tnef; name=winmail.dat",
                    b"Content-Transfer-Encoding: base64",
                ],
                b"AAAA",
            )
        ]
    )
    result = parse_message(raw)
    assert [a.filename for a in result.attachments] == ["winmail.dat"]
    assert result.attachments[0].content == b"\x00\x00\x00"
    assert any(p.startswith("tnef") for p in result.problems)


# --- broken input ---------------------------------------------------------------------------------


def test_missing_closing_boundary() -> None:
    body = b"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\xe5\x8d\xb0\xe8\xa1\xa8\xe6\xa9\x9f\r\n"
    result = parse_message(plain([b"Subject: open"], body, b"multipart/mixed; boundary=b1"))
    assert result.subject == "open"
    assert result.body_text == "印表機"
    assert result.problems


def test_boundary_never_appears() -> None:
    result = parse_message(plain([b"Subject: nob"], b"just text\r\n", b'multipart/mixed; boundary="zzz"'))
    assert result.subject == "nob"
    assert result.body_text == "just text"
    assert result.problems


def test_garbage_header_lines() -> None:
    raw = b"From: a@x.tw\r\nthis is not a header\r\nSubject: still here\r\nTo: b@x.tw\r\n\r\nbody\r\n"
    result = parse_message(raw)
    assert result.subject == "still here"
    assert result.to == [Address("", "b@x.tw")]
    assert result.body_text == "body"
    assert result.problems


def test_binary_junk_body() -> None:
    junk = bytes(range(256)) * 4
    result = parse_message(plain([b"Subject: junk"], junk, b"text/plain; charset=utf-8"))
    assert result.subject == "junk"
    assert result.body_text
    assert result.problems


def test_empty_input() -> None:
    result = parse_message(b"")
    assert result.problems == ["empty input"]
    assert result.subject == "" and result.body_text == "" and result.sender is None


@pytest.mark.parametrize(
    "raw", [b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"\xff" * 50]
)
def test_non_mail_bytes(raw: bytes) -> None:
    result = parse_message(raw)
    assert result.problems


# --- noise ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "noise"),
    [
        ([b"Auto-Submitted: auto-replied; owner-email=x@y"], ["auto-submitted:auto-replied"]),
        ([b"Auto-Submitted: no"], []),
        ([b"X-Autoreply: yes"], ["x-autoreply"]),
        ([b"X-Autorespond: Out of office"], ["x-autorespond"]),
        (
            [b"X-Auto-Response-Suppress: DR, RN, NRN, OOF, AutoReply"],
            ["x-auto-response-suppress:dr,rn,nrn,oof,autoreply"],
        ),
        ([b"X-Auto-Response-Suppress: All"], ["x-auto-response-suppress:all"]),
        ([b"X-Auto-Response-Suppress: DR, RN"], []),
        ([b"Precedence: Bulk"], ["precedence:bulk"]),
        ([b"Precedence: junk"], ["precedence:junk"]),
        ([b"Precedence: list"], ["precedence:list"]),
        ([b"Precedence: first-class"], []),
        ([b"List-Id: IT news <it-news.example.com.tw>"], ["list-id"]),
        ([b"List-Unsubscribe: <mailto:unsub@example.com>"], ["list-unsubscribe"]),
        ([b"Return-Path: <>"], ["sender:null"]),
    ],
)
def test_noise_headers(headers: list[bytes], noise: list[str]) -> None:
    result = parse_message(s.message([b"From: Chen <chen@example.com.tw>", b"Subject: n", *headers], b"x"))
    assert result.noise == noise


def test_auto_submitted_value() -> None:
    result = parse_message(s.message([b"From: a@x.tw", b"Auto-Submitted: Auto-Generated"], b"x"))
    assert result.auto_submitted == "auto-generated"
    assert result.noise == ["auto-submitted:auto-generated"]


@pytest.mark.parametrize(
    ("local", "flag"), [(b"MAILER-DAEMON", "sender:mailer-daemon"), (b"PostMaster", "sender:postmaster")]
)
def test_noise_bounce_senders(local: bytes, flag: str) -> None:
    result = parse_message(s.message([b"From: Mail System <" + local + b"@mx.example.com>"], b"x"))
    assert result.noise == [flag]


def test_noise_dsn() -> None:
    body = b"\r\n".join(
        [
            b"--r1",
            b"Content-Type: text/plain",
            b"",
            b"Delivery to the following recipient failed: x@y",
            b"--r1",
            b"Content-Type: message/delivery-status",
            b"",
            b"Reporting-MTA: dns; mx.example.com",
            b"",
            b"Final-Recipient: rfc822; x@y",
            b"Action: failed",
            b"Status: 5.1.1",
            b"--r1--",
            b"",
        ]
    )
    raw = s.message(
        [
            b"From: postmaster@mx.example.com",
            b"Subject: Undeliverable",
            b"Return-Path: <>",
            b"Content-Type: multipart/report; report-type=delivery-status; boundary=r1",
        ],
        body,
    )
    result = parse_message(raw)
    assert result.noise == ["dsn", "sender:postmaster", "sender:null"]
    assert result.body_text == "Delivery to the following recipient failed: x@y"
