"""What a page says: one SMS segment where possible, and TwiML a phone can act on."""

from __future__ import annotations

from xml.etree import ElementTree as ET

from intaked.paging.texts import (
    PageFacts,
    confirmation_sms,
    page_sms,
    sms_segments,
    spell_digits,
)
from intaked.twilio.twiml import VoiceSettings, page_twiml, say_twiml

FACTS = PageFacts(
    priority="P1",
    number="IT-202611-00042",
    subject="MES 產線停工，二廠三樓 SMT 線全部無法過站，請立即協助處理，影響出貨",
    requester="王小明 +886912345678",
    reply_code="42",
    unconfirmed=True,
)
VOICE = VoiceSettings(
    language="cmn-TW",
    voice="Google.cmn-TW-Standard-A",
    english_language="en-US",
    english_voice="Polly.Joanna",
    gather_seconds=8,
)


def test_segments_count_gsm7_and_ucs2_like_a_handset() -> None:
    assert sms_segments("a" * 160) == 1
    assert sms_segments("a" * 161) == 2  # 153 a part when split
    assert sms_segments("{" * 80) == 1  # extended characters take two units: 160 exactly
    assert sms_segments("中" * 70) == 1
    assert sms_segments("中" * 71) == 2
    assert sms_segments("中" * 134) == 2  # 67 a part
    assert sms_segments("中" * 135) == 3
    assert sms_segments("😀" * 35) == 1  # a surrogate pair is two UTF-16 units


def test_a_chinese_page_fits_one_segment_and_keeps_what_matters() -> None:
    text = page_sms(FACTS)
    assert sms_segments(text) == 1, text
    assert text.startswith("[P1 未確認] IT-202611-00042 MES 產線停工")
    assert text.endswith("回覆 1 42 確認")
    assert "王小明" in text


def test_a_short_page_is_not_shortened() -> None:
    facts = PageFacts("P2", "IT-202611-00007", "ERP 無法使用", "陳大文", "7", unconfirmed=False)
    assert page_sms(facts) == "[P2] IT-202611-00007 ERP 無法使用 / 陳大文 回覆 1 7 確認"


def test_english_speakers_get_an_english_page() -> None:
    facts = PageFacts("P1", "IT-202611-00007", "ERP down", "Mei Lin", "7", unconfirmed=True)
    assert (
        page_sms(facts, english=True)
        == "[P1 UNCONFIRMED] IT-202611-00007 ERP down / Mei Lin Reply 1 7 to ack"
    )


def test_confirmations_name_the_acknowledger() -> None:
    assert "你是事件指揮官" in confirmation_sms("IT-1", "P1", "chen", to_acknowledger=True)
    others = confirmation_sms("IT-1", "P1", "chen", to_acknowledger=False)
    assert "已由 chen 確認" in others and sms_segments(others) == 1


def test_ticket_numbers_are_read_digit_by_digit() -> None:
    assert spell_digits("IT-202611-00042") == "I T, 2 0 2 6 1 1, 0 0 0 4 2"


def test_page_twiml_gathers_one_key_then_repeats() -> None:
    xml = page_twiml(
        FACTS,
        VOICE,
        "https://h.example/twilio/voice/page/keypress?attempt=5",
        repeat_url="https://h.example/r?a=5&repeat=1",
    )
    root = ET.fromstring(xml.split("?>", 1)[1])
    gather = root.find("Gather")
    assert gather is not None
    assert gather.get("numDigits") == "1" and gather.get("action", "").endswith("keypress?attempt=5")
    says = gather.findall("Say")
    assert [s.get("language") for s in says] == ["cmn-TW", "en-US"]
    assert "I T, 2 0 2 6 1 1, 0 0 0 4 2" in (says[0].text or "")
    assert "確認請按 1，立即升級請按 9，重聽請按星號" in (says[0].text or "")
    assert "Press 1 to acknowledge, 9 to escalate now, star to repeat" in (says[1].text or "")
    redirect = root.find("Redirect")
    assert redirect is not None and redirect.text == "https://h.example/r?a=5&repeat=1"
    assert "&amp;" in xml  # escaped once in the XML, as TwiML requires


def test_say_twiml_hangs_up() -> None:
    root = ET.fromstring(say_twiml(VOICE, "再見", "Bye").split("?>", 1)[1])
    assert [child.tag for child in root] == ["Say", "Say", "Hangup"]
