"""``[paging] war_room``: the major-incident bridge every P1/P2 page names (the seed's war-room
conference call, issue 19).

A bridge is either a phone number, written as a ``tel:`` URI (RFC 3966) with an E.164 number and
optional DTMF after commas (``tel:+886223456789,,1234#``: dial, wait two pauses, send the
conference code), or an ``http(s)`` URL of an online meeting. Pure functions, used by the
configuration's check and by the page texts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TEL = re.compile(r"tel:(\+[1-9]\d{7,14})((?:,+[0-9*#]+)*),*")
_URL = re.compile(r"https?://[^\s/?#]+[^\s]*", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class WarRoom:
    """A parsed bridge: ``number`` and ``digits`` for a phone bridge, or ``url``."""

    number: str = ""
    digits: str = ""
    url: str = ""

    @property
    def send_digits(self) -> str:
        """The DTMF as Twilio's ``sendDigits`` wants it: each comma (a pause) becomes ``w``."""
        return self.digits.replace(",", "w")

    @property
    def dial_text(self) -> str:
        """What an SMS shows: the number with its pauses and code (handsets dial it as written),
        or the URL."""
        return self.url or self.number + self.digits


def parse_war_room(value: str) -> WarRoom | None:
    """The bridge ``value`` names (None for ""), else a ValueError saying what is accepted."""
    value = value.strip()
    if not value:
        return None
    tel = _TEL.fullmatch(value)
    if tel:
        return WarRoom(number=tel.group(1), digits=tel.group(2))
    if _URL.fullmatch(value):
        return WarRoom(url=value)
    raise ValueError(
        f"{value!r} is not a bridge: give a tel: URI with an E.164 number and optional DTMF after "
        'commas (e.g. "tel:+886223456789,,1234#") or an http(s) URL'
    )
