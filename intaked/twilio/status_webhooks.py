"""Twilio's status callbacks for page SMS and calls: ``/twilio/status/sms`` and ``/twilio/status/call``.

The dispatcher gives Twilio these URLs (``webhooks.public_url`` + path, with ``?attempt=<id>``
when the request carries a page attempt). Each callback moves the attempt forward
(intaked/outbound/attempts.py, telling the context's attempt listener), found by ``?attempt=``
or else by the Sid, in one transaction that first records a receipt keyed on (Sid, status): a
replay changes nothing.

Twilio → ``page_attempts.status``:

- SMS (``MessageStatus``): ``sent`` → sent; ``delivered`` → delivered (+ ``delivered_at``);
  ``undelivered`` / ``failed`` → failed (``error_code`` = ``ErrorCode``, e.g. 30003).
- Call (``CallStatus``): ``initiated`` → sent; ``ringing`` → ringing; ``in-progress`` /
  ``answered`` → answered (+ ``answered_at``); ``completed`` → completed (+ ``ended_at``; not an
  acknowledgement: voicemail completes a call too); ``busy`` / ``no-answer`` / ``failed`` →
  failed with ``error`` = that status (``error_code`` = ``ErrorCode`` when given); ``canceled`` →
  cancelled.

These are the reference for the escalation engine's own handlers (keypresses, SMS replies).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus

import structlog
from sqlalchemy import Engine

from intaked.outbound.attempts import AttemptListener, find_attempt_by_sid, lock_attempt, move_attempt
from intaked.store.receipts import record_receipt
from intaked.twilio.context import WebhookContext
from intaked.twilio.server import WebhookRequest, WebhookResponse

log = structlog.get_logger(__name__)

#: Twilio's MessageStatus → our attempt status (absent: nothing to record).
SMS_STATUSES: dict[str, str] = {
    "sent": "sent",
    "delivered": "delivered",
    "undelivered": "failed",
    "failed": "failed",
}
#: Twilio's CallStatus → our attempt status.
CALL_STATUSES: dict[str, str] = {
    "initiated": "sent",
    "ringing": "ringing",
    "in-progress": "answered",
    "answered": "answered",
    "completed": "completed",
    "busy": "failed",
    "no-answer": "failed",
    "failed": "failed",
    "canceled": "cancelled",
}


@dataclass(frozen=True, slots=True)
class _Callback:
    """One kind of status callback: the endpoint its receipts are recorded under, the form fields
    that carry its Sid and its status (the first one given counts), and its statuses mapped to ours."""

    endpoint: str
    sid_fields: tuple[str, ...]
    status_fields: tuple[str, ...]
    statuses: Mapping[str, str]


_SMS = _Callback("sms_status", ("MessageSid", "SmsSid"), ("MessageStatus", "SmsStatus"), SMS_STATUSES)
_CALL = _Callback("call_status", ("CallSid",), ("CallStatus",), CALL_STATUSES)


def _first(request: WebhookRequest, fields: tuple[str, ...]) -> str | None:
    """The first of ``fields`` the request gives a non-empty value (else the last one's value)."""
    value: str | None = None
    for name in fields:
        value = value or request.get(name)
    return value


def _apply(
    engine: Engine, request: WebhookRequest, on_attempt: AttemptListener, callback: _Callback
) -> WebhookResponse:
    endpoint = callback.endpoint
    sid = _first(request, callback.sid_fields)
    twilio_status = _first(request, callback.status_fields)
    if not sid or not twilio_status:
        log.warning("status_callback_incomplete", path=request.path, sid=sid, status=twilio_status)
        return WebhookResponse(HTTPStatus.BAD_REQUEST)
    bound = log.bind(sid=sid, twilio_status=twilio_status, endpoint=endpoint)
    attempt_text = request.query_get("attempt")
    now = request.received_at
    with engine.begin() as conn:
        if not record_receipt(conn, endpoint, sid, twilio_status, request.params, now):
            bound.info("status_callback_replayed")
            return WebhookResponse.empty()
        new = callback.statuses.get(twilio_status)
        if new is None:
            return WebhookResponse.empty()
        attempt = (
            lock_attempt(conn, int(attempt_text))
            if attempt_text and attempt_text.isdigit()
            else find_attempt_by_sid(conn, sid)
        )
        if attempt is None:
            bound.warning("status_callback_for_unknown_attempt", attempt=attempt_text)
            return WebhookResponse.empty()
        bound = bound.bind(attempt=attempt.id)
        if attempt.provider_sid is not None and attempt.provider_sid != sid:
            bound.warning("status_callback_for_another_sid", attempt_sid=attempt.provider_sid)
            return WebhookResponse.empty()
        code = request.get("ErrorCode") or None
        error: str | None = None
        if new == "failed":
            error = twilio_status if endpoint == "call_status" else f"{twilio_status} (error {code})"
        elif new == "cancelled":
            error = "canceled at Twilio"
        moved = move_attempt(
            conn, attempt, new, now, listener=on_attempt, provider_sid=sid, error_code=code, error=error
        )
        bound.info("status_callback", attempt_status=new if moved else str(attempt.status), moved=moved)
    return WebhookResponse.empty()


def sms_status(context: WebhookContext, engine: Engine, request: WebhookRequest) -> WebhookResponse:
    """``/twilio/status/sms``: a page SMS was sent, delivered or not."""
    return _apply(engine, request, context.on_attempt, _SMS)


def call_status(context: WebhookContext, engine: Engine, request: WebhookRequest) -> WebhookResponse:
    """``/twilio/status/call``: a page call is ringing, was answered, ended or failed."""
    return _apply(engine, request, context.on_attempt, _CALL)
