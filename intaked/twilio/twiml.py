"""TwiML of page calls and SMS answers, built with twilio-python's ``VoiceResponse`` and
``MessagingResponse``: the summary in Chinese then English, the keys to press, short answers.

Pure functions. Every document starts with the XML declaration; URLs are escaped once, as TwiML
requires (``&amp;``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twilio.twiml.messaging_response import MessagingResponse
from twilio.twiml.voice_response import VoiceResponse

from intaked.config.warroom import WarRoom, parse_war_room
from intaked.paging.texts import PageFacts, spell_digits

#: The key of a page call that acknowledges and joins the war-room bridge.
JOIN_BRIDGE_KEY = "2"


@dataclass(frozen=True, slots=True)
class VoiceSettings:
    """Voices and languages of a page call."""

    language: str
    voice: str
    english_language: str
    english_voice: str
    gather_seconds: int


def say_both(verb: Any, voice: VoiceSettings, zh: str, en: str) -> None:
    """``<Say>`` ``zh`` in the Chinese voice, then ``en`` in the English one, inside ``verb``."""
    verb.say(zh, language=voice.language, voice=voice.voice)
    verb.say(en, language=voice.english_language, voice=voice.english_voice)


def page_twiml(facts: PageFacts, voice: VoiceSettings, action_url: str, *, repeat_url: str) -> str:
    """TwiML for a page call: the summary in Chinese then English, the ticket number digit by
    digit, then 1 to acknowledge, 2 to acknowledge and join the war-room bridge (a phone bridge;
    a meeting URL is said to be in the SMS), 9 to escalate now, * to repeat; no key: say it once
    more."""
    spelled = spell_digits(facts.number)
    state_zh = "未確認的" if facts.unconfirmed else ""
    state_en = "unconfirmed " if facts.unconfirmed else ""
    bridge_zh, bridge_en = _bridge_menu(parse_war_room(facts.war_room), acknowledges=True)
    zh = (
        f"資訊緊急事件，{state_zh}優先等級 {' '.join(facts.priority)}。"
        f"工單號碼 {spelled}。{facts.subject}。報案人 {facts.requester}。"
        f"確認請按 1，{bridge_zh}立即升級請按 9，重聽請按星號。"
    )
    en = (
        f"IT emergency, {state_en}priority {' '.join(facts.priority)}. Ticket {spelled}. "
        f"Press 1 to acknowledge, {bridge_en}9 to escalate now, star to repeat."
    )
    return _menu(voice, zh, en, action_url, repeat_url)


def convene_twiml(
    facts: PageFacts, team: str, voice: VoiceSettings, action_url: str, *, repeat_url: str
) -> str:
    """TwiML for a convene call: the incident's summary, then 1 to join (acknowledge), 2 to join
    and dial the war-room bridge, * to repeat."""
    spelled = spell_digits(facts.number)
    bridge_zh, bridge_en = _bridge_menu(parse_war_room(facts.war_room), acknowledges=False)
    zh = (
        f"重大事件召集 {team} 團隊，優先等級 {' '.join(facts.priority)}。工單號碼 {spelled}。"
        f"{facts.subject}。加入處理請按 1，{bridge_zh}重聽請按星號。"
    )
    en = (
        f"Major incident: the {team} team is convened, priority {' '.join(facts.priority)}. "
        f"Ticket {spelled}. Press 1 to join, {bridge_en}star to repeat."
    )
    return _menu(voice, zh, en, action_url, repeat_url)


def _menu(voice: VoiceSettings, zh: str, en: str, action_url: str, repeat_url: str) -> str:
    """A call's menu: ``zh`` then ``en`` said while one key is awaited (posted to
    ``action_url``); no key: ``repeat_url`` says it again."""
    response = VoiceResponse()
    gather = response.gather(
        input="dtmf",
        num_digits=1,
        timeout=voice.gather_seconds,
        action=action_url,
        method="POST",
        finish_on_key="",
    )
    say_both(gather, voice, zh, en)
    response.redirect(repeat_url, method="POST")
    return str(response.to_xml())


def _bridge_menu(bridge: WarRoom | None, *, acknowledges: bool) -> tuple[str, str]:
    """The war-room part of a call's menu, in Chinese and English ("" without a bridge); on a
    page call pressing 2 ``acknowledges`` the page too, on a convene call it only joins."""
    if bridge is None:
        return "", ""
    if bridge.url:
        return "作戰會議室連結已用簡訊傳送，", "the war room link was sent by SMS, "
    if acknowledges:
        return "確認並加入作戰會議請按 2，", "2 to acknowledge and join the bridge, "
    return "加入作戰會議請按 2，", "2 to join the bridge, "


def dial_bridge_twiml(voice: VoiceSettings, zh: str, en: str, bridge: WarRoom) -> str:
    """Say ``zh`` and ``en``, then ``<Dial>`` the war-room bridge, sending its conference code
    (``<Number sendDigits>``) once it answers."""
    response = VoiceResponse()
    say_both(response, voice, zh, en)
    dial = response.dial()
    if bridge.send_digits:
        dial.number(bridge.number, send_digits=bridge.send_digits)
    else:
        dial.number(bridge.number)
    return str(response.to_xml())


def say_twiml(voice: VoiceSettings, zh: str, en: str, *, then_redirect: str | None = None) -> str:
    """A short spoken answer (after a keypress), optionally followed by a redirect."""
    response = VoiceResponse()
    say_both(response, voice, zh, en)
    if then_redirect:
        response.redirect(then_redirect, method="POST")
    else:
        response.hangup()
    return str(response.to_xml())


def redirect_twiml(url: str) -> str:
    response = VoiceResponse()
    response.redirect(url, method="POST")
    return str(response.to_xml())


def empty_twiml() -> str:
    return str(VoiceResponse().to_xml())


def sms_twiml(text: str | None) -> str:
    """The answer to an incoming SMS: ``text`` as a reply, or nothing."""
    response = MessagingResponse()
    if text:
        response.message(text)
    return str(response.to_xml())
