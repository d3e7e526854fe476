"""A fake phone provider: :class:`intaked.ports.phone.PhoneProvider` in memory, for fast unit
tests of what uses the port (the Twilio dispatcher, the voicemail fetcher, reconciliation).

It keeps what it was asked (``sms``, ``calls``, ``cancels``, ``fetched``), answers the lists from
what it holds (``messages``, ``listed_calls``, ``recordings``, ``media``), and raises the failures
queued with :meth:`FakePhoneProvider.fail_next` before acting. The network-level fakes (Prism and
the fake phone network, tests/support/phone.py) stay for the integration tests: this one checks
no request against Twilio's spec.
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass, field

from intaked.ports.phone import (
    CallRequest,
    ListedCall,
    ListedRecording,
    ProviderFailure,
    ProviderRecord,
    RecordingNotFound,
)


@dataclass(frozen=True, slots=True)
class SentSms:
    sid: str
    to: str
    body: str
    status_callback: str | None


@dataclass(frozen=True, slots=True)
class PlacedCall:
    sid: str
    to: str
    url: str | None
    twiml: str | None
    status_callback: str | None
    timeout: int | None


@dataclass
class FakePhoneProvider:
    """In-memory phone provider; Sids are ``SM``/``CA`` + 32 hex digits, numbered from 1."""

    sms: list[SentSms] = field(default_factory=list)
    calls: list[PlacedCall] = field(default_factory=list)
    cancels: list[str] = field(default_factory=list)
    fetched: list[str] = field(default_factory=list)
    messages: list[ProviderRecord] = field(default_factory=list)
    listed_calls: list[ListedCall] = field(default_factory=list)
    recordings: list[ListedRecording] = field(default_factory=list)
    media: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    cancel_status: str = "canceled"
    _failures: dict[str, list[ProviderFailure]] = field(default_factory=dict)
    _numbers: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def fail_next(self, method: str, *failures: ProviderFailure) -> None:
        """The next calls of ``method`` (e.g. ``"send_sms"``) raise ``failures``, one each, in order."""
        self._failures.setdefault(method, []).extend(failures)

    def _act(self, method: str) -> None:
        queued = self._failures.get(method)
        if queued:
            raise queued.pop(0)

    def _sid(self, prefix: str) -> str:
        return f"{prefix}{next(self._numbers):032x}"

    def send_sms(self, to: str, body: str, status_callback: str | None) -> str:
        self._act("send_sms")
        sid = self._sid("SM")
        self.sms.append(SentSms(sid, to, body, status_callback))
        self.messages.insert(0, ProviderRecord(sid, to, "queued", body, dt.datetime.now(dt.UTC)))
        return sid

    def create_call(self, call: CallRequest) -> str:
        self._act("create_call")
        sid = self._sid("CA")
        self.calls.append(PlacedCall(sid, call.to, call.url, call.twiml, call.status_callback, call.timeout))
        return sid

    def cancel_call(self, sid: str) -> str:
        self._act("cancel_call")
        self.cancels.append(sid)
        return self.cancel_status

    def find_messages(self, to: str, since: dt.datetime) -> list[ProviderRecord]:
        self._act("find_messages")
        return [m for m in self.messages if m.to == to]

    def find_calls(self, to: str, since: dt.datetime) -> list[ProviderRecord]:
        self._act("find_calls")
        return [
            ProviderRecord(c.sid, c.to, "queued", None, dt.datetime.now(dt.UTC))
            for c in reversed(self.calls)
            if c.to == to
        ]

    def list_calls_to(self, to: str, since: dt.datetime, limit: int = 1000) -> list[ListedCall]:
        self._act("list_calls_to")
        return [c for c in self.listed_calls if c.to == to][:limit]

    def list_recordings_of(self, call_sid: str) -> list[ListedRecording]:
        self._act("list_recordings_of")
        return [r for r in self.recordings if r.call_sid == call_sid]

    def fetch_recording(self, recording_sid: str) -> tuple[bytes, str]:
        self._act("fetch_recording")
        self.fetched.append(recording_sid)
        if recording_sid not in self.media:
            raise RecordingNotFound(f"download recording {recording_sid}: HTTP 404 (not there yet?)")
        return self.media[recording_sid]
