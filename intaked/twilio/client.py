"""The phone provider port (intaked/ports/phone.py) over Twilio's REST API: a thin, classified
client over twilio-python 9. Built once per process by the daemon and passed in.

Twilio's API v2010 (Messages and Calls resources) is reached through the official library, with
one change: every ``*.twilio.com`` URL the library builds is rewritten to ``twilio.api_base_url``
by :class:`RebasedHttpClient` (tests point it at Prism; never set through the environment, which
the library would also read).

Every failure is classified for the outbox (the port's failure types):

- :class:`TemporaryFailure`: HTTP 429 (error 20429: not processed, safe to retry), 5xx, timeouts
  and connection errors. ``unknown_outcome`` is true when the request may have reached Twilio
  (a read timeout, a connection dropped after sending, a 5xx): Twilio may have acted, so the
  dispatcher asks the list API before sending again.
- :class:`PermanentFailure`: any other 4xx, carrying Twilio's error code (21211 invalid To,
  21610 unsubscribed recipient, ...). Prism's 422 validation text is kept in the message.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import threading
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
import structlog
from twilio.base.exceptions import TwilioException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from intaked.config import Settings, TwilioSettings
from intaked.ports.phone import (
    CallRequest,
    ListedCall,
    ListedRecording,
    PermanentFailure,
    ProviderRecord,
    TemporaryFailure,
)
from intaked.twilio.media import download_recording

log = structlog.get_logger(__name__)

#: Twilio error codes that mean a call is already over (nothing left to cancel).
CALL_ALREADY_ENDED_CODES = frozenset({20404, 21220})
#: How many of a number's newest messages or calls reconciliation looks at.
RECONCILE_LIMIT = 50
#: At most this many calls per hotline number and reconciliation pass.
HOTLINE_LIST_LIMIT = 1000


class RebasedHttpClient(TwilioHttpClient):  # type: ignore[misc]
    """twilio-python's HTTP client, sending every ``*.twilio.com`` request to ``base_url`` instead,
    and keeping the last error body per thread (Prism's validation text is otherwise lost)."""

    def __init__(self, base_url: str, timeout: float) -> None:
        super().__init__(pool_connections=True, timeout=timeout)
        base = urlsplit(base_url)
        self._scheme, self._netloc = base.scheme, base.netloc
        self._local = threading.local()

    def rebase(self, url: str) -> str:
        """``url`` with scheme and host replaced when it points at Twilio."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        if host == "twilio.com" or host.endswith(".twilio.com"):
            return urlunsplit((self._scheme, self._netloc, parts.path, parts.query, parts.fragment))
        return url

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        """The library's request, sent to the rebased ``url`` (everything else passed on as is)."""
        response: Response = super().request(method, self.rebase(url), *args, **kwargs)
        self._local.last_error_text = response.text if response.status_code >= 400 else ""
        return response

    def last_error_text(self) -> str:
        """The body of this thread's last error response ("" when it succeeded)."""
        return str(getattr(self._local, "last_error_text", ""))


def _validation_text(body: str) -> str:
    """Prism's (or Twilio's) explanation from an error body, as one line."""
    try:
        data = json.loads(body)
    except ValueError:
        return body.strip()[:500]
    if not isinstance(data, dict):
        return ""
    parts = [str(data[key]) for key in ("message", "title", "detail") if data.get(key)]
    for item in data.get("validation") or []:
        if isinstance(item, dict):
            where = ".".join(str(p) for p in item.get("location") or [])
            parts.append(f"{where}: {item.get('message')}")
    return "; ".join(parts)


def _parse_date(value: object) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if isinstance(value, str) and value:
        try:
            return email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
    return None


class TwilioClient:
    """:class:`~intaked.ports.phone.PhoneProvider` on Twilio; thread-safe (one connection pool,
    shared by the sending loops)."""

    def __init__(self, settings: TwilioSettings) -> None:
        self._settings = settings
        self.http = RebasedHttpClient(settings.api_base_url, settings.timeout_seconds)
        self._client = Client(
            settings.account_sid,
            settings.auth_token.get_secret_value(),
            account_sid=settings.account_sid,
            http_client=self.http,
            environment={"TWILIO_ACCOUNT_SID": settings.account_sid},  # never os.environ's region/edge
        )
        self._account = self._client.api.v2010.accounts(settings.account_sid)

    def _call(self, what: str, function: Any, **kwargs: Any) -> Any:
        """Run one library call, turning every failure into a classified :class:`TwilioFailure`."""
        try:
            return function(**kwargs)
        except TwilioException as exc:
            status = int(getattr(exc, "status", 0) or 0)
            if not status and len(exc.args) > 1 and hasattr(exc.args[1], "status_code"):
                status = int(exc.args[1].status_code)  # "Unable to fetch page" carries the response
            code = getattr(exc, "code", None)
            code = int(code) if isinstance(code, int) and code != status else None
            detail = _validation_text(self.http.last_error_text()) or str(getattr(exc, "msg", exc))
            message = f"{what}: HTTP {status}" + (f" error {code}" if code else "") + f": {detail}"
            if status == 429:
                raise TemporaryFailure(message, status=status) from None
            if status >= 500:
                raise TemporaryFailure(message, unknown_outcome=True, status=status) from None
            if 400 <= status < 500:
                raise PermanentFailure(message, code=code, status=status) from None
            raise TemporaryFailure(f"{what}: {exc!r}", unknown_outcome=True) from None
        except requests.exceptions.ConnectTimeout as exc:
            raise TemporaryFailure(f"{what}: cannot connect to Twilio: {exc}") from None
        except requests.exceptions.ReadTimeout as exc:
            raise TemporaryFailure(f"{what}: no answer in time: {exc}", unknown_outcome=True) from None
        except requests.exceptions.ConnectionError as exc:
            text = str(exc)
            before_send = any(
                mark in text for mark in ("NewConnectionError", "Connection refused", "Name or service")
            )
            raise TemporaryFailure(
                f"{what}: connection failed: {text}", unknown_outcome=not before_send
            ) from None
        except requests.exceptions.RequestException as exc:
            raise TemporaryFailure(f"{what}: {exc}", unknown_outcome=True) from None

    def send_sms(self, to: str, body: str, status_callback: str | None) -> str:
        """Queue an SMS at Twilio; returns its Message Sid (SM...)."""
        kwargs: dict[str, Any] = {"to": to, "from_": self._settings.from_number, "body": body}
        if status_callback:
            kwargs["status_callback"] = status_callback
        message = self._call("create message", self._account.messages.create, **kwargs)
        return str(message.sid)

    def create_call(self, call: CallRequest) -> str:
        """Place ``call`` (the TwiML at its ``url``, or its inline ``twiml``); returns its Call Sid."""
        kwargs: dict[str, Any] = {"to": call.to, "from_": self._settings.from_number}
        if call.url is not None:
            kwargs["url"] = call.url
        else:
            kwargs["twiml"] = call.twiml
        if call.status_callback:
            kwargs["status_callback"] = call.status_callback
            kwargs["status_callback_event"] = list(call.status_events)
            kwargs["status_callback_method"] = "POST"
        detection = (
            self._settings.machine_detection if call.machine_detection is None else call.machine_detection
        )
        if detection:
            kwargs["machine_detection"] = detection
        if call.timeout is not None:
            kwargs["timeout"] = call.timeout
        created = self._call("create call", self._account.calls.create, **kwargs)
        return str(created.sid)

    def cancel_call(self, sid: str) -> str:
        """Stop a call: ``canceled`` while queued or ringing, hung up (``completed``) once answered.
        A call that is already over or unknown to Twilio counts as stopped. Returns its status."""
        status = self._set_call_status("cancel call", sid, "canceled")
        if status == "in-progress":
            status = self._set_call_status("hang up call", sid, "completed")
        return status

    def _set_call_status(self, what: str, sid: str, status: str) -> str:
        """Ask Twilio to move call ``sid`` to ``status``; the status it reports then, or ``ended``
        when the call is already over or unknown to Twilio."""
        try:
            call = self._call(what, self._account.calls(sid).update, status=status)
        except PermanentFailure as exc:
            if exc.code in CALL_ALREADY_ENDED_CODES or exc.status == 404:
                return "ended"
            raise
        return str(call.status)

    def find_messages(self, to: str, since: dt.datetime) -> list[ProviderRecord]:
        """The messages to ``to`` created at or after ``since`` (of its newest few), newest first."""
        found = self._call("list messages", self._account.messages.page, to=to, page_size=RECONCILE_LIMIT)
        return self._since(
            [ProviderRecord(m.sid, m.to, str(m.status), m.body, _parse_date(m.date_created)) for m in found],
            since,
        )

    def find_calls(self, to: str, since: dt.datetime) -> list[ProviderRecord]:
        """The calls to ``to`` created at or after ``since`` (of its newest few), newest first."""
        found = self._call("list calls", self._account.calls.page, to=to, page_size=RECONCILE_LIMIT)
        return self._since(
            [ProviderRecord(c.sid, c.to, str(c.status), None, _parse_date(c.date_created)) for c in found],
            since,
        )

    def list_recordings_of(self, call_sid: str) -> list[ListedRecording]:
        """The recordings of call ``call_sid`` (a voicemail whose callback was lost)."""
        found = self._call("list recordings", self._account.recordings.list, call_sid=call_sid, limit=20)
        out = []
        for r in found:
            duration = str(r.duration or "")
            out.append(
                ListedRecording(
                    sid=str(r.sid),
                    call_sid=str(r.call_sid or call_sid),
                    status=str(r.status or ""),
                    duration=int(duration) if duration.isdigit() else None,
                    error_code=str(r.error_code) if r.error_code else "",
                )
            )
        return out

    def list_calls_to(self, to: str, since: dt.datetime, limit: int = HOTLINE_LIST_LIMIT) -> list[ListedCall]:
        """The calls to ``to`` that started at or after ``since`` (every page, at most ``limit``).
        Twilio filters ``StartTime>`` by whole days (UTC): the rest is filtered here."""
        day = dt.datetime.combine(since.astimezone(dt.UTC).date(), dt.time(0), dt.UTC)
        found = self._call(
            "list calls",
            self._account.calls.list,
            to=to,
            start_time_after=day,
            page_size=min(limit, 100),
            limit=limit,
        )
        floor = since.replace(microsecond=0)
        calls = []
        for c in found:
            started = _parse_date(c.start_time) or _parse_date(c.date_created)
            if started is not None and started < floor:
                continue
            duration = str(c.duration or "")
            calls.append(
                ListedCall(
                    sid=str(c.sid),
                    from_number=str(c._from or ""),
                    to=str(c.to or ""),
                    status=str(c.status or ""),
                    direction=str(c.direction or ""),
                    start_time=started,
                    duration=int(duration) if duration.isdigit() else None,
                    caller_name=str(c.caller_name) if c.caller_name else None,
                )
            )
        return calls

    def fetch_recording(self, recording_sid: str) -> tuple[bytes, str]:
        """The media of ``recording_sid`` (intaked/twilio/media.py)."""
        return download_recording(self._settings, recording_sid)

    @staticmethod
    def _since(records: list[ProviderRecord], since: dt.datetime) -> list[ProviderRecord]:
        # Twilio's dates have whole seconds: compare at that precision.
        floor = since.replace(microsecond=0)
        return [r for r in records if r.date_created is None or r.date_created >= floor]


def phone_provider(settings: Settings) -> TwilioClient | None:
    """The phone provider of a process (None while ``[twilio]`` is off): the daemon and each back
    office process build it once and pass it to everything that sends, lists or downloads."""
    return TwilioClient(settings.twilio) if settings.twilio.enabled else None
