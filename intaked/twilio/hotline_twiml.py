"""What a hotline caller hears: TwiML documents (``VoiceResponse``), Traditional Chinese first,
then English.

Pure functions of the settings and the call's facts. Every ``action`` and callback is an absolute
URL under ``webhooks.public_url``, so Twilio signs exactly what the listener checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twilio.twiml.voice_response import VoiceResponse

from intaked.config import Settings
from intaked.paging.texts import spell_digits
from intaked.ports.phone import (
    DIAL_DONE_PATH,
    MENU_PATH,
    RECORDED_PATH,
    RECORDING_PATH,
    SPEECH_PATH,
    TRANSCRIPTION_PATH,
)


@dataclass(frozen=True, slots=True)
class HotlineUrls:
    """The absolute URLs Twilio is given in our TwiML."""

    menu: str
    dial_done: str
    recorded: str
    recording: str
    transcription: str
    speech: str

    @classmethod
    def from_settings(cls, settings: Settings) -> HotlineUrls:
        base = settings.webhooks.public_url.rstrip("/")
        return cls(
            menu=base + MENU_PATH,
            dial_done=base + DIAL_DONE_PATH,
            recorded=base + RECORDED_PATH,
            recording=base + RECORDING_PATH,
            transcription=base + TRANSCRIPTION_PATH,
            speech=base + SPEECH_PATH,
        )


def _say(verb: Any, settings: Settings, zh: str, en: str) -> None:
    twilio = settings.twilio
    verb.say(zh, language=twilio.language_zh, voice=twilio.voice_zh)
    verb.say(en, language=twilio.language_en, voice=twilio.voice_en)


def _xml(response: VoiceResponse) -> str:
    return str(response.to_xml())


def greeting_twiml(settings: Settings, urls: HotlineUrls) -> str:
    """The greeting (spoken, or ``hotline.greeting_url`` played) inside a one-key ``<Gather>``;
    no key within ``hotline.menu_seconds``: on to the menu action without ``Digits`` (counts as 2)."""
    hotline = settings.hotline
    response = VoiceResponse()
    gather = response.gather(
        input="dtmf", num_digits=1, timeout=hotline.menu_seconds, action=urls.menu, method="POST"
    )
    if hotline.greeting_url:
        gather.play(hotline.greeting_url)
    else:
        _say(gather, settings, hotline.greeting_zh, hotline.greeting_en)
    response.redirect(urls.menu, method="POST")
    return _xml(response)


def refused_twiml(settings: Settings) -> str:
    """A call to a number that is not a hotline number: a polite word, then hang up."""
    response = VoiceResponse()
    _say(
        response,
        settings,
        "您好，此號碼不是 IT 服務台專線，請改撥 IT 服務台專線。謝謝。",
        "Sorry, this is not the IT service desk line. Please call the IT hotline. Thank you.",
    )
    response.hangup()
    return _xml(response)


def _record(response: VoiceResponse, settings: Settings, urls: HotlineUrls) -> None:
    """Ask for a one-sentence description first (speech recognition, when
    ``hotline.speech_language`` is set: its action continues with the recording), then the
    voicemail; a caller who says nothing falls through to the voicemail at once."""
    language = settings.hotline.speech_language
    if language:
        gather = response.gather(
            input="speech",
            language=language,
            speech_timeout="auto",
            timeout=5,
            action=urls.speech,
            method="POST",
        )
        _say(
            gather,
            settings,
            "請用一兩句話說明您的問題。",
            "Please describe the problem in a sentence or two.",
        )
    _record_only(response, settings, urls)


def _record_only(response: VoiceResponse, settings: Settings, urls: HotlineUrls) -> None:
    _say(
        response,
        settings,
        "請在嗶聲後留言，說明您的姓名、分機與問題，說完請按井字鍵。",
        "Please leave a message after the beep with your name, extension and the problem; "
        "press the pound key when done.",
    )
    response.record(
        max_length=settings.hotline.record_max_seconds,
        finish_on_key="#",
        play_beep=True,
        action=urls.recorded,
        method="POST",
        recording_status_callback=urls.recording,
        recording_status_callback_method="POST",
        recording_status_callback_event="completed absent failed",
        transcribe=True,
        transcribe_callback=urls.transcription,
    )
    # Reached only when the recording ends without one (silence, time-out with nothing recorded).
    response.hangup()


def after_menu_twiml(
    settings: Settings,
    urls: HotlineUrls,
    *,
    ticket_number: str,
    joined: bool,
    emergency: bool,
    paged: bool,
    dial_desk: bool,
) -> str:
    """The ticket number read digit by digit, then the desk (``<Dial>``) or the voicemail."""
    spelled = spell_digits(ticket_number)
    response = VoiceResponse()
    if joined:
        zh = f"您的來電已加入案件，案件編號 {spelled}。"
        en = f"Your call was added to ticket {spelled}."
    else:
        zh = f"已為您建立案件，案件編號 {spelled}。"
        en = f"Your ticket number is {spelled}."
    if emergency and paged:
        zh += "緊急應變小組已收到通知。"
        en += " The quick response team has been paged."
    _say(response, settings, zh, en)
    if dial_desk:
        _say(response, settings, "正在為您轉接服務台，請稍候。", "Connecting you to the service desk.")
        # no callerId: the desk sees the caller's own number
        dial = response.dial(timeout=settings.hotline.desk_dial_seconds, action=urls.dial_done, method="POST")
        dial.number(settings.hotline.desk_number)
        return _xml(response)
    _record(response, settings, urls)
    return _xml(response)


def after_speech_twiml(settings: Settings, urls: HotlineUrls) -> str:
    """After the spoken description: the voicemail, for anything more (name, extension)."""
    response = VoiceResponse()
    _say(response, settings, "謝謝，已記錄您的說明。", "Thank you, your description is noted.")
    _record_only(response, settings, urls)
    return _xml(response)


def voicemail_twiml(settings: Settings, urls: HotlineUrls) -> str:
    """The desk did not answer: straight to the voicemail."""
    response = VoiceResponse()
    _say(response, settings, "服務台目前無法接聽。", "The service desk cannot take your call right now.")
    _record(response, settings, urls)
    return _xml(response)


def goodbye_twiml(settings: Settings, *, left_message: bool) -> str:
    """After the voicemail (or the desk's conversation): thank the caller and hang up."""
    response = VoiceResponse()
    if left_message:
        _say(
            response,
            settings,
            "已收到您的留言，我們會盡快回電。謝謝，再見。",
            "We have your message and will call you back. Thank you, goodbye.",
        )
    else:
        _say(response, settings, "謝謝您的來電，再見。", "Thank you for calling, goodbye.")
    response.hangup()
    return _xml(response)
