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


@dataclass(frozen=True, slots=True)
class Route:
    path: str
    handler: Endpoint
    group: str


#: Each group's webhooks: (path, handler).
_BY_GROUP: dict[str, tuple[tuple[str, Endpoint], ...]] = {
    STATUS: (
        (phone.SMS_STATUS_PATH, status_webhooks.sms_status),
        (phone.CALL_STATUS_PATH, status_webhooks.call_status),
    ),
    PAGING: (
        (phone.VOICE_PAGE_PATH, page_webhooks.voice_page),
        (phone.KEYPRESS_PATH, page_webhooks.voice_keypress),
        (phone.SMS_INCOMING_PATH, page_webhooks.sms_incoming),
    ),
    VOICEMAIL: (
        (phone.RECORDING_PATH, voicemail_webhooks.recording),
        (phone.TRANSCRIPTION_PATH, voicemail_webhooks.transcription),
    ),
    HOTLINE: (
        (phone.INCOMING_PATH, hotline_webhooks.incoming),
        (phone.MENU_PATH, hotline_webhooks.menu),
        (phone.SPEECH_PATH, hotline_webhooks.speech),
        (phone.DIAL_DONE_PATH, hotline_webhooks.dial_done),
        (phone.RECORDED_PATH, hotline_webhooks.recorded),
        (phone.STATUS_PATH, hotline_webhooks.status),
    ),
}
GROUPS = tuple(_BY_GROUP)
TABLE: tuple[Route, ...] = tuple(
    Route(path, handler, group) for group, routes in _BY_GROUP.items() for path, handler in routes
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
