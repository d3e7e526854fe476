"""The hotline's webhooks: Twilio asks what to do with a call to a hotline number, and reports
the key pressed, the desk's answer, the voicemail and the call's end. Served by the webhook
listener (intaked/twilio/server.py, routes in intaked/twilio/routes.py; only when
``hotline.numbers`` is set), which has checked the signature first: a forged request gets 403 and
files nothing.

- ``/twilio/voice/incoming`` (the number's "A call comes in"): files the ticket (or joins the
  caller's open one), answers with the greeting and the one-key menu;
- ``/twilio/voice/menu`` (the menu's ``<Gather>`` action; no ``Digits``: 2): routes the ticket,
  reads its number digit by digit, then rings the desk during its working time or goes to the
  voicemail (``<Record>``);
- ``/twilio/voice/speech`` (the spoken description's ``<Gather input="speech">`` action:
  SpeechResult, Confidence): the call's transcript; then the voicemail;
- ``/twilio/voice/dial-done`` (``<Dial>`` action, ``DialCallStatus``): answered by the desk, or on
  to the voicemail;
- ``/twilio/voice/recorded`` (``<Record>`` action: RecordingUrl, RecordingDuration, Digits): a
  voicemail was left (duration > 0); thanks and hangs up;
- ``/twilio/status/hotline`` (the number's "Call status changes": CallStatus, CallDuration): the
  call's end; a call that ended without a voicemail or the desk is a missed call.

The recording and transcription callbacks (``/twilio/voice/recording``,
``/twilio/voice/transcription``) are in intaked/twilio/voicemail_webhooks.py.

Each handler is one transaction. A call whose incoming webhook was lost is recorded by whichever
webhook of it arrives first (the parameters carry From and To). Replays change nothing: the call
is idempotent on its CallSid, the menu's first choice counts, and the voicemail, desk and status
events are kept in ``webhook_receipts``.
"""

from __future__ import annotations

import structlog
from sqlalchemy import Connection, Engine

from intaked.config import Settings
from intaked.hotline.callbacks import whole_number
from intaked.hotline.calls import CallFacts, desk_available, record_call, set_menu_choice
from intaked.hotline.progress import call_status, speech_heard, voicemail_left
from intaked.store.receipts import record_receipt
from intaked.twilio.context import WebhookContext
from intaked.twilio.hotline_twiml import (
    HotlineUrls,
    after_menu_twiml,
    after_speech_twiml,
    goodbye_twiml,
    greeting_twiml,
    refused_twiml,
    voicemail_twiml,
)
from intaked.twilio.server import WebhookRequest, WebhookResponse
from intaked.twilio.twiml import empty_twiml

log = structlog.get_logger(__name__)

DESK_ANSWERED = frozenset({"completed", "answered"})


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


def _facts(request: WebhookRequest) -> CallFacts:
    return CallFacts(
        call_sid=request.get("CallSid") or "",
        from_number=(request.get("From") or "").strip(),
        to_number=(request.get("To") or "").strip(),
        caller_name=request.get("CallerName") or None,
        started_at=request.received_at,
        status=request.get("CallStatus") or None,
    )


def _hotline_call(settings: Settings, facts: CallFacts) -> bool:
    return bool(facts.call_sid) and facts.to_number in settings.hotline.numbers


def _ensure_call(conn: Connection, settings: Settings, request: WebhookRequest) -> bool:
    """Record the call if its incoming webhook never came; False when it is not a hotline call."""
    facts = _facts(request)
    if not _hotline_call(settings, facts):
        return False
    record_call(conn, settings, facts, request.received_at)
    return True


def incoming(context: WebhookContext, engine: Engine, request: WebhookRequest) -> WebhookResponse:
    """A call comes in: file its ticket (or join the caller's open one); greet and offer the menu."""
    settings = context.settings
    facts = _facts(request)
    if not _hotline_call(settings, facts):
        log.warning("hotline_call_refused", call_sid=facts.call_sid, to=facts.to_number)
        return WebhookResponse.twiml(refused_twiml(settings))
    with engine.begin() as conn:
        record_call(conn, settings, facts, request.received_at)
    return WebhookResponse.twiml(greeting_twiml(settings, HotlineUrls.from_settings(settings)))


def menu(context: WebhookContext, engine: Engine, request: WebhookRequest) -> WebhookResponse:
    """The menu's key: route the ticket, read its number, then the desk or the voicemail."""
    settings = context.settings
    sid = request.get("CallSid") or ""
    with engine.begin() as conn:
        if not _ensure_call(conn, settings, request):
            return WebhookResponse.twiml(refused_twiml(settings))
        outcome = set_menu_choice(conn, settings, sid, request.get("Digits"), request.received_at)
        dial = desk_available(conn, settings, request.received_at)
    return WebhookResponse.twiml(
        after_menu_twiml(
            settings,
            HotlineUrls.from_settings(settings),
            ticket_number=outcome.ticket_number,
            joined=outcome.joined,
            emergency=outcome.emergency,
            paged=outcome.paged,
            dial_desk=dial,
        )
    )


def dial_done(context: WebhookContext, engine: Engine, request: WebhookRequest) -> WebhookResponse:
    """The desk answered (goodbye after the conversation), or not (the voicemail)."""
    settings = context.settings
    sid = request.get("CallSid") or ""
    dial_status = (request.get("DialCallStatus") or "").strip()
    answered = dial_status in DESK_ANSWERED
    with engine.begin() as conn:
        if not _ensure_call(conn, settings, request):
            return WebhookResponse.twiml(empty_twiml())
        if answered and record_receipt(
            conn, "hotline_dial", sid, dial_status, request.params, request.received_at
        ):
            call_status(conn, settings, sid, "in-progress", None, True, request.received_at)
    if answered:
        return WebhookResponse.twiml(goodbye_twiml(settings, left_message=False))
    return WebhookResponse.twiml(voicemail_twiml(settings, HotlineUrls.from_settings(settings)))


def recorded(context: WebhookContext, engine: Engine, request: WebhookRequest) -> WebhookResponse:
    """The ``<Record>`` ended: a voicemail was left (duration > 0) or not; thanks and hangs up."""
    settings = context.settings
    sid = request.get("CallSid") or ""
    seconds = whole_number(request.get("RecordingDuration")) or 0
    left = bool(request.get("RecordingUrl")) and seconds > 0
    with engine.begin() as conn:
        if not _ensure_call(conn, settings, request):
            return WebhookResponse.twiml(empty_twiml())
        if left and record_receipt(
            conn, "hotline_recorded", sid, "recorded", request.params, request.received_at
        ):
            voicemail_left(conn, settings, sid, seconds, request.received_at)
    return WebhookResponse.twiml(goodbye_twiml(settings, left_message=left))


def speech(context: WebhookContext, engine: Engine, request: WebhookRequest) -> WebhookResponse:
    """The caller's spoken description; then the voicemail."""
    settings = context.settings
    sid = request.get("CallSid") or ""
    said = request.get("SpeechResult") or ""
    confidence = _float(request.get("Confidence"))
    with engine.begin() as conn:
        if not _ensure_call(conn, settings, request):
            return WebhookResponse.twiml(empty_twiml())
        if record_receipt(conn, "hotline_speech", sid, "speech", request.params, request.received_at):
            speech_heard(conn, settings, sid, said, confidence, request.received_at)
    return WebhookResponse.twiml(after_speech_twiml(settings, HotlineUrls.from_settings(settings)))


def status(context: WebhookContext, engine: Engine, request: WebhookRequest) -> WebhookResponse:
    """The call's end; one that ended without a voicemail or the desk is a missed call."""
    settings = context.settings
    sid = request.get("CallSid") or ""
    call_state = (request.get("CallStatus") or "").strip()
    with engine.begin() as conn:
        if not _ensure_call(conn, settings, request):
            return WebhookResponse.empty()
        if record_receipt(conn, "hotline_status", sid, call_state, request.params, request.received_at):
            call_status(
                conn,
                settings,
                sid,
                call_state or None,
                whole_number(request.get("CallDuration")),
                False,
                request.received_at,
            )
    return WebhookResponse.empty()
