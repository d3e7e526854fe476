"""Security incident levels: 1-4 as 資通安全事件通報及應變辦法 numbers them (level 4 the most
severe), and the seed's older A-D letters (A the most severe) mapped onto them."""

from __future__ import annotations

#: The seed's letters (國家資通安全會報's A-D, A the most severe) as the regulation's levels.
LETTERS = {"A": 4, "B": 3, "C": 2, "D": 1}
#: What each level means, in the form's words (seed 004, 附件三).
LEVEL_NAMES = {
    4: "第4級 (A): 影響公共安全、社會秩序、人民生命財產",
    3: "第3級 (B): 系統停頓, 業務無法運作",
    2: "第2級 (C): 系統效率降低, 業務中斷",
    1: "第1級 (D): 業務短暫停頓, 可立即修復",
}


def parse_level(text: str) -> int:
    """The level 1-4 of ``text`` ("1".."4" or "A".."D", any case); a ValueError otherwise."""
    value = text.strip().upper()
    if value in LETTERS:
        return LETTERS[value]
    if value in ("1", "2", "3", "4"):
        return int(value)
    raise ValueError(f"{text!r} is not a security level: 1-4 (4 the most severe) or A-D (A = 4)")


def letter_of(level: int) -> str:
    """The seed's letter of ``level``."""
    return next(letter for letter, number in LETTERS.items() if number == level)
