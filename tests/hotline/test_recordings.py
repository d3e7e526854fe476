"""Voicemail on the real webhook listener: recording callbacks signed exactly as Twilio signs them,
the media downloaded through the outbox from the fake phone network (and from ``prism mock``),
transcripts, missed calls, foreign URLs, replays, forgeries and retries."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from intaked.config import Settings
from intaked.hotline.fetcher import VoicemailFetcher, fetch_due
from intaked.hotline.progress import call_status, speech_heard
from intaked.hotline.recordings import (
    ForeignRecordingUrl,
    media_url_for,
    recording_media_url,
)
from intaked.paging.outcomes import attempt_updated
from intaked.ports.phone import RECORDING_PATH, TRANSCRIPTION_PATH, PermanentFailure
from intaked.store.models import (
    attachment_table,
    blob_table,
    message_table,
    outbox_table,
    ticket_event_table,
    webhook_receipt_table,
)
from intaked.twilio.client import TwilioClient
from intaked.twilio.routes import VOICEMAIL, build_routes
from tests.hotline.calls_support import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    PUBLIC_URL,
    call_row,
    event_kinds,
    make_call,
    new_sid,
    ticket_of,
    twilio_settings,
)
from tests.support.phone import FakePhoneNetwork, signed_post
from tests.support.prism import Prism
from tests.support.webhookd import RunningWebhooks, running_webhooks

AUDIO = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(256)) * 8


@pytest.fixture
def media_url(phone: FakePhoneNetwork) -> str:
    """The fake network itself, not ``prism proxy`` in front of it: the proxy re-encodes a binary
    body as UTF-8 text (every byte above 0x7f becomes U+FFFD), and the media paths are only in the
    overlay anyway; ``prism mock`` checks our media request on its own below."""
    return phone.base_url


@pytest.fixture
def settings(media_url: str) -> Settings:
    return twilio_settings(media_url)


@pytest.fixture
def hooks(settings: Settings, engine: Engine) -> Iterator[RunningWebhooks]:
    routes = build_routes(settings, attempt_updated, [VOICEMAIL])
    with running_webhooks(settings, engine, routes) as running:
        yield running


def recording_url(settings: Settings, sid: str, account: str = ACCOUNT_SID) -> str:
    return f"{settings.twilio.api_base_url}/2010-04-01/Accounts/{account}/Recordings/{sid}"


def recording_params(
    settings: Settings,
    call_sid: str,
    recording_sid: str,
    *,
    status: str = "completed",
    duration: str = "17",
    error_code: str = "0",
    url: str | None = None,
) -> list[tuple[str, str]]:
    """A recordingStatusCallback as Twilio sends it."""
    return [
        ("AccountSid", ACCOUNT_SID),
        ("CallSid", call_sid),
        ("RecordingSid", recording_sid),
        ("RecordingUrl", recording_url(settings, recording_sid) if url is None else url),
        ("RecordingStatus", status),
        ("RecordingDuration", duration),
        ("RecordingChannels", "1"),
        ("RecordingSource", "RecordVerb"),
        ("RecordingStartTime", "Sun, 22 Nov 2026 02:31:00 +0000"),
        ("ErrorCode", error_code),
    ]


def transcription_params(
    settings: Settings,
    call_sid: str,
    recording_sid: str,
    *,
    status: str = "completed",
    text: str = "",
    sid: str = "",
) -> list[tuple[str, str]]:
    """A transcribeCallback as Twilio sends it."""
    transcription_sid = sid or new_sid("TR")
    return [
        ("TranscriptionSid", transcription_sid),
        ("TranscriptionText", text),
        ("TranscriptionStatus", status),
        ("TranscriptionUrl", f"{recording_url(settings, recording_sid)}/Transcriptions/{transcription_sid}"),
        ("TranscriptionType", "fast"),
        ("RecordingSid", recording_sid),
        ("RecordingUrl", recording_url(settings, recording_sid)),
        ("CallSid", call_sid),
        ("AccountSid", ACCOUNT_SID),
        ("From", "+886912345678"),
        ("To", "+886212345678"),
        ("CallStatus", "completed"),
        ("ApiVersion", "2010-04-01"),
        ("Direction", "inbound"),
        ("ForwardedFrom", ""),
        ("CallerName", ""),
        ("url", PUBLIC_URL + TRANSCRIPTION_PATH),
    ]


def post(hooks: RunningWebhooks, path: str, params: list[tuple[str, str]], token: str = AUTH_TOKEN) -> int:
    status, _ = signed_post(hooks.base_url, hooks.public_url, path, params, token)
    return status


def outbox_rows(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(outbox_table).order_by(outbox_table.c.id)).mappings())


def attachments(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(attachment_table)).mappings())


def blob_bytes(engine: Engine, digest: str) -> bytes:
    with engine.connect() as conn:
        blob = conn.execute(select(blob_table).where(blob_table.c.sha256 == digest)).mappings().one()
    data = bytes(blob["data"])
    return zlib.decompress(data) if blob["encoding"] == "zlib" else data


def event_detail(engine: Engine, kind: str) -> dict[str, Any]:
    with engine.connect() as conn:
        detail = conn.execute(
            select(ticket_event_table.c.detail).where(ticket_event_table.c.kind == kind)
        ).scalar_one()
    return dict(json.loads(detail))


# -- the URL check ----------------------------------------------------------------------------------

BASE = "https://api.twilio.com"
RE_SID = "RE" + "ab" * 16
GOOD = f"{BASE}/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/{RE_SID}"


@pytest.mark.parametrize(
    "url", [GOOD, GOOD + ".wav", GOOD + ".mp3", GOOD.replace("api.twilio.com", "API.twilio.com:443")]
)
def test_a_recording_url_of_our_account_on_the_api_base_is_rebuilt_from_its_sid(url: str) -> None:
    settings = twilio_settings(BASE)
    assert recording_media_url(settings, url, recording_sid=RE_SID) == GOOD + ".wav"
    assert media_url_for(twilio_settings(BASE, twilio={"recording_format": "mp3"}), RE_SID) == GOOD + ".mp3"


@pytest.mark.parametrize(
    "url",
    [
        GOOD.replace("api.twilio.com", "evil.example.com"),  # another host
        GOOD.replace("api.twilio.com", "api.twilio.com.evil.example.com"),
        GOOD.replace("api.twilio.com", "api.twilio.com:8443"),  # another port
        GOOD.replace("https://", "http://"),  # plain http while the base is https
        GOOD.replace("https://", "https://user:pass@"),  # user information
        GOOD.replace("https://api.twilio.com", "https://api.twilio.com@evil.example.com"),
        GOOD.replace(ACCOUNT_SID, "AC" + "9" * 32),  # another account
        f"{BASE}/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/../../../../evil/{RE_SID}",  # path tricks
        f"{BASE}/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/%2e%2e/{RE_SID}",
        f"{BASE}//2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/{RE_SID}",
        f"{BASE}/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/{RE_SID}/../{'RE' + 'cd' * 16}",
        GOOD + "?redirect=https://evil.example.com",
        GOOD + "#x",
        GOOD.replace(RE_SID, "RE" + "cd" * 16),  # not the callback's RecordingSid
        "file:///etc/passwd",
        "",
    ],
)
def test_a_foreign_recording_url_is_refused(url: str) -> None:
    with pytest.raises(ForeignRecordingUrl):
        recording_media_url(twilio_settings(BASE), url, recording_sid=RE_SID)


# -- voicemail through the webhooks and the outbox --------------------------------------------------


def test_voicemail_with_transcript_is_attached_to_the_ticket(
    hooks: RunningWebhooks, engine: Engine, settings: Settings, phone: FakePhoneNetwork
) -> None:
    call_sid, recording_sid = make_call(engine), new_sid("RE")
    phone.media.audio[recording_sid] = AUDIO
    assert (
        post(
            hooks,
            RECORDING_PATH,
            recording_params(settings, call_sid, recording_sid, status="in-progress", duration="0"),
        )
        == 200
    )
    assert post(hooks, RECORDING_PATH, recording_params(settings, call_sid, recording_sid)) == 200
    (row,) = outbox_rows(engine)
    assert (row["kind"], row["purpose"], row["state"]) == ("recording", "voicemail", "pending")
    assert json.loads(row["payload"]) == {"call_sid": call_sid, "recording_sid": recording_sid}
    assert phone.media.requests == []  # nothing downloaded inside the webhook

    assert fetch_due(engine, settings, TwilioClient(settings.twilio)) == 1
    (path, authorised, accept) = phone.media.requests[0]
    assert path.endswith(f"/Accounts/{ACCOUNT_SID}/Recordings/{recording_sid}.wav")
    assert authorised and accept == "audio/*"
    (attachment,) = attachments(engine)
    assert attachment["filename"] == f"voicemail-{call_sid}.wav"
    assert attachment["content_type"] == "audio/x-wav"
    assert attachment["size"] == len(AUDIO)
    assert attachment["sha256"] == hashlib.sha256(AUDIO).hexdigest()
    assert blob_bytes(engine, attachment["sha256"]) == AUDIO
    call = call_row(engine, call_sid)
    assert attachment["message_id"] == call["message_id"]
    assert (call["outcome"], call["recording_sid"], call["recording_seconds"]) == (
        "voicemail",
        recording_sid,
        17,
    )
    assert call["attachment_id"] == attachment["id"] and call["recording_error"] is None
    assert ticket_of(engine, call_sid)["callback_requested"] is True
    assert event_detail(engine, "voicemail_added") | {"call_sid": call_sid} == {
        "call_sid": call_sid,
        "recording_sid": recording_sid,
        "seconds": 17,
        "attachment_id": attachment["id"],
        "size": len(AUDIO),
        "sha256": attachment["sha256"],
    }
    assert outbox_rows(engine)[0]["state"] == "sent"
    assert "voicemail_sent" not in event_kinds(engine)

    text = "三樓印表機卡紙，請回電 0912-345-678。"
    params = transcription_params(settings, call_sid, recording_sid, text=text)
    assert post(hooks, TRANSCRIPTION_PATH, params) == 200
    assert post(hooks, TRANSCRIPTION_PATH, params) == 200  # a replay appends nothing
    call = call_row(engine, call_sid)
    assert (call["transcript"], call["transcript_source"], call["transcript_confidence"]) == (
        text,
        "twilio",
        None,
    )
    with engine.connect() as conn:
        body = conn.execute(
            select(message_table.c.body_text).where(message_table.c.id == call["message_id"])
        ).scalar_one()
    assert body.startswith("Menu choice 2") and body.count(text) == 1
    assert event_kinds(engine).count("transcript_added") == 1


def test_a_voicemail_transcript_beside_a_spoken_description_survives_the_next_status_callback(
    hooks: RunningWebhooks, engine: Engine, settings: Settings
) -> None:
    """The caller described the problem in Chinese (speech recognition); Twilio then transcribed the
    voicemail in English. Both stay in the call's message, also once the call's final status
    rewrites it, and the call keeps the spoken description as its transcript."""
    spoken = "三樓印表機卡紙"
    call_sid, recording_sid = make_call(engine), new_sid("RE")
    with engine.begin() as conn:  # the message as the daemon writes it: from the call
        assert speech_heard(conn, settings, call_sid, spoken + "，請回電", 0.9, dt.datetime.now(dt.UTC))
    english = "The printer on the third floor is jammed, please call back."
    params = transcription_params(settings, call_sid, recording_sid, text=english)
    assert post(hooks, TRANSCRIPTION_PATH, params) == 200
    with engine.begin() as conn:
        call_status(conn, settings, call_sid, "completed", 42, False, dt.datetime.now(dt.UTC))
    call = call_row(engine, call_sid)
    assert (call["transcript"], call["transcript_source"]) == (spoken + "，請回電", "speech")
    assert call["voicemail_transcript"] == english
    with engine.connect() as conn:
        body = conn.execute(
            select(message_table.c.body_text).where(message_table.c.id == call["message_id"])
        ).scalar_one()
    assert f"Caller said: {spoken}，請回電" in body
    assert body.rstrip().endswith(f"Voicemail transcript (Twilio):\n{english}") and body.count(english) == 1


def test_voicemail_without_transcript_creates_the_calls_message_when_it_has_none(
    hooks: RunningWebhooks, engine: Engine, settings: Settings, phone: FakePhoneNetwork
) -> None:
    call_sid, recording_sid = make_call(engine, with_message=False), new_sid("RE")
    phone.media.audio[recording_sid] = AUDIO
    assert (
        post(hooks, RECORDING_PATH, recording_params(settings, call_sid, recording_sid, duration="5")) == 200
    )
    assert fetch_due(engine, settings, TwilioClient(settings.twilio)) == 1
    call = call_row(engine, call_sid)
    assert call["outcome"] == "voicemail" and call["transcript"] is None and call["recording_seconds"] == 5
    with engine.connect() as conn:
        message = (
            conn.execute(select(message_table).where(message_table.c.id == call["message_id"]))
            .mappings()
            .one()
        )
    assert (message["direction"], message["channel"], message["header_message_id"]) == (
        "in",
        "phone",
        f"call:{call_sid}",
    )
    assert attachments(engine)[0]["message_id"] == message["id"]


def test_a_failed_transcription_is_an_event_and_keeps_the_voicemail(
    hooks: RunningWebhooks, engine: Engine, settings: Settings, phone: FakePhoneNetwork
) -> None:
    call_sid, recording_sid = make_call(engine), new_sid("RE")
    phone.media.audio[recording_sid] = AUDIO
    assert post(hooks, RECORDING_PATH, recording_params(settings, call_sid, recording_sid)) == 200
    assert fetch_due(engine, settings, TwilioClient(settings.twilio)) == 1
    params = transcription_params(settings, call_sid, recording_sid, status="failed")
    assert post(hooks, TRANSCRIPTION_PATH, params) == 200
    assert post(hooks, TRANSCRIPTION_PATH, params) == 200
    call = call_row(engine, call_sid)
    assert call["outcome"] == "voicemail" and call["transcript"] is None
    assert event_kinds(engine).count("transcription_failed") == 1


@pytest.mark.parametrize(
    ("status", "duration", "error_code", "stored"),
    [
        ("absent", "0", "16102", "16102"),  # silent
        ("absent", "1", "16101", "16101"),  # too short
        ("completed", "3", "16102", "16102"),
        ("absent", "0", "0", "absent"),
        ("failed", "0", "0", "failed"),
        ("completed", "0", "0", "empty"),
    ],
)
def test_no_recording_leaves_a_missed_call_to_call_back(
    hooks: RunningWebhooks,
    engine: Engine,
    settings: Settings,
    phone: FakePhoneNetwork,
    status: str,
    duration: str,
    error_code: str,
    stored: str,
) -> None:
    call_sid, recording_sid = make_call(engine), new_sid("RE")
    params = recording_params(
        settings, call_sid, recording_sid, status=status, duration=duration, error_code=error_code
    )
    assert post(hooks, RECORDING_PATH, params) == 200
    assert post(hooks, RECORDING_PATH, params) == 200  # replayed: one event
    call = call_row(engine, call_sid)
    assert (call["outcome"], call["recording_error"], call["attachment_id"]) == ("missed", stored, None)
    assert ticket_of(engine, call_sid)["callback_requested"] is True
    assert event_kinds(engine) == ["missed_call"]
    assert event_detail(engine, "missed_call")["reason"] == stored
    assert outbox_rows(engine) == [] and fetch_due(engine, settings, TwilioClient(settings.twilio)) == 0
    assert phone.media.requests == []


def test_a_silent_recording_of_a_call_the_desk_answered_is_no_missed_call(
    hooks: RunningWebhooks, engine: Engine, settings: Settings
) -> None:
    call_sid = make_call(engine, outcome="answered_by_desk")
    params = recording_params(
        settings, call_sid, new_sid("RE"), status="absent", duration="0", error_code="16102"
    )
    assert post(hooks, RECORDING_PATH, params) == 200
    call = call_row(engine, call_sid)
    assert (call["outcome"], call["recording_error"]) == ("answered_by_desk", "16102")
    assert ticket_of(engine, call_sid)["callback_requested"] is False
    assert event_kinds(engine) == []


@pytest.mark.parametrize(
    "make_url",
    [
        lambda s, sid: recording_url(s, sid).replace("127.0.0.1", "evil.example.com"),
        lambda s, sid: recording_url(s, sid, account="AC" + "9" * 32),
        lambda s, sid: recording_url(s, sid).replace("/Recordings/", "/Recordings/../../../Recordings/"),
        lambda s, sid: recording_url(s, sid).replace("http://", "http://AC:token@"),
    ],
    ids=["other-host", "other-account", "path-trick", "userinfo"],
)
def test_a_recording_url_elsewhere_is_refused_and_nothing_is_downloaded(
    hooks: RunningWebhooks, engine: Engine, settings: Settings, phone: FakePhoneNetwork, make_url: Any
) -> None:
    call_sid, recording_sid = make_call(engine), new_sid("RE")
    phone.media.audio[recording_sid] = AUDIO
    params = recording_params(settings, call_sid, recording_sid, url=make_url(settings, recording_sid))
    assert post(hooks, RECORDING_PATH, params) == 200
    call = call_row(engine, call_sid)
    assert (call["recording_error"], call["attachment_id"], call["recording_sid"]) == (
        "foreign_url",
        None,
        recording_sid,
    )
    assert ticket_of(engine, call_sid)["callback_requested"] is True
    assert event_kinds(engine) == ["recording_refused"]
    assert outbox_rows(engine) == [] and fetch_due(engine, settings, TwilioClient(settings.twilio)) == 0
    assert phone.media.requests == [] and phone.requests == []


def test_a_replayed_recording_callback_attaches_one_recording(
    hooks: RunningWebhooks, engine: Engine, settings: Settings, phone: FakePhoneNetwork
) -> None:
    call_sid, recording_sid = make_call(engine), new_sid("RE")
    phone.media.audio[recording_sid] = AUDIO
    params = recording_params(settings, call_sid, recording_sid)
    assert post(hooks, RECORDING_PATH, params) == 200
    assert post(hooks, RECORDING_PATH, params) == 200
    assert len(outbox_rows(engine)) == 1
    assert fetch_due(engine, settings, TwilioClient(settings.twilio)) == 1
    assert post(hooks, RECORDING_PATH, params) == 200  # after the download, too
    assert fetch_due(engine, settings, TwilioClient(settings.twilio)) == 0
    assert len(attachments(engine)) == 1 and len(phone.media.requests) == 1
    assert event_kinds(engine) == ["voicemail_added"]


def test_a_forged_recording_callback_gets_403_and_changes_nothing(
    hooks: RunningWebhooks, engine: Engine, settings: Settings, phone: FakePhoneNetwork
) -> None:
    call_sid, recording_sid = make_call(engine), new_sid("RE")
    before = call_row(engine, call_sid)
    assert (
        post(
            hooks, RECORDING_PATH, recording_params(settings, call_sid, recording_sid), token="not-the-token"
        )
        == 403
    )
    params = transcription_params(settings, call_sid, recording_sid, text="forged")
    assert post(hooks, TRANSCRIPTION_PATH, params, token="not-the-token") == 403
    assert call_row(engine, call_sid) == before
    assert outbox_rows(engine) == [] and event_kinds(engine) == []
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(webhook_receipt_table)).scalar_one() == 0


def test_a_callback_for_an_unknown_call_is_kept_and_answered_200(
    hooks: RunningWebhooks, engine: Engine, settings: Settings
) -> None:
    call_sid, recording_sid = new_sid("CA"), new_sid("RE")
    assert post(hooks, RECORDING_PATH, recording_params(settings, call_sid, recording_sid)) == 200
    assert (
        post(hooks, TRANSCRIPTION_PATH, transcription_params(settings, call_sid, recording_sid, text="hi"))
        == 200
    )
    with engine.connect() as conn:
        endpoints = sorted(conn.execute(select(webhook_receipt_table.c.endpoint)).scalars())
    assert endpoints == ["recording_status_unmatched", "transcription_unmatched"]
    assert outbox_rows(engine) == []


def test_a_malformed_callback_gets_400(hooks: RunningWebhooks, settings: Settings) -> None:
    params = recording_params(settings, "CA123", "RE456")
    assert post(hooks, RECORDING_PATH, params) == 400


def wait_due(engine: Engine, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            due = conn.execute(select(outbox_table.c.next_attempt_at)).scalar_one()
        if due is None or due <= dt.datetime.now(dt.UTC):
            return
        time.sleep(0.05)


def test_a_download_failing_with_503_is_retried_through_the_outbox(
    hooks: RunningWebhooks, engine: Engine, settings: Settings, phone: FakePhoneNetwork
) -> None:
    call_sid, recording_sid = make_call(engine), new_sid("RE")
    phone.media.audio[recording_sid] = AUDIO
    phone.media.faults = [503]
    assert post(hooks, RECORDING_PATH, recording_params(settings, call_sid, recording_sid)) == 200
    assert fetch_due(engine, settings, TwilioClient(settings.twilio)) == 1
    (row,) = outbox_rows(engine)
    assert row["state"] == "pending" and "HTTP 503" in row["last_error"] and row["attempts"] == 1
    assert attachments(engine) == [] and call_row(engine, call_sid)["outcome"] == "in_progress"
    wait_due(engine)
    assert fetch_due(engine, settings, TwilioClient(settings.twilio)) == 1
    (row,) = outbox_rows(engine)
    assert (row["state"], row["attempts"], row["provider_id"]) == ("sent", 2, recording_sid)
    assert len(attachments(engine)) == 1 and call_row(engine, call_sid)["outcome"] == "voicemail"
    assert len(phone.media.requests) == 2


def test_a_recording_twilio_never_has_fails_after_its_retries(
    hooks: RunningWebhooks, engine: Engine, phone: FakePhoneNetwork, media_url: str
) -> None:
    settings = twilio_settings(media_url, twilio={"recording_not_found_retries": 1})
    call_sid, recording_sid = make_call(engine), new_sid("RE")  # no audio: 404
    assert post(hooks, RECORDING_PATH, recording_params(settings, call_sid, recording_sid)) == 200
    assert fetch_due(engine, settings, TwilioClient(settings.twilio)) == 1
    assert outbox_rows(engine)[0]["state"] == "pending"
    wait_due(engine)
    assert fetch_due(engine, settings, TwilioClient(settings.twilio)) == 1
    assert outbox_rows(engine)[0]["state"] == "failed"
    call = call_row(engine, call_sid)
    assert (call["recording_error"], call["attachment_id"]) == ("download_failed", None)
    assert ticket_of(engine, call_sid)["callback_requested"] is True
    assert event_kinds(engine) == ["recording_download_failed"]


def test_a_refused_download_fails_at_once(engine: Engine, phone: FakePhoneNetwork, media_url: str) -> None:
    settings = twilio_settings(media_url, twilio={"auth_token": "a-wrong-token-0123456789"})
    recording_sid = new_sid("RE")
    phone.media.audio[recording_sid] = AUDIO
    with pytest.raises(PermanentFailure, match="HTTP 401"):
        TwilioClient(settings.twilio).fetch_recording(recording_sid)
    assert phone.media.requests[0][1] is False


def test_a_recording_larger_than_the_limit_is_refused(phone: FakePhoneNetwork, media_url: str) -> None:
    settings = twilio_settings(media_url, twilio={"recording_max_bytes": 1024})
    recording_sid = new_sid("RE")
    phone.media.audio[recording_sid] = AUDIO
    with pytest.raises(PermanentFailure, match="recording_max_bytes"):
        TwilioClient(settings.twilio).fetch_recording(recording_sid)


def test_prism_serves_the_media_to_our_basic_auth_and_refuses_it_without(prism_mock: Prism) -> None:
    settings = twilio_settings(prism_mock.base_url)
    audio, content_type = TwilioClient(settings.twilio).fetch_recording(RE_SID)
    assert audio and content_type.startswith("audio/")
    request = urllib.request.Request(media_url_for(settings, RE_SID), headers={"Accept": "audio/*"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    refused.value.close()
    assert refused.value.code == 401


def test_the_voicemail_fetcher_worker_downloads_what_the_webhook_queued(
    hooks: RunningWebhooks, engine: Engine, settings: Settings, phone: FakePhoneNetwork
) -> None:
    call_sid, recording_sid = make_call(engine), new_sid("RE")
    phone.media.audio[recording_sid] = AUDIO
    phone.media.faults = [500]

    async def run() -> None:
        executor = ThreadPoolExecutor(max_workers=2)
        fetcher = VoicemailFetcher(engine, executor, settings, TwilioClient(settings.twilio))
        fetcher.start()
        try:
            assert post(hooks, RECORDING_PATH, recording_params(settings, call_sid, recording_sid)) == 200
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if await fetcher.run_blocking(lambda: len(attachments(engine))):
                    return
                await asyncio.sleep(0.05)
        finally:
            await fetcher.stop()
            executor.shutdown(wait=True)

    asyncio.run(run())
    assert call_row(engine, call_sid)["outcome"] == "voicemail"
    assert [row["state"] for row in outbox_rows(engine)] == ["sent"]
    assert len(phone.media.requests) == 2  # the 500, then the audio


def test_a_recording_of_a_call_the_desk_answered_is_kept_without_a_call_back(
    hooks: RunningWebhooks, engine: Engine, settings: Settings, phone: FakePhoneNetwork
) -> None:
    call_sid, recording_sid = make_call(engine, outcome="answered_by_desk"), new_sid("RE")
    phone.media.audio[recording_sid] = AUDIO
    assert post(hooks, RECORDING_PATH, recording_params(settings, call_sid, recording_sid)) == 200
    assert fetch_due(engine, settings, TwilioClient(settings.twilio)) == 1
    call = call_row(engine, call_sid)
    assert call["outcome"] == "answered_by_desk" and call["attachment_id"] is not None
    assert ticket_of(engine, call_sid)["callback_requested"] is False
