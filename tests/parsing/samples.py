"""Builders for the parser's own test messages, as raw BYTES shaped like real clients' mail.

Each builder returns the exact bytes a client would put on the wire (CRLF line ends, Outlook / Foxmail /
Thunderbird style headers), so the tests control every byte: labels, transfer encodings, 8-bit headers.
"""

from __future__ import annotations

import base64
import quopri

CRLF = b"\r\n"


def b64_word(text: str, charset: str, codec: str | None = None) -> bytes:
    """One RFC 2047 B encoded-word."""
    data = text.encode(codec or charset)
    return b"=?" + charset.encode() + b"?B?" + base64.b64encode(data) + b"?="


def q_word(data: bytes, charset: str) -> bytes:
    """One RFC 2047 Q encoded-word of raw bytes (every non-alphanumeric byte escaped)."""
    out = b"".join(bytes([c]) if chr(c).isalnum() and c < 0x80 else b"=%02X" % c for c in data)
    return b"=?" + charset.encode() + b"?Q?" + out + b"?="


def encode_body(data: bytes, cte: str) -> bytes:
    """Body bytes in a transfer encoding: ``8bit``, ``quoted-printable`` or ``base64``."""
    if cte == "base64":
        return base64.encodebytes(data).replace(b"\n", CRLF)
    if cte == "quoted-printable":
        return quopri.encodestring(data.replace(CRLF, b"\n")).replace(b"\n", CRLF)
    return data


def crlf(text: str) -> bytes:
    """ASCII text with LF line ends to CRLF bytes."""
    return text.replace("\n", "\r\n").encode("ascii")


def message(headers: list[bytes], body: bytes) -> bytes:
    """Join header lines (already encoded) and a body."""
    return CRLF.join(headers) + CRLF + CRLF + body


# --- Outlook (Exchange, zh-TW) with a big5 label on CP950 text -------------------------------------------

BIG5_SUBJECT = "【報修】三樓會議室印表機卡紙 碁銹裏恒"
BIG5_NAME = "張碁恒"
BIG5_BODY = (
    "您好：\n\n三樓會議室的印表機一直卡紙，碁銹裏恒。\n麻煩協助處理，謝謝。\n\n張碁恒\n資訊部 分機 1234"
)


def outlook_big5(cte: str = "quoted-printable") -> bytes:
    """Outlook 2016 zh-TW: big5 label, CP950-only characters in subject, From name and body."""
    plain = encode_body(BIG5_BODY.replace("\n", "\r\n").encode("cp950"), cte)
    html_src = "<html><body><p>" + BIG5_BODY.replace("\n", "<br>") + "</p></body></html>"
    html = encode_body(html_src.encode("cp950"), cte)
    boundary = b"_000_SG2PR06MB3456A1B2C3D4E5F6SG2PR06MB3456apcp_"
    headers = [
        b"Received: from SG2PR06MB3456.apcprd06.prod.outlook.com (2603:1096:4:1::1) by",
        b" SG2PR06MB7890.apcprd06.prod.outlook.com with HTTPS; Mon, 3 Mar 2025 01:15:23 +0000",
        b'From: "' + b64_word(BIG5_NAME, "big5", "cp950") + b'" <chang.chiheng@corp.example.com.tw>',
        b'To: "IT Helpdesk" <helpdesk@corp.example.com.tw>',
        b"Subject: " + b64_word(BIG5_SUBJECT, "big5", "cp950"),
        b"Thread-Topic: " + b64_word(BIG5_SUBJECT, "big5", "cp950"),
        b"Thread-Index: AdmMv3Yh0w1mC4n5Qp2x9s8r7q6p5A==",
        b"Date: Mon, 3 Mar 2025 09:15:22 +0800",
        b"Message-ID: <SG2PR06MB3456A1B2C3D4E5F6@SG2PR06MB3456.apcprd06.prod.outlook.com>",
        b"Accept-Language: zh-TW, en-US",
        b"Content-Language: zh-TW",
        b"X-MS-Has-Attach:",
        b"X-MS-TNEF-Correlator:",
        b'Content-Type: multipart/alternative; boundary="' + boundary + b'"',
        b"MIME-Version: 1.0",
    ]
    body = CRLF.join(
        [
            b"--" + boundary,
            b'Content-Type: text/plain; charset="big5"',
            b"Content-Transfer-Encoding: " + cte.encode(),
            b"",
            plain,
            b"--" + boundary,
            b'Content-Type: text/html; charset="big5"',
            b"Content-Transfer-Encoding: " + cte.encode(),
            b"",
            html,
            b"--" + boundary + b"--",
            b"",
        ]
    )
    return message(headers, body)


# --- Foxmail (zh-CN) with a gb2312 label on GBK text ------------------------------------------------------

GBK_SUBJECT = "报修：朱镕基路办公室网络断了"
GBK_NAME = "王喆"
GBK_BODY = "你好，\n\n办公室网络断了，请尽快处理。\n联系人：李珺 电话 021-1234\n\n王喆"


def foxmail_gbk() -> bytes:
    """Foxmail: every part labelled gb2312 while the text carries GBK-only characters (镕 珺 喆)."""
    body = encode_body(GBK_BODY.replace("\n", "\r\n").encode("gbk"), "base64")
    boundary = b"----=_NextPart_67C5A1B2_0F3C2D10_1A2B3C4D"
    headers = [
        b'From: "' + b64_word(GBK_NAME, "gb2312", "gbk") + b'" <wangzhe@example.cn>',
        b'To: "helpdesk" <helpdesk@corp.example.com.tw>',
        b"Subject: " + b64_word(GBK_SUBJECT, "gb2312", "gbk"),
        b"Mime-Version: 1.0",
        b'Content-Type: multipart/alternative; boundary="' + boundary + b'"',
        b"Content-Transfer-Encoding: 8Bit",
        b"Date: Tue, 4 Mar 2025 10:20:30 +0800",
        b"X-Priority: 3",
        b"Message-ID: <tencent_5B1C2D3E4F5A6B7C8D9E0F1A@qq.com>",
        b"X-QQ-MIME: TCMime 1.0 by Tencent",
        b"X-Mailer: QQMail 2.x",
        b"X-QQ-Mailer: QQMail 2.x",
    ]
    parts = CRLF.join(
        [
            b"This is a multi-part message in MIME format.",
            b"",
            b"--" + boundary,
            b'Content-Type: text/plain; charset="gb2312"',
            b"Content-Transfer-Encoding: base64",
            b"",
            body,
            b"--" + boundary + b"--",
            b"",
        ]
    )
    return message(headers, parts)


def simple(
    headers: list[bytes], body: bytes, content_type: bytes | None = b"text/plain", cte: bytes | None = None
) -> bytes:
    """A single-part message with Thunderbird-like headers plus ``headers``."""
    base = [
        b"Message-ID: <8f1c2d3e-4a5b-6c7d-8e9f-0a1b2c3d4e5f@example.com.tw>",
        b"Date: Wed, 5 Mar 2025 14:02:03 +0800",
        b"MIME-Version: 1.0",
        b"User-Agent: Mozilla Thunderbird",
        b"Content-Language: zh-TW",
    ]
    if content_type is not None:
        base.append(b"Content-Type: " + content_type)
    if cte is not None:
        base.append(b"Content-Transfer-Encoding: " + cte)
    return message(headers + base, body)


def with_attachments(parts: list[tuple[list[bytes], bytes]], text: str = "附件如上。") -> bytes:
    """multipart/mixed: one big5 text part, then each (headers, body) part as given."""
    boundary = b"------------Wq8Zc3Hn0yV2kLr5"
    chunks = [
        b"This is a multi-part message in MIME format.",
        b"--" + boundary,
        b"Content-Type: text/plain; charset=Big5",
        b"Content-Transfer-Encoding: 8bit",
        b"",
        text.encode("cp950"),
    ]
    for headers, body in parts:
        chunks += [b"--" + boundary, *headers, b"", body]
    chunks += [b"--" + boundary + b"--", b""]
    return simple(
        [b"From: Chen <chen@example.com.tw>", b"To: helpdesk@example.com.tw", b"Subject: attachments"],
        CRLF.join(chunks),
        content_type=b'multipart/mixed; boundary="' + boundary + b'"',
    )
