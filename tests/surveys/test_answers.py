"""Reading a score and a comment out of survey answers (pure)."""

from __future__ import annotations

import pytest

from intaked.surveys.answers import Answer, read_mail_answer, read_sms_answer, sms_codes


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("4", Answer(4, "")),
        ("4 分\n處理很快", Answer(4, "處理很快")),
        ("5. 很快，謝謝\n\n> 請問您對這次的服務滿意嗎？", Answer(5, "很快，謝謝")),
        ("３", Answer(3, "")),
        ("4/5 fine", Answer(4, "fine")),
        ("\n\n2\n", Answer(2, "")),
        ("5\n\n-----Original Message-----\nFrom: helpdesk", Answer(5, "")),
        ("1\nOn Mon, 7 Dec 2026, IT 服務台 wrote:\n> 5 非常滿意", Answer(1, "")),
        ("10", Answer(None, "10")),
        ("0 不好", Answer(None, "0 不好")),
        ("6", Answer(None, "6")),
        ("很好", Answer(None, "很好")),
        ("", Answer(None, "")),
        ("> 5 非常滿意", Answer(None, "")),
    ],
)
def test_mail_answers(body: str, expected: Answer) -> None:
    assert read_mail_answer(body) == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("5 KMPX", Answer(5, "")),
        ("kmpx 4 謝謝", Answer(4, "謝謝")),
        ("５ KMPX 很快，謝謝", Answer(5, "很快，謝謝")),
        ("KMPX 很好", Answer(None, "很好")),
        ("KMPX 7", Answer(None, "7")),
        ("KMPX 10", Answer(None, "10")),
    ],
)
def test_sms_answers(body: str, expected: Answer) -> None:
    assert read_sms_answer(body, "KMPX") == expected


def test_sms_codes_are_the_words_of_letters() -> None:
    assert sms_codes("5 kmpx 謝謝") == ["KMPX"]
    assert sms_codes("1 1234") == []
