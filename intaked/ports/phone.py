"""The phone provider port: SMS, calls and recordings, and where the provider calls us back.

:class:`PhoneProvider` is what the paging dispatcher, the voicemail fetcher and hotline
reconciliation use; :class:`intaked.twilio.client.TwilioClient` implements it over Twilio's REST
API. Every failure is classified for the outbox:

- :class:`TemporaryFailure`: try again later (429, 5xx, timeouts, connection errors);
  ``unknown_outcome`` is true when the request may have reached the provider, which may have
  acted: the dispatcher asks the list API before sending again.
- :class:`PermanentFailure`: refused for good, carrying the provider's error code.

The webhook paths are the provider's side of the contract (the URLs we give it); the table that
maps each path to its handler is intaked/twilio/routes.py.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

#: The status callback events a call asks for.
CALL_EVENTS: tuple[str, ...] = ("initiated", "ringing", "answered", "completed")
#: Prefix of the error text of a temporary failure after which the provider may have acted.
UNKNOWN_OUTCOME = "outcome unknown"

# -- the webhook paths (each one's handler: intaked/twilio/routes.py) ------------------------------
SMS_STATUS_PATH = "/twilio/status/sms"
CALL_STATUS_PATH = "/twilio/status/call"
VOICE_PAGE_PATH = "/twilio/voice/page"
KEYPRESS_PATH = "/twilio/voice/page/keypress"
SMS_INCOMING_PATH = "/twilio/sms/incoming"
INCOMING_PATH = "/twilio/voice/incoming"
MENU_PATH = "/twilio/voice/menu"
SPEECH_PATH = "/twilio/voice/speech"
DIAL_DONE_PATH = "/twilio/voice/dial-done"
RECORDED_PATH = "/twilio/voice/recorded"
STATUS_PATH = "/twilio/status/hotline"
RECORDING_PATH = "/twilio/voice/recording"
TRANSCRIPTION_PATH = "/twilio/voice/transcription"


def page_call_path(attempt_id: int) -> str:
    """The path (and query) of the TwiML a page call runs when answered."""
    return f"{VOICE_PAGE_PATH}?attempt={attempt_id}"


class ProviderFailure(Exception):
    """A request the provider did not accept (or whose answer we did not get)."""


class TemporaryFailure(ProviderFailure):
    """Try again later; with ``unknown_outcome``, first ask the provider whether it already acted."""

    def __init__(self, message: str, *, unknown_outcome: bool = False, status: int | None = None) -> None:
        super().__init__(f"{UNKNOWN_OUTCOME}: {message}" if unknown_outcome else message)
        self.unknown_outcome = unknown_outcome
        self.status = status


class PermanentFailure(ProviderFailure):
    """The provider refused the request for good; ``code`` is its error code when it gave one."""

    def __init__(self, message: str, *, code: int | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class RecordingNotFound(TemporaryFailure):
    """HTTP 404: the provider may not have the media yet right after the recording completed."""


@dataclass(frozen=True, slots=True)
class ProviderRecord:
    """A message or call as the provider lists it (what reconciliation compares)."""

    sid: str
    to: str
    status: str
    body: str | None
    date_created: dt.datetime | None


@dataclass(frozen=True, slots=True)
class ListedCall:
    """A call as the provider's call list shows it (what hotline reconciliation ingests)."""

    sid: str
    from_number: str
    to: str
    status: str
    direction: str
    start_time: dt.datetime | None
    duration: int | None
    caller_name: str | None


@dataclass(frozen=True, slots=True)
class ListedRecording:
    """A recording as the provider lists it (what voicemail reconciliation applies)."""

    sid: str
    call_sid: str
    status: str
    duration: int | None
    error_code: str


@dataclass(frozen=True, slots=True)
class CallRequest:
    """A call to place: once answered it runs the TwiML at ``url`` or the inline ``twiml`` (exactly
    one of the two). The provider reports ``status_events`` to ``status_callback`` when one is
    given; ``machine_detection`` None keeps the provider's setting; ``timeout`` is how many seconds
    it rings (None: the provider's default)."""

    to: str
    url: str | None = None
    twiml: str | None = None
    status_callback: str | None = None
    status_events: Sequence[str] = CALL_EVENTS
    machine_detection: str | None = None
    timeout: int | None = None

    def __post_init__(self) -> None:
        if (self.url is None) == (self.twiml is None):
            raise ValueError("give exactly one of url and twiml")


class PhoneProvider(Protocol):
    """What intaked asks of its phone provider; each method is blocking (database threads) and
    raises :class:`TemporaryFailure` or :class:`PermanentFailure`."""

    def send_sms(self, to: str, body: str, status_callback: str | None) -> str:
        """Queue an SMS; returns its Sid."""
        ...

    def create_call(self, call: CallRequest) -> str:
        """Place ``call``; returns its Sid."""
        ...

    def cancel_call(self, sid: str) -> str:
        """Stop a call (cancel it, or hang it up once answered); returns its status
        (``ended`` when it was over already)."""
        ...

    def find_messages(self, to: str, since: dt.datetime) -> list[ProviderRecord]:
        """The messages to ``to`` created at or after ``since``, newest first."""
        ...

    def find_calls(self, to: str, since: dt.datetime) -> list[ProviderRecord]:
        """The calls to ``to`` created at or after ``since``, newest first."""
        ...

    def list_calls_to(self, to: str, since: dt.datetime, limit: int = ...) -> list[ListedCall]:
        """The calls to ``to`` that started at or after ``since``."""
        ...

    def list_recordings_of(self, call_sid: str) -> list[ListedRecording]:
        """The recordings of call ``call_sid``."""
        ...

    def fetch_recording(self, recording_sid: str) -> tuple[bytes, str]:
        """The media of ``recording_sid``: (bytes, content type); :class:`RecordingNotFound` on 404."""
        ...
