"""The paging webhooks: what Twilio asks when a page call is answered, the key pressed, and SMS
replies to our number. Served by the webhook listener (intaked/twilio/server.py, routes in
intaked/twilio/routes.py), which has checked the request's signature before any of these run.

- ``/twilio/voice/page?attempt=<id>[&repeat=<n>]``: the TwiML of an answered page call
  (``AnsweredBy`` from answering-machine detection: a machine gets the summary and no menu);
- ``/twilio/voice/page/keypress?attempt=<id>``: the ``<Gather>`` action (1, 2 for the bridge, 9, *);
- ``/twilio/sms/incoming``: an SMS to our number (``1 <code>``, ``ack <code>``, ``確認 <code>``),
  or the answer to a satisfaction survey (a score and the survey's letter code, ``5 KMPX``).

Each runs in one transaction; a replayed keypress or SMS (same CallSid and key, same MessageSid)
finds its receipt and changes nothing.
"""

from __future__ import annotations

from http import HTTPStatus

from sqlalchemy import Engine

from intaked.store.receipts import record_receipt
from intaked.surveys.inbound import answer_by_sms
from intaked.twilio.context import WebhookContext
from intaked.twilio.page_replies import PageCall, sms_reply
from intaked.twilio.server import WebhookRequest, WebhookResponse
from intaked.twilio.twiml import empty_twiml, sms_twiml

NO_ATTEMPT = WebhookResponse(HTTPStatus.BAD_REQUEST, "text/plain", "attempt missing")


def _attempt_id(request: WebhookRequest) -> int | None:
    value = request.query_get("attempt") or ""
    return int(value) if value.isdigit() else None


def voice_page(context: WebhookContext, engine: Engine, request: WebhookRequest) -> WebhookResponse:
    """The TwiML of an answered (or repeated) page call."""
    attempt = _attempt_id(request)
    if attempt is None:
        return NO_ATTEMPT
    repeat = request.query_get("repeat") or "0"
    with engine.begin() as conn:
        call = PageCall(conn, context.settings, attempt, base_url=context.base_url, now=request.received_at)
        xml = call.answered(
            answered_by=request.get("AnsweredBy") or "", repeats=int(repeat) if repeat.isdigit() else 0
        )
    return WebhookResponse.twiml(xml)


def voice_keypress(context: WebhookContext, engine: Engine, request: WebhookRequest) -> WebhookResponse:
    """A key pressed on a page call; 1, 2 and 9 act once per call and attempt."""
    attempt = _attempt_id(request)
    if attempt is None:
        return NO_ATTEMPT
    digits = (request.get("Digits") or "").strip()
    call_sid = request.get("CallSid") or f"attempt-{attempt}"
    with engine.begin() as conn:
        if digits in ("1", "2", "9") and not record_receipt(
            conn, "page_keypress", call_sid, f"{attempt}:{digits}", request.params, request.received_at
        ):
            return WebhookResponse.twiml(empty_twiml())  # a replay: already acted on
        call = PageCall(conn, context.settings, attempt, base_url=context.base_url, now=request.received_at)
        xml = call.keypress(digits)
    return WebhookResponse.twiml(xml)


def sms_incoming(context: WebhookContext, engine: Engine, request: WebhookRequest) -> WebhookResponse:
    """An SMS to our number: a page acknowledgement, or a word on why it is not one."""
    sender = request.get("From") or ""
    body = request.get("Body") or ""
    sid = request.get("MessageSid") or request.get("SmsSid") or ""
    with engine.begin() as conn:
        if sid and not record_receipt(
            conn, "sms_incoming", sid, "received", request.params, request.received_at
        ):
            return WebhookResponse.twiml(sms_twiml(None))
        if answer_by_sms(conn, context.settings, sender, body, sid=sid, now=request.received_at):
            return WebhookResponse.twiml(sms_twiml(None))  # a survey answer (intaked/surveys/)
        answer = sms_reply(conn, context.settings, sender, body, now=request.received_at)
    return WebhookResponse.twiml(sms_twiml(answer))
