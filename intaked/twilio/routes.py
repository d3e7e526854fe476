"""The table of every Twilio webhook: its path (intaked/ports/phone.py), its handler, and the part
of intaked it belongs to.

:func:`build_routes` turns the table into the listener's :class:`~intaked.twilio.server.WebhookRoutes`,
each handler given the :class:`~intaked.twilio.context.WebhookContext` (the settings and the
listener of page attempt changes). The hotline's own webhooks are served only when
``hotline.numbers`` is set.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection
from dataclasses import dataclass

from sqlalchemy import Engine

from intaked.config import Settings
from intaked.outbound.attempts import AttemptListener
from intaked.ports import phone
from intaked.twilio import hotline_webhooks, page_webhooks, status_webhooks, voicemail_webhooks
from intaked.twilio.context import WebhookContext
from intaked.twilio.server import WebhookRequest, WebhookResponse, WebhookRoutes

Endpoint = Callable[[WebhookContext, Engine, WebhookRequest], WebhookResponse]

STATUS = "status"  # Twilio's status callbacks of page SMS and calls
PAGING = "paging"  # answered page calls, keypresses, SMS replies
VOICEMAIL = "voicemail"  # recording status and transcription callbacks
HOTLINE = "hotline"  # the hotline's calls (with hotline.numbers only)
GROUPS = (STATUS, PAGING, VOICEMAIL, HOTLINE)


@dataclass(frozen=True, slots=True)
class Route:
    path: str
    handler: Endpoint
    group: str


TABLE: tuple[Route, ...] = (
    Route(phone.SMS_STATUS_PATH, status_webhooks.sms_status, STATUS),
    Route(phone.CALL_STATUS_PATH, status_webhooks.call_status, STATUS),
    Route(phone.VOICE_PAGE_PATH, page_webhooks.voice_page, PAGING),
    Route(phone.KEYPRESS_PATH, page_webhooks.voice_keypress, PAGING),
    Route(phone.SMS_INCOMING_PATH, page_webhooks.sms_incoming, PAGING),
    Route(phone.RECORDING_PATH, voicemail_webhooks.recording, VOICEMAIL),
    Route(phone.TRANSCRIPTION_PATH, voicemail_webhooks.transcription, VOICEMAIL),
    Route(phone.INCOMING_PATH, hotline_webhooks.incoming, HOTLINE),
    Route(phone.MENU_PATH, hotline_webhooks.menu, HOTLINE),
    Route(phone.SPEECH_PATH, hotline_webhooks.speech, HOTLINE),
    Route(phone.DIAL_DONE_PATH, hotline_webhooks.dial_done, HOTLINE),
    Route(phone.RECORDED_PATH, hotline_webhooks.recorded, HOTLINE),
    Route(phone.STATUS_PATH, hotline_webhooks.status, HOTLINE),
)


def build_routes(
    settings: Settings, on_attempt: AttemptListener, groups: Collection[str] | None = None
) -> WebhookRoutes:
    """The listener's routes: every group of the table (the hotline's when it is on), or ``groups``."""
    if groups is None:
        groups = [group for group in GROUPS if group != HOTLINE or settings.hotline.enabled]
    unknown = set(groups) - set(GROUPS)
    if unknown:
        raise ValueError(f"unknown webhook groups {sorted(unknown)}")
    context = WebhookContext(settings, on_attempt)
    routes = WebhookRoutes()
    for route in TABLE:
        if route.group in groups:
            routes.register(route.path, functools.partial(route.handler, context))
    return routes
