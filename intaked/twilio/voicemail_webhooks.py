"""The voicemail webhooks: Twilio's recording status and transcription callbacks.

Served by the webhook listener (intaked/twilio/server.py, routes in intaked/twilio/routes.py),
which has checked the signature before any of these run (a forged request gets 403 and changes nothing):

- ``/twilio/voice/recording``: the ``<Record>`` verb's ``recordingStatusCallback`` (AccountSid,
  CallSid, RecordingSid, RecordingUrl, RecordingStatus, RecordingDuration, RecordingChannels,
  ErrorCode). A completed recording is *queued* for download (an outbox row of kind
  ``recording``; the voicemail fetcher in the outbox process downloads and attaches it: never
  here, inside the request's transaction); an absent, failed, silent (16102), too short (16101)
  or empty one leaves the call ``missed``, flagged for a call-back;
- ``/twilio/voice/transcription``: the ``transcribeCallback`` (TranscriptionSid,
  TranscriptionText, TranscriptionStatus, RecordingSid, CallSid): the transcript joins the call.

Both run in one transaction each and keep a receipt (``webhook_receipts``), so a replay or a
retry (same RecordingSid and status, same TranscriptionSid) changes nothing. A callback whose
CallSid has no ``calls`` row yet (the call's own webhook was lost or is still on its way) is
answered 200 with nothing changed but its parameters kept as a receipt of endpoint
``recording_status_unmatched`` / ``transcription_unmatched`` (logged as a warning), for
reconciliation or a person to apply later; Twilio does not retry a 200, and a non-2xx answer would
only make it retry into the same gap. Malformed Sids get 400.
"""

from __future__ import annotations

from http import HTTPStatus

from sqlalchemy import Engine

from intaked.hotline.callbacks import (
    RecordingStatus,
    Transcription,
    apply_recording_status,
    apply_transcription,
)
from intaked.hotline.recordings import CALL_SID, RECORDING_SID, TRANSCRIPTION_SID
from intaked.twilio.context import WebhookContext
from intaked.twilio.server import WebhookRequest, WebhookResponse


def _bad(reason: str) -> WebhookResponse:
    return WebhookResponse(HTTPStatus.BAD_REQUEST, "text/plain", reason)


def recording(context: WebhookContext, engine: Engine, request: WebhookRequest) -> WebhookResponse:
    """``/twilio/voice/recording``: a recording completed, was absent or failed."""
    status = RecordingStatus.from_params(request.get)
    if not CALL_SID.fullmatch(status.call_sid) or not RECORDING_SID.fullmatch(status.recording_sid):
        return _bad("CallSid or RecordingSid missing or malformed")
    with engine.begin() as conn:
        apply_recording_status(conn, context.settings, status, request.params, request.received_at)
    return WebhookResponse.empty()


def transcription(context: WebhookContext, engine: Engine, request: WebhookRequest) -> WebhookResponse:
    """``/twilio/voice/transcription``: a voicemail's transcript."""
    t = Transcription.from_params(request.get)
    if not TRANSCRIPTION_SID.fullmatch(t.transcription_sid):
        return _bad("TranscriptionSid missing or malformed")
    if not CALL_SID.fullmatch(t.call_sid) and not RECORDING_SID.fullmatch(t.recording_sid):
        return _bad("CallSid and RecordingSid missing or malformed")
    with engine.begin() as conn:
        apply_transcription(conn, t, request.params, request.received_at)
    return WebhookResponse.empty()
