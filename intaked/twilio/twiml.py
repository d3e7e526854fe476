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

from intaked.paging.texts import PageFacts, spell_digits


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
    digit, then 1 to acknowledge, 9 to escalate now, * to repeat; no key: say it once more."""
    spelled = spell_digits(facts.number)
    state_zh = "未確認的" if facts.unconfirmed else ""
    state_en = "unconfirmed " if facts.unconfirmed else ""
    zh = (
        f"資訊緊急事件，{state_zh}優先等級 {' '.join(facts.priority)}。"
        f"工單號碼 {spelled}。{facts.subject}。報案人 {facts.requester}。"
        "確認請按 1，立即升級請按 9，重聽請按星號。"
    )
    en = (
        f"IT emergency, {state_en}priority {' '.join(facts.priority)}. Ticket {spelled}. "
        "Press 1 to acknowledge, 9 to escalate now, star to repeat."
    )
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
