"""The whole daemon: Twilio's recording and transcription callbacks reach its listener, and its
voicemail fetcher (in the outbox process, or in the daemon's own with the back office inline)
downloads the recording from the fake phone network."""

from __future__ import annotations

from pathlib import Path

import pytest

from intaked.ports.phone import RECORDING_PATH, TRANSCRIPTION_PATH
from tests.hotline.calls_support import ACCOUNT_SID, AUTH_TOKEN, PUBLIC_URL, call_row, make_call, new_sid
from tests.hotline.test_recordings import AUDIO, attachments, recording_params, transcription_params
from tests.support.daemon import DaemonThread, make_settings
from tests.support.phone import FakePhoneNetwork
from tests.support.waiting import wait_until


@pytest.mark.parametrize("back_office", ["inline", "process"])
def test_the_daemon_attaches_a_voicemail_and_its_transcript(
    tmp_path: Path, phone: FakePhoneNetwork, back_office: str
) -> None:
    settings = make_settings(
        f"sqlite:///{tmp_path / 'intaked.db'}",
        daemon={"back_office": back_office},
        smtp_intake={"enabled": False},
        twilio={
            "account_sid": ACCOUNT_SID,
            "auth_token": AUTH_TOKEN,
            "from_number": "+886212345678",
            "api_base_url": phone.base_url,
        },
        webhooks={"listen": "127.0.0.1:0", "public_url": PUBLIC_URL},
        outbox={"poll_seconds": 0.05},
    )
    daemon = DaemonThread(settings).start()
    try:
        assert daemon.daemon.webhooks is not None and daemon.daemon.webhooks_address is not None
        assert {RECORDING_PATH, TRANSCRIPTION_PATH} <= set(daemon.daemon.webhooks.routes.handlers)
        assert (daemon.daemon.voicemail is not None) == (back_office == "inline")
        host, port = daemon.daemon.webhooks_address
        phone.deliver_to(PUBLIC_URL, f"http://{host}:{port}")
        engine = daemon.engine
        call_sid, recording_sid = make_call(engine), new_sid("RE")
        phone.media.audio[recording_sid] = AUDIO
        answer = phone.post_signed(
            PUBLIC_URL + RECORDING_PATH, recording_params(settings, call_sid, recording_sid)
        )
        assert answer.status == 200
        wait_until(lambda: attachments(engine), what="the voicemail attached")
        text = "Printer on 3F jammed, please call back."
        params = transcription_params(settings, call_sid, recording_sid, text=text)
        assert phone.post_signed(PUBLIC_URL + TRANSCRIPTION_PATH, params).status == 200
        call = call_row(engine, call_sid)
        assert (call["outcome"], call["transcript"]) == ("voicemail", text)
        assert phone.media.requests[0][1] is True
    finally:
        daemon.stop()
