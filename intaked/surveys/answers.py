"""Reading an answer to a survey (pure): the score 1-5 and the comment that may follow.

A mail answer's score is the first thing the requester wrote: the first line of the body that
is not empty, before the quoted survey (lines starting with ``>``, or the "On ... wrote:" /
"-----Original Message-----" / "寄件者:" block mail programs add). It counts when that line
starts with one digit 1 to 5 that no other digit follows ("4", "4 分", "5. 很快", "３",
"4/5"); whatever follows on the line and below is the comment. "10", "0", "很好" have no score.
An SMS answer names the survey's code and one digit 1-5 anywhere ("5 KMPX", "KMPX 4 謝謝").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

COMMENT_LIMIT = 2000
_QUOTE_START = re.compile(
    r"^(?:>|-{2,}\s*(?:original message|原始郵件)|_{5,}|(?:on|在)\s.+(?:wrote|寫道)\s*[:：]?$"
    r"|(?:from|寄件者|發件人)\s*[:：])",
    re.IGNORECASE,
)
_SCORE = re.compile(r"^([1-5])(?![0-9])\s*(?:分|points?|/\s*5)?[\s.,:;、。，：!！－-]*(.*)$", re.IGNORECASE)
#: Full-width digits (an IME in full-width mode) read as digits.
_DIGITS = str.maketrans("０１２３４５６７８９", "0123456789")
_SMS_WORDS = re.compile(r"[A-Za-z]+")
_EDGES = " \t.,:;-、。，：!！分"


@dataclass(frozen=True, slots=True)
class Answer:
    """What an answer says: ``score`` 1-5 (None: no score) and the ``comment`` (may be empty)."""

    score: int | None
    comment: str


def _unquoted_lines(text: str) -> list[str]:
    lines: list[str] = []
    for line in text.translate(_DIGITS).splitlines():
        stripped = line.strip()
        if _QUOTE_START.match(stripped):
            break
        lines.append(stripped)
    while lines and not lines[-1]:
        lines.pop()
    while lines and not lines[0]:
        lines.pop(0)
    return lines


def read_mail_answer(text: str) -> Answer:
    """The score and comment of a mail answer's body."""
    lines = _unquoted_lines(text)
    if not lines:
        return Answer(None, "")
    match = _SCORE.match(lines[0])
    if match is None:
        return Answer(None, "\n".join(lines)[:COMMENT_LIMIT])
    comment = "\n".join([match[2].strip(), *lines[1:]]).strip()
    return Answer(int(match[1]), comment[:COMMENT_LIMIT])


def sms_codes(body: str) -> list[str]:
    """The words of an SMS that could be a survey code (letters only, upper case)."""
    return [word.upper() for word in _SMS_WORDS.findall(body.translate(_DIGITS))]


def read_sms_answer(body: str, code: str) -> Answer:
    """The score and comment of an SMS naming survey ``code``: the first number, if it is one
    digit 1-5, is the score; the rest of the text, without the code, is the comment."""
    text = body.translate(_DIGITS)
    text = re.sub(rf"(?<![A-Za-z]){re.escape(code)}(?![A-Za-z])", " ", text, count=1, flags=re.IGNORECASE)
    number = re.search(r"(?<![0-9])[0-9]+(?![0-9])", text)
    score: int | None = None
    if number is not None and number[0] in ("1", "2", "3", "4", "5"):
        score = int(number[0])
        text = f"{text[: number.start()]} {text[number.end() :]}"
    comment = re.sub(r"\s+", " ", text).strip(_EDGES)
    return Answer(score, comment[:COMMENT_LIMIT])
