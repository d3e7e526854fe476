"""What a page says: the SMS text (one segment where possible) and the words of a page call
(its TwiML is built in intaked/twilio/twiml.py).

Pure functions. An SMS is sent in GSM-7 (160 characters a segment) only when every character is
in the GSM basic set; anything else, Chinese included, goes as UCS-2 at 70 characters a segment
(67 when split), so the page text is built to fit one UCS-2 segment by shortening the subject
first and the requester second, never the ticket number or the reply code.
"""

from __future__ import annotations

from dataclasses import dataclass

from intaked.config.warroom import parse_war_room

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENDED = frozenset("^{}\\[~]|€\f")
UCS2_SEGMENT = 70
UCS2_MULTIPART_SEGMENT = 67
GSM7_SEGMENT = 160
GSM7_MULTIPART_SEGMENT = 153


def is_gsm7(text: str) -> bool:
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENDED for ch in text)


def sms_segments(text: str) -> int:
    """How many segments ``text`` takes (UCS-2 counts UTF-16 code units, as handsets do)."""
    if is_gsm7(text):
        units = sum(2 if ch in GSM7_EXTENDED else 1 for ch in text)
        single, multi = GSM7_SEGMENT, GSM7_MULTIPART_SEGMENT
    else:
        units = len(text.encode("utf-16-le")) // 2
        single, multi = UCS2_SEGMENT, UCS2_MULTIPART_SEGMENT
    if units <= single:
        return 1
    return -(-units // multi)


@dataclass(frozen=True, slots=True)
class PageFacts:
    """What a page tells the person paged."""

    priority: str
    number: str
    subject: str
    requester: str
    reply_code: str
    unconfirmed: bool
    war_room: str = ""  # ``[paging] war_room`` as frozen on the page ("" = none)


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)] + "…" if limit > 0 else ""


def page_sms(facts: PageFacts, *, english: bool = False) -> str:
    """The page SMS: priority (and 未確認/unconfirmed), ticket number, subject, requester, reply
        code, and the war-room bridge when one is configured (never shortened: the page may then take
    two segments); in English for people whose language is English (the subject stays as written)."""
    bridge = war_room_text(facts.war_room, english=english)
    if english:
        head = f"[{facts.priority}{' UNCONFIRMED' if facts.unconfirmed else ''}] {facts.number}"
        tail = f" Reply 1 {facts.reply_code} to ack{bridge}"
    else:
        head = f"[{facts.priority}{' 未確認' if facts.unconfirmed else ''}] {facts.number}"
        tail = f" 回覆 1 {facts.reply_code} 確認{bridge}"
    subject, requester = " ".join(facts.subject.split()), " ".join(facts.requester.split())
    for subject_limit, requester_limit in (
        (len(subject), len(requester)),
        (40, 16),
        (24, 12),
        (14, 8),
        (8, 0),
    ):
        body = f"{head} {_shorten(subject, subject_limit)}"
        if requester_limit and requester:
            body += f" / {_shorten(requester, requester_limit)}"
        text = body + tail
        if sms_segments(text) == 1:
            return text
    return text


def convene_sms(facts: PageFacts, team: str, *, english: bool = False) -> str:
    """The SMS convening ``team`` to an incident: its priority, number, subject, the war room and
    the reply that says they joined (the subject is shortened to fit one segment where possible)."""
    bridge = war_room_text(facts.war_room, english=english)
    if english:
        head, tail = (
            f"[{facts.priority}] Convened ({team}): {facts.number}",
            f" Reply 1 {facts.reply_code} to join",
        )
    else:
        head, tail = f"[{facts.priority}] 召集 {team}: {facts.number}", f" 回覆 1 {facts.reply_code} 加入"
    subject = " ".join(facts.subject.split())
    for limit in (len(subject), 24, 12):  # the summary keeps a subject even over one segment
        text = f"{head} {_shorten(subject, limit)}".rstrip() + tail + bridge
        if sms_segments(text) == 1:
            return text
    return text


def war_room_text(war_room: str, *, english: bool = False) -> str:
    """`` 會議 <bridge>`` / `` Bridge <bridge>``: the part of an SMS naming the war room ("" for none)."""
    bridge = parse_war_room(war_room)
    if bridge is None:
        return ""
    return f" Bridge {bridge.dial_text}" if english else f" 會議 {bridge.dial_text}"


def confirmation_sms(number: str, priority: str, by: str, *, to_acknowledger: bool) -> str:
    """The SMS telling people a page was acknowledged (and by whom)."""
    if to_acknowledger:
        return f"{number} {priority} 已由你確認，你是事件指揮官。Acked: you are incident commander."
    return f"{number} {priority} 已由 {by} 確認，不需再回覆。Acked by {by}."


def spell_digits(text: str) -> str:
    """A ticket number read out one character at a time: ``IT-202611-00042`` → ``I T, 2 0 2 6 1 1, ...``."""
    groups = [" ".join(part) for part in text.replace("_", "-").split("-") if part]
    return ", ".join(groups)
