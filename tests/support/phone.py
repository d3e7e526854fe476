"""A fake phone network that plays Twilio's part in tests: its REST API (behind ``prism proxy``,
which checks our requests and these answers against Twilio's spec) and its webhooks.

REST (API v2010, form-encoded, Basic auth not checked here; Prism checks it):

- ``POST /2010-04-01/Accounts/{Sid}/Messages.json`` and ``Calls.json``: a new resource with a
  fresh ``SM``/``CA`` + 32 hex Sid, status ``queued``; then the number's script plays in a thread;
- ``POST .../Calls/{Sid}.json`` with ``Status=canceled|completed``: cancel (queued, ringing) or hang
  up (in progress); 404 / code 20404 for an unknown Sid;
- ``GET .../Messages.json`` and ``Calls.json`` with ``To``: that number's resources, newest first;
- ``GET .../Recordings/{Sid}.wav`` (``.mp3``): recording media, Basic auth required (:class:`RecordingMedia`);
- ``GET .../Recordings.json`` with ``CallSid``: the recordings callers left
  (:meth:`FakePhoneNetwork.note_recording`).

Incoming calls (:meth:`FakePhoneNetwork.place_call`, tests/support/incoming_calls.py): a caller
dials one of our hotline numbers; the network drives intaked's voice webhooks per a script and the
call shows up in the Calls list.

Every request is recorded (:attr:`FakePhoneNetwork.requests`). Per-number scripts
(:class:`Script`, set with :meth:`FakePhoneNetwork.script`) say what happens next; the callbacks
are POSTed to the URLs our requests gave, signed exactly as Twilio signs them
(``RequestValidator(token).compute_signature(url, params)``), and delivered to intaked's socket
when the URL starts with the public URL (the way a TLS proxy in front of intaked would).

Provider trouble: :attr:`FakePhoneNetwork.faults` is a queue of faults for the next creates:
``"503"``, ``"429"`` (not processed), ``"hang"`` (the create is accepted and recorded, the answer
comes only after ``hang_seconds``: the client times out not knowing) and ``"drop"`` (accepted and
recorded, then the connection is closed without an answer).
"""

from __future__ import annotations

import base64
import enum
import json
import re
import secrets
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from twilio.request_validator import RequestValidator

from tests.support.incoming_calls import CallerScript, PlacedCall, drive_incoming_call
from tests.support.workers import free_port

API_PREFIX = "/2010-04-01/Accounts/"


class Script(enum.Enum):
    """What a number does when we reach it."""

    RINGS = "rings"  # a call rings until it is cancelled (the default for calls)
    NO_ANSWER = "no_answer"  # initiated → ringing → no-answer
    ANSWERS_PRESSES_1 = "answers_presses_1"  # answered; fetches our TwiML; presses 1; completed
    ANSWERS_PRESSES_9 = "answers_presses_9"
    ANSWERS_PRESSES_2 = "answers_presses_2"  # the war room: acknowledge and join the bridge
    VOICEMAIL = "voicemail"  # answered by a machine, no key: answered → completed
    BUSY = "busy"  # initiated → busy
    INVALID = "invalid"  # REST 400, error 21211: not a valid phone number
    UNSUBSCRIBED = "unsubscribed"  # SMS: REST 400, error 21610
    DELIVERED = "delivered"  # SMS: sent → delivered (the default for SMS)
    UNDELIVERED = "undelivered"  # SMS: sent → undelivered, error 30003


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    params: tuple[tuple[str, str], ...]
    at: float  # monotonic

    def get(self, key: str) -> str | None:
        return next((v for k, v in self.params if k == key), None)

    def getall(self, key: str) -> list[str]:
        return [v for k, v in self.params if k == key]


@dataclass(frozen=True)
class Callback:
    """A webhook the network posted, and intaked's answer."""

    url: str
    params: tuple[tuple[str, str], ...]
    status: int
    body: str


class _Pairs:
    """(key, value) pairs with the ``getall`` that RequestValidator uses for repeated keys."""

    def __init__(self, pairs: Sequence[tuple[str, str]]) -> None:
        self._pairs = list(pairs)

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(k for k, _ in self._pairs))

    def __bool__(self) -> bool:
        return bool(self._pairs)

    def getall(self, key: str) -> list[str]:
        return [v for k, v in self._pairs if k == key]


def twilio_signature(token: str, url: str, params: Sequence[tuple[str, str]]) -> str:
    """X-Twilio-Signature as Twilio computes it (twilio-python's own RequestValidator)."""
    return str(RequestValidator(token).compute_signature(url, _Pairs(params)))


def signed_post(
    base_url: str,
    public_url: str,
    path: str,
    params: Sequence[tuple[str, str]],
    token: str,
    *,
    signature: str | None = None,
    timeout: float = 10.0,
) -> tuple[int, str]:
    """POST ``params`` to ``base_url + path``, signed for ``public_url + path`` with ``token``
    (or with the given ``signature``); returns (HTTP status, body)."""
    sign = twilio_signature(token, public_url + path, params) if signature is None else signature
    request = urllib.request.Request(
        base_url + path,
        data=urllib.parse.urlencode(list(params)).encode("utf-8"),
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": sign},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status), response.read().decode("utf-8")
    except urllib.error.HTTPError as exc:
        with exc:
            return int(exc.code), exc.read().decode("utf-8", "replace")


def _sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


def _rfc2822(at: float) -> str:
    import datetime as dt

    return format_datetime(dt.datetime.fromtimestamp(int(at), dt.UTC), usegmt=False).replace("-0000", "+0000")


class RecordingMedia:
    """Recording media (``GET .../Recordings/{RE...}.wav`` or ``.mp3``), which needs Basic auth with
    the account Sid and token (401 otherwise): :attr:`audio` per RecordingSid (404 for others),
    :attr:`faults` a queue of HTTP statuses for the next downloads (e.g. ``[503]``), every request
    in :attr:`requests` as (path, authorised, Accept header)."""

    PATH = re.compile(rf"{API_PREFIX}(AC[0-9a-f]{{32}})/Recordings/(RE[0-9a-f]{{32}})\.(wav|mp3)")

    def __init__(self, account_sid: str, auth_token: str) -> None:
        token = base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode("ascii")
        self._authorization = f"Basic {token}"
        self.account_sid = account_sid
        self.reset()

    def reset(self) -> None:
        self.audio: dict[str, bytes] = {}
        self.faults: list[int] = []
        self.requests: list[tuple[str, bool, str]] = []

    def serve(self, handler: BaseHTTPRequestHandler) -> bool:
        """Answer ``handler``'s GET when it asks for recording media; False when it does not."""
        match = self.PATH.fullmatch(urllib.parse.urlsplit(handler.path).path)
        if match is None:
            return False
        authorised = handler.headers.get("Authorization") == self._authorization
        self.requests.append((handler.path, authorised, handler.headers.get("Accept") or ""))
        audio = self.audio.get(match.group(2)) if match.group(1) == self.account_sid else None
        status = self.faults.pop(0) if self.faults else 200 if audio is not None else 404
        if not authorised:
            status = 401
        body = audio if status == 200 and audio is not None else json.dumps({"status": status}).encode()
        handler.send_response(status)
        if status == 200:
            handler.send_header("Content-Type", "audio/x-wav" if match.group(3) == "wav" else "audio/mpeg")
        else:
            handler.send_header("Content-Type", "application/json")
        if status == 401:
            handler.send_header("WWW-Authenticate", 'Basic realm="Twilio API"')
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
        return True


@dataclass
class _Resource:
    kind: str  # "message" | "call"
    sid: str
    params: tuple[tuple[str, str], ...]
    created: float  # wall clock
    status: str = "queued"
    answered_by: str | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)

    def get(self, key: str) -> str | None:
        return next((v for k, v in self.params if k == key), None)


class FakePhoneNetwork:
    """Start with ``with FakePhoneNetwork(account_sid, token) as phone:``; ``phone.base_url``."""

    def __init__(self, account_sid: str, auth_token: str, *, step_seconds: float = 0.02) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.step_seconds = step_seconds
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.hang_seconds = 3.0
        self.inbound_sms_url = ""  # where replies go (public URL of our SMS webhook)
        self.inbound_voice_url = ""  # a hotline number's "A call comes in" webhook (public URL)
        self.hotline_status_url = ""  # its "Call status changes" webhook (public URL)
        self._lock = threading.Lock()
        self._deliver: tuple[str, str] | None = None  # (public URL, socket URL)
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self.media = RecordingMedia(account_sid, auth_token)
        self.recordings: list[dict[str, Any]] = []  # GET .../Recordings.json (voicemails left)
        self.recording_callbacks_lost = False  # place_call: recording callbacks never reach us
        self.reset()

    # -- test controls ---------------------------------------------------------------------------

    def reset(self) -> None:
        with self._lock:
            self.requests: list[RecordedRequest] = []
            self.callbacks: list[Callback] = []
            self.faults: list[str] = []
            self.scripts: dict[str, Script] = {}
            self.resources: dict[str, _Resource] = {}
            self.down = False  # every request answered 503
            self.media.reset()
            self.recordings.clear()
            self.recording_callbacks_lost = False
            self._threads = [t for t in self._threads if t.is_alive()]

    def script(self, number: str, script: Script) -> None:
        """What ``number`` does from now on."""
        with self._lock:
            self.scripts[number] = script

    def deliver_to(self, public_url: str, socket_url: str) -> None:
        """Callbacks to URLs under ``public_url`` go to ``socket_url`` (signed for the public URL)."""
        self._deliver = (public_url.rstrip("/"), socket_url.rstrip("/"))

    def creates(self, kind: str) -> list[RecordedRequest]:
        """The create requests received for ``kind`` ("Messages" or "Calls")."""
        suffix = f"/{kind}.json"
        with self._lock:
            return [r for r in self.requests if r.method == "POST" and r.path.endswith(suffix)]

    def wait_idle(self, timeout: float = 15.0) -> None:
        """Wait until every script that was started has finished."""
        deadline = time.monotonic() + timeout
        for thread in list(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                raise AssertionError(f"script thread {thread.name} still running after {timeout}s")

    def send_sms_reply(self, from_number: str, to_number: str, body: str) -> Callback:
        """An incoming SMS from ``from_number`` to our number, posted to :attr:`inbound_sms_url`."""
        sid = _sid("SM")
        params = (
            ("MessageSid", sid),
            ("SmsSid", sid),
            ("SmsMessageSid", sid),
            ("AccountSid", self.account_sid),
            ("MessagingServiceSid", ""),
            ("From", from_number),
            ("To", to_number),
            ("Body", body),
            ("NumMedia", "0"),
            ("NumSegments", "1"),
            ("SmsStatus", "received"),
            ("ApiVersion", "2010-04-01"),
        )
        return self.post_signed(self.inbound_sms_url, params)

    def place_call(
        self,
        from_number: str,
        to_number: str,
        script: CallerScript | None = None,
        *,
        call_sid: str | None = None,
    ) -> PlacedCall:
        """A caller dials ``to_number`` (one of ours): Twilio asks :attr:`inbound_voice_url` what to
        do and follows the TwiML per ``script`` (tests/support/incoming_calls.py), then posts the
        call's end to :attr:`hotline_status_url`. Synchronous; returns every webhook and answer."""
        return drive_incoming_call(
            self,
            from_number,
            to_number,
            script or CallerScript(),
            voice_url=self.inbound_voice_url,
            status_url=self.hotline_status_url,
            call_sid=call_sid,
        )

    def note_incoming_call(self, sid: str, from_number: str, to_number: str) -> None:
        """An incoming call exists from now on (listed by ``GET .../Calls.json``)."""
        params = (("From", from_number), ("To", to_number), ("Direction", "inbound"))
        with self._lock:
            self.resources[sid] = _Resource("call", sid, params, time.time(), status="ringing")

    def note_recording(self, call_sid: str, recording_sid: str, seconds: int, error_code: int | None) -> None:
        """A recording exists from now on (listed by ``GET .../Recordings.json``)."""
        created = _rfc2822(time.time())
        with self._lock:
            self.recordings.append(
                {
                    "account_sid": self.account_sid,
                    "api_version": "2010-04-01",
                    "call_sid": call_sid,
                    "conference_sid": None,
                    "date_created": created,
                    "date_updated": created,
                    "start_time": created,
                    "duration": str(seconds),
                    "sid": recording_sid,
                    "price": None,
                    "price_unit": "USD",
                    "status": "absent" if error_code else "completed",
                    "channels": 1,
                    "source": "RecordVerb",
                    "error_code": error_code,
                    "uri": f"{API_PREFIX}{self.account_sid}/Recordings/{recording_sid}.json",
                    "encryption_details": None,
                    "subresource_uris": {},
                    "media_url": f"{self.base_url}{API_PREFIX}{self.account_sid}/Recordings/{recording_sid}",
                }
            )

    def note_call_ended(self, sid: str, status: str, duration: int) -> None:
        with self._lock:
            call = self.resources.get(sid)
            if call is not None:
                call.status = status
                call.params = (*call.params, ("Duration", str(duration)))

    # -- webhooks --------------------------------------------------------------------------------

    def post_signed(self, url: str, params: Sequence[tuple[str, str]]) -> Callback:
        """POST a webhook the way Twilio does: form-encoded, signed for ``url`` exactly."""
        target = url
        if self._deliver is not None and url.startswith(self._deliver[0]):
            target = self._deliver[1] + url[len(self._deliver[0]) :]
        request = urllib.request.Request(
            target,
            data=urllib.parse.urlencode(list(params)).encode("utf-8"),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": twilio_signature(self.auth_token, url, params),
                "User-Agent": "TwilioProxy/1.1",
            },
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                answer = Callback(url, tuple(params), int(response.status), response.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            with exc:
                answer = Callback(url, tuple(params), int(exc.code), exc.read().decode("utf-8", "replace"))
        except OSError as exc:
            answer = Callback(url, tuple(params), 0, str(exc))
        with self._lock:
            self.callbacks.append(answer)
        return answer

    def _voice_params(self, call: _Resource, status: str) -> list[tuple[str, str]]:
        params = [
            ("CallSid", call.sid),
            ("AccountSid", self.account_sid),
            ("From", call.get("From") or ""),
            ("To", call.get("To") or ""),
            ("CallStatus", status),
            ("Direction", "outbound-api"),
            ("ApiVersion", "2010-04-01"),
            ("ToCountry", "TW"),
            ("FromCountry", "TW"),
        ]
        if call.answered_by:
            params.append(("AnsweredBy", call.answered_by))
        return params

    def _call_event(
        self, call: _Resource, event: str, status: str, extra: Sequence[tuple[str, str]] = ()
    ) -> None:
        call.status = status
        url = call.get("StatusCallback")
        events = [e for e in (r[1] for r in call.params if r[0] == "StatusCallbackEvent")] or ["completed"]
        if url and (event in events or event == "completed"):
            params = [
                *self._voice_params(call, status),
                ("CallbackSource", "call-progress-events"),
                ("SequenceNumber", str(len(self.callbacks))),
                ("Timestamp", _rfc2822(time.time())),
                *extra,
            ]
            self.post_signed(url, params)

    def _run_twiml(self, call: _Resource, digits: str | None) -> None:
        """Fetch the call's TwiML (or use the inline one) and, with ``digits``, answer its Gather."""
        url = call.get("Url")
        if url:
            answer = self.post_signed(url, self._voice_params(call, "in-progress"))
            twiml, base = answer.body, url
        else:
            twiml, base = call.get("Twiml") or "", ""
        if digits is None:
            return
        try:
            root = ET.fromstring(twiml)
        except ET.ParseError:
            return
        gather = root.find(".//Gather")
        if gather is None:
            return
        action = urllib.parse.urljoin(base, gather.get("action") or base)
        if action:
            self.post_signed(action, [*self._voice_params(call, "in-progress"), ("Digits", digits)])

    def _play_call(self, call: _Resource, script: Script) -> None:
        step = self.step_seconds
        self._call_event(call, "initiated", "queued")
        time.sleep(step)
        if script is Script.BUSY:
            self._call_event(call, "completed", "busy")
            return
        self._call_event(call, "ringing", "ringing")
        time.sleep(step)
        if script is Script.RINGS:
            call.cancelled.wait(60)
            if call.status == "canceled":
                self._call_event(call, "completed", "canceled")
            return
        if script is Script.NO_ANSWER:
            self._call_event(call, "completed", "no-answer")
            return
        call.answered_by = "machine_end_beep" if script is Script.VOICEMAIL else "human"
        self._call_event(call, "answered", "in-progress")
        digits = {
            Script.ANSWERS_PRESSES_1: "1",
            Script.ANSWERS_PRESSES_2: "2",
            Script.ANSWERS_PRESSES_9: "9",
        }.get(script)
        self._run_twiml(call, digits)
        time.sleep(step)
        call.status = "completed"
        self._call_event(call, "completed", "completed", [("CallDuration", "12")])

    def _play_message(self, message: _Resource, script: Script) -> None:
        url = message.get("StatusCallback")
        for status in ("sent", "undelivered" if script is Script.UNDELIVERED else "delivered"):
            time.sleep(self.step_seconds)
            message.status = status
            if url:
                params = [
                    ("MessageSid", message.sid),
                    ("SmsSid", message.sid),
                    ("AccountSid", self.account_sid),
                    ("From", message.get("From") or ""),
                    ("To", message.get("To") or ""),
                    ("MessageStatus", status),
                    ("SmsStatus", status),
                    ("ApiVersion", "2010-04-01"),
                ]
                if status == "undelivered":
                    params.append(("ErrorCode", "30003"))
                self.post_signed(url, params)

    def _start(self, resource: _Resource, script: Script) -> None:
        if resource.kind == "call":
            thread = threading.Thread(target=self._play_call, args=(resource, script), daemon=True)
        else:
            thread = threading.Thread(target=self._play_message, args=(resource, script), daemon=True)
        thread.name = f"phone-{resource.sid}"
        thread.start()  # before it is listed: wait_idle (another thread) may join it at once
        self._threads.append(thread)

    # -- REST ------------------------------------------------------------------------------------

    def _absolute(self, path: str) -> str:
        return "https://api.twilio.com" + path

    def _json(self, resource: _Resource) -> dict[str, Any]:
        base = f"{API_PREFIX}{self.account_sid}"
        created = _rfc2822(resource.created)
        common: dict[str, Any] = {
            "sid": resource.sid,
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "to": resource.get("To"),
            "from": resource.get("From"),
            "date_created": created,
            "date_updated": created,
            "price": None,
            "price_unit": "USD",
            "status": resource.status,
        }
        if resource.kind == "message":
            uri = f"{base}/Messages/{resource.sid}.json"
            return {
                **common,
                "body": resource.get("Body"),
                "num_segments": "1",
                "num_media": "0",
                "direction": "outbound-api",
                "date_sent": None,
                "error_code": None,
                "error_message": None,
                "messaging_service_sid": None,
                "uri": uri,
                "subresource_uris": {"media": uri.replace(".json", "/Media.json")},
            }
        uri = f"{base}/Calls/{resource.sid}.json"
        return {
            **common,
            "parent_call_sid": None,
            "to_formatted": resource.get("To"),
            "from_formatted": resource.get("From"),
            "phone_number_sid": None,
            "start_time": created if resource.get("Direction") == "inbound" else None,
            "end_time": None,
            "duration": resource.get("Duration"),
            "direction": resource.get("Direction") or "outbound-api",
            "answered_by": resource.answered_by,
            "forwarded_from": None,
            "group_sid": None,
            "caller_name": None,
            "queue_time": "0",
            "trunk_sid": None,
            "uri": uri,
            "subresource_uris": {"recordings": uri.replace(".json", "/Recordings.json")},
        }

    @staticmethod
    def _error(status: int, code: int, message: str) -> tuple[int, dict[str, Any]]:
        return status, {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        }

    def handle(
        self, method: str, path: str, params: list[tuple[str, str]]
    ) -> tuple[int, dict[str, Any] | None]:
        """One REST request; returns (status, JSON body) or (0, None) to drop the connection."""
        with self._lock:
            self.requests.append(RecordedRequest(method, path, tuple(params), time.monotonic()))
            if self.down:
                return self._error(503, 20503, "Service Unavailable")
        if method == "GET" and re.fullmatch(rf"{API_PREFIX}AC[0-9a-f]{{32}}/Recordings\.json", path):
            return 200, self._recordings(dict(params).get("CallSid"), path)
        match = re.fullmatch(
            rf"{API_PREFIX}(AC[0-9a-f]{{32}})/(Messages|Calls)(?:/((?:SM|CA)[0-9a-f]{{32}}))?\.json", path
        )
        if match is None:
            return self._error(404, 20404, "The requested resource was not found")
        collection, sid = match.group(2), match.group(3)
        if method == "GET" and sid is None:
            return 200, self._list(collection, dict(params).get("To"), path)
        if method == "POST" and sid is None:
            return self._create(collection, params)
        if method == "POST" and collection == "Calls" and sid is not None:
            return self._update_call(sid, dict(params).get("Status"))
        if method == "GET" and sid is not None and sid in self.resources:
            return 200, self._json(self.resources[sid])
        return self._error(404, 20404, f"The requested resource {path} was not found")

    def _recordings(self, call_sid: str | None, path: str) -> dict[str, Any]:
        with self._lock:
            found = [r for r in self.recordings if call_sid is None or r["call_sid"] == call_sid]
        return self._page("recordings", found, path)

    def _list(self, collection: str, to: str | None, path: str) -> dict[str, Any]:
        kind = "message" if collection == "Messages" else "call"
        with self._lock:
            found = [
                r for r in self.resources.values() if r.kind == kind and (to is None or r.get("To") == to)
            ]
        found.sort(key=lambda r: r.created, reverse=True)
        return self._page(collection.lower(), [self._json(r) for r in found], path)

    def _page(self, key: str, items: list[Any], path: str) -> dict[str, Any]:
        """The first (and only) page of a list, 50 items at most, as Twilio's list API pages it."""
        uri = self._absolute(path)
        return {
            key: items[:50],
            "end": max(len(items[:50]) - 1, 0),
            "first_page_uri": uri,
            "next_page_uri": None,
            "page": 0,
            "page_size": 50,
            "previous_page_uri": None,
            "start": 0,
            "uri": uri,
        }

    def _create(self, collection: str, params: list[tuple[str, str]]) -> tuple[int, dict[str, Any] | None]:
        kind = "message" if collection == "Messages" else "call"
        to = dict(params).get("To", "")
        with self._lock:
            fault = self.faults.pop(0) if self.faults else None
            script = self.scripts.get(to, Script.DELIVERED if kind == "message" else Script.RINGS)
        if fault == "503":
            return self._error(503, 20500, "Service Unavailable")
        if fault == "429":
            return self._error(429, 20429, "Too Many Requests")
        if script is Script.INVALID:
            return self._error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if script is Script.UNSUBSCRIBED and kind == "message":
            return self._error(400, 21610, "Attempt to send to unsubscribed recipient")
        resource = _Resource(kind, _sid("SM" if kind == "message" else "CA"), tuple(params), time.time())
        with self._lock:
            self.resources[resource.sid] = resource
        self._start(resource, script)
        if fault == "hang":
            time.sleep(self.hang_seconds)
        if fault == "drop":
            return 0, None
        return 201, self._json(resource)

    def _update_call(self, sid: str, status: str | None) -> tuple[int, dict[str, Any] | None]:
        call = self.resources.get(sid)
        if call is None or call.kind != "call":
            return self._error(404, 20404, f"The requested resource /Calls/{sid}.json was not found")
        if status == "canceled" and call.status in ("queued", "ringing"):
            call.status = "canceled"
            call.cancelled.set()
        elif status == "completed" and call.status == "in-progress":
            call.status = "completed"
            call.cancelled.set()
        return 200, self._json(call)

    # -- server ----------------------------------------------------------------------------------

    def __enter__(self) -> FakePhoneNetwork:
        network = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self, method: str) -> None:
                parts = urllib.parse.urlsplit(self.path)
                params = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
                if method == "POST":
                    length = int(self.headers.get("Content-Length") or 0)
                    body = self.rfile.read(length).decode("utf-8")
                    params += urllib.parse.parse_qsl(body, keep_blank_values=True)
                status, data = network.handle(method, parts.path, params)
                if data is None:
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                payload = json.dumps(data).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:
                if not network.media.serve(self):
                    self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="fake-phone", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        for resource in list(self.resources.values()):
            resource.cancelled.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


@contextmanager
def phone_network(account_sid: str, auth_token: str) -> Iterator[FakePhoneNetwork]:
    with FakePhoneNetwork(account_sid, auth_token) as network:
        yield network
