"""The paging webhooks: what Twilio asks when a page call is answered, the key pressed, and SMS
replies to our number. Registered on the daemon's webhook listener (intaked/channels/webhooks.py),
which has checked the request's signature before any of these run.

- ``/twilio/voice/page?attempt=<id>[&repeat=<n>]``: the TwiML of an answered page call
  (``AnsweredBy`` from answering-machine detection: a machine gets the summary and no menu);
- ``/twilio/voice/page/keypress?attempt=<id>``: the ``<Gather>`` action (1, 9, *);
- ``/twilio/sms/incoming``: an SMS to our number (``1 <code>``, ``ack <code>``, ``確認 <code>``).

Each runs in one transaction; a replayed keypress or SMS (same CallSid and key, same MessageSid)
finds its receipt and changes nothing.
"""

from __future__ import annotations

from sqlalchemy import Engine

from intaked.channels.webhooks import (
    HTTP_BAD_REQUEST,
    WebhookRequest,
    WebhookResponse,
    WebhookRoutes,
    record_receipt,
)
from intaked.config import Settings
from intaked.paging.replies import call_twiml, keypress, sms_reply, sms_twiml
from intaked.paging.texts import empty_twiml

VOICE_PAGE_PATH = "/twilio/voice/page"
KEYPRESS_PATH = "/twilio/voice/page/keypress"
SMS_INCOMING_PATH = "/twilio/sms/incoming"


def _attempt_id(request: WebhookRequest) -> int | None:
    value = request.query_get("attempt") or ""
    return int(value) if value.isdigit() else None


def register_paging_routes(routes: WebhookRoutes, settings: Settings) -> None:
    """Add the paging handlers to ``routes``."""
    base = settings.webhooks.public_url.rstrip("/")

    def voice_page(engine: Engine, request: WebhookRequest) -> WebhookResponse:
        attempt = _attempt_id(request)
        if attempt is None:
            return WebhookResponse(HTTP_BAD_REQUEST, "text/plain", "attempt missing")
        repeat = request.query_get("repeat") or "0"
        with engine.begin() as conn:
            xml = call_twiml(
                conn,
                settings,
                attempt,
                base_url=base,
                answered_by=request.get("AnsweredBy") or "",
                repeats=int(repeat) if repeat.isdigit() else 0,
                now=request.received_at,
            )
        return WebhookResponse.twiml(xml)

    def voice_keypress(engine: Engine, request: WebhookRequest) -> WebhookResponse:
        attempt = _attempt_id(request)
        if attempt is None:
            return WebhookResponse(HTTP_BAD_REQUEST, "text/plain", "attempt missing")
        digits = (request.get("Digits") or "").strip()
        call_sid = request.get("CallSid") or f"attempt-{attempt}"
        with engine.begin() as conn:
            if digits in ("1", "9") and not record_receipt(
                conn, "page_keypress", call_sid, f"{attempt}:{digits}", request.params, request.received_at
            ):
                return WebhookResponse.twiml(empty_twiml())  # a replay: already acted on
            xml = keypress(conn, settings, attempt, digits, base_url=base, now=request.received_at)
        return WebhookResponse.twiml(xml)

    def sms_incoming(engine: Engine, request: WebhookRequest) -> WebhookResponse:
        sender = request.get("From") or ""
        body = request.get("Body") or ""
        sid = request.get("MessageSid") or request.get("SmsSid") or ""
        with engine.begin() as conn:
            if sid and not record_receipt(
                conn, "sms_incoming", sid, "received", request.params, request.received_at
            ):
                return WebhookResponse.twiml(sms_twiml(None))
            answer = sms_reply(conn, settings, sender, body, now=request.received_at)
        return WebhookResponse.twiml(sms_twiml(answer))

    routes.register(VOICE_PAGE_PATH, voice_page)
    routes.register(KEYPRESS_PATH, voice_keypress)
    routes.register(SMS_INCOMING_PATH, sms_incoming)
