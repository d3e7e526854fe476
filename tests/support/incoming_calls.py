"""Incoming calls on the fake phone network: a caller dials one of our numbers and Twilio asks
intaked what to do, step by step, the way Twilio does (used by ``FakePhoneNetwork.place_call``).

The driver POSTs signed requests to the incoming-call URL, parses the TwiML answered and follows
it per a :class:`CallerScript`: the menu key (or none: the ``<Gather>`` times out and the next
verb runs), hanging up at some point, the desk answering a ``<Dial>`` or not, a voicemail of N
seconds (the ``<Record>`` action with a RecordingUrl on the fake's own host, then the
``recordingStatusCallback`` and ``transcribeCallback`` when the TwiML asked for them), and at the
end the number's status callback (CallStatus, CallDuration). Everything runs in the caller's
thread, in order: no timers, no sleeps.
"""

from __future__ import annotations

import secrets
import time
import urllib.parse
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from tests.support.phone import Callback, FakePhoneNetwork

HangUp = Literal["before_menu", "during_menu", "during_recording"]


@dataclass(frozen=True)
class CallerScript:
    """What the caller does. ``press`` None: no key at the menu. ``voicemail_seconds`` 0: says
    nothing at the beep (the recording is absent)."""

    press: str | None = "2"
    hang_up: HangUp | None = None
    voicemail_seconds: int = 0
    desk_answers: bool = False
    caller_name: str | None = None
    final_status: str = "completed"
    transcript: str = ""
    speech: str = ""  # what the caller says when asked to describe the problem


@dataclass
class PlacedCall:
    """A call placed to intaked: its Sid and every webhook posted for it with intaked's answer."""

    sid: str
    from_number: str
    to_number: str
    answers: list[Callback] = field(default_factory=list)

    def to(self, path: str) -> list[Callback]:
        """The webhooks posted to ``path`` (e.g. ``/twilio/voice/menu``)."""
        return [a for a in self.answers if urllib.parse.urlsplit(a.url).path == path]

    def twiml(self, path: str) -> ET.Element:
        """The TwiML intaked answered to the (first) webhook posted to ``path``."""
        (first, *_) = self.to(path)
        return ET.fromstring(first.body)


def _voice_params(
    network: FakePhoneNetwork, call: PlacedCall, status: str, caller_name: str | None
) -> list[tuple[str, str]]:
    params = [
        ("CallSid", call.sid),
        ("AccountSid", network.account_sid),
        ("From", call.from_number),
        ("To", call.to_number),
        ("CallStatus", status),
        ("Direction", "inbound"),
        ("ApiVersion", "2010-04-01"),
        ("FromCountry", "TW"),
        ("FromCity", ""),
        ("FromState", ""),
        ("FromZip", ""),
        ("ToCountry", "TW"),
        ("ToCity", ""),
        ("ToState", ""),
        ("ToZip", ""),
    ]
    if caller_name:
        params.append(("CallerName", caller_name))
    return params


def _parse(body: str) -> ET.Element | None:
    try:
        return ET.fromstring(body)
    except ET.ParseError:
        return None


def drive_incoming_call(
    network: FakePhoneNetwork,
    from_number: str,
    to_number: str,
    script: CallerScript,
    *,
    voice_url: str,
    status_url: str,
    call_sid: str | None = None,
) -> PlacedCall:
    """Place the call and follow intaked's TwiML per ``script``; returns what was posted."""
    call = PlacedCall(call_sid or "CA" + secrets.token_hex(16), from_number, to_number)
    network.note_incoming_call(call.sid, from_number, to_number)
    started = time.monotonic()

    def post(url: str, status: str, *extra: tuple[str, str]) -> Callback:
        answer = network.post_signed(url, [*_voice_params(network, call, status, script.caller_name), *extra])
        call.answers.append(answer)
        return answer

    def follow(url: str, answer: Callback) -> None:
        """Play the TwiML in ``answer`` (fetched from ``url``) until the call ends."""
        root = _parse(answer.body)
        if root is None:
            return
        for verb in root:
            if verb.tag == "Gather" and "speech" in (verb.get("input") or ""):
                if not script.speech:
                    continue  # silence: the Gather times out, the voicemail follows
                action = urllib.parse.urljoin(url, verb.get("action") or url)
                reply = post(action, "in-progress", ("SpeechResult", script.speech), ("Confidence", "0.87"))
                follow(action, reply)
                return
            if verb.tag == "Gather":
                if script.hang_up == "before_menu":
                    return
                action = urllib.parse.urljoin(url, verb.get("action") or url)
                if script.press is not None:
                    reply = post(action, "in-progress", ("Digits", script.press))
                    if script.hang_up == "during_menu":
                        return
                    follow(action, reply)
                    return
                continue  # no key: the Gather times out, the next verb runs
            if verb.tag == "Redirect" and verb.text:
                target = urllib.parse.urljoin(url, verb.text.strip())
                reply = post(target, "in-progress")
                if script.hang_up == "during_menu" and target.endswith("/twilio/voice/menu"):
                    return
                follow(target, reply)
                return
            if verb.tag == "Dial":
                action = urllib.parse.urljoin(url, verb.get("action") or url)
                dial_status = "completed" if script.desk_answers else "no-answer"
                extra = [("DialCallStatus", dial_status), ("DialCallSid", "CA" + secrets.token_hex(16))]
                if script.desk_answers:
                    extra.append(("DialCallDuration", "42"))
                follow(action, post(action, "in-progress", *extra))
                return
            if verb.tag == "Record":
                record(url, verb)
                return
            if verb.tag == "Hangup":
                return

    def record(url: str, verb: ET.Element) -> None:
        seconds = script.voicemail_seconds
        hung_up = script.hang_up == "during_recording"
        recording_sid = "RE" + secrets.token_hex(16)
        recording_url = (
            f"{network.base_url}/2010-04-01/Accounts/{network.account_sid}/Recordings/{recording_sid}"
        )
        network.note_recording(call.sid, recording_sid, seconds, None if seconds > 0 else 16102)
        if seconds > 0 or hung_up:
            action = urllib.parse.urljoin(url, verb.get("action") or url)
            reply = post(
                action,
                "completed" if hung_up else "in-progress",
                ("RecordingUrl", recording_url),
                ("RecordingSid", recording_sid),
                ("RecordingDuration", str(seconds)),
                ("Digits", "hangup" if hung_up else "#"),
            )
            if not hung_up:
                follow(action, reply)
        callback = verb.get("recordingStatusCallback")
        if network.recording_callbacks_lost:  # Twilio's tries failed (intaked was unreachable)
            return
        if callback:
            status_params = [
                ("AccountSid", network.account_sid),
                ("CallSid", call.sid),
                ("RecordingSid", recording_sid),
                ("RecordingUrl", recording_url),
                ("RecordingStatus", "completed" if seconds > 0 else "absent"),
                ("RecordingDuration", str(seconds)),
                ("RecordingChannels", "1"),
                ("RecordingSource", "RecordVerb"),
                ("RecordingStartTime", time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())),
            ]
            if seconds == 0:
                status_params.append(("ErrorCode", "16102"))
            call.answers.append(network.post_signed(urllib.parse.urljoin(url, callback), status_params))
        transcribe = verb.get("transcribeCallback")
        if transcribe and verb.get("transcribe") == "true" and seconds > 0:
            params = [
                *_voice_params(network, call, "completed", script.caller_name),
                ("TranscriptionSid", "TR" + secrets.token_hex(16)),
                ("TranscriptionText", script.transcript),
                ("TranscriptionStatus", "completed" if script.transcript else "failed"),
                ("TranscriptionUrl", f"{recording_url}/Transcriptions"),
                ("TranscriptionType", "fast"),
                ("RecordingSid", recording_sid),
                ("RecordingUrl", recording_url),
            ]
            call.answers.append(network.post_signed(urllib.parse.urljoin(url, transcribe), params))

    follow(voice_url, post(voice_url, "ringing"))
    duration = max(1, int(time.monotonic() - started)) + script.voicemail_seconds
    network.note_call_ended(call.sid, script.final_status, duration)
    post(
        status_url,
        script.final_status,
        ("CallDuration", str(duration)),
        ("CallbackSource", "call-progress-events"),
        ("SequenceNumber", "0"),
        ("Timestamp", time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())),
    )
    return call
