"""Why intaked reads mail with its own ``parsing/`` package: the same Taiwanese and Chinese mail
read by intaked and by mail-parser (PyPI ``mail-parser``, a popular wrapper around the stdlib
``email`` package), side by side.

mail-parser is not a dependency of intaked; install it next to intaked to run this comparison:

    .venv/bin/pip install mail-parser && .venv/bin/python bench/parser_choice.py

Each case is a shape of mail the helpdesk receives every day: Outlook and older Taiwanese mail
programs label CP950 text "big5" (CP950 is Big5 plus Microsoft's and the ETEN extensions: 碁, 銹,
裏...); mainland Chinese programs label GBK text "gb2312". Printed: what each parser makes of the
subject and the body, and whether it is what the sender wrote.
"""

from __future__ import annotations

import base64
import sys
from collections.abc import Callable
from dataclasses import dataclass

from intaked.parsing import parse_message


@dataclass(frozen=True)
class Case:
    name: str
    raw: bytes
    subject: str
    body: str


def _encoded_word_case(name: str, subject: str) -> Case:
    word = base64.b64encode(subject.encode("cp950")).decode("ascii")
    raw = (
        (
            f"From: lin@example.com\r\nTo: helpdesk@example.com\r\nSubject: =?big5?B?{word}?=\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        ).encode()
        + "三樓".encode()
        + b"\r\n"
    )
    return Case(name, raw, subject, "三樓")


def _gbk_body_case(name: str, body: str) -> Case:
    raw = (
        (
            b"From: wang@example.cn\r\nTo: helpdesk@example.com\r\nSubject: mail\r\n"
            b"Content-Type: text/plain; charset=gb2312\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        )
        + body.encode("gbk")
        + b"\r\n"
    )
    return Case(name, raw, "mail", body)


CASES = [
    _encoded_word_case("CP950 subject labelled big5 (ETEN characters only)", "碁銹裏"),
    _encoded_word_case("CP950 subject labelled big5 (mixed)", "印表機故障:碁"),
    _encoded_word_case("Big5 subject labelled big5 (control case)", "VPN 斷線"),
    _gbk_body_case("GBK body labelled gb2312 (one character outside GB2312)", "邮件系统故障镕"),
]


def intaked_reads(raw: bytes) -> tuple[str, str]:
    parsed = parse_message(raw)
    return parsed.subject, parsed.body_text.strip()


def mailparser_reader() -> Callable[[bytes], tuple[str, str]] | None:
    try:
        import mailparser  # type: ignore[import-not-found]
    except ImportError:
        return None

    def read(raw: bytes) -> tuple[str, str]:
        parsed = mailparser.parse_from_bytes(raw)
        return str(parsed.subject), str(parsed.body).strip()

    return read


def main() -> int:
    other = mailparser_reader()
    if other is None:
        print("mail-parser is not installed: pip install mail-parser (see this file's docstring)")
    for case in CASES:
        print(f"\n{case.name}\n  sent:        subject {case.subject!r}, body {case.body!r}")
        for label, reader in (("intaked", intaked_reads), ("mail-parser", other)):
            if reader is None:
                continue
            subject, body = reader(case.raw)
            verdict = "right" if (subject, body) == (case.subject, case.body) else "WRONG"
            print(f"  {label + ':':<12} subject {subject!r}, body {body!r}  {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
