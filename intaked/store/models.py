"""The ticket store's tables: a public contract, documented in docs/schema.md.

Other tools (an agent UI, reports) read and write these tables, so they change only through
Alembic migrations (``intaked/store/migrations``), never by editing this file alone.

The tables are defined by area in ``intaked.store.tables``; this module is their public home: import
them from here.
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import Table

from intaked.store.tables.alarms import Alarm
from intaked.store.tables.base import (
    ATTEMPT_STATUSES,
    CALL_OUTCOMES,
    CATEGORIES,
    ITEM_STATES,
    NAMING_CONVENTION,
    OVERRIDE_KINDS,
    PAGE_CHANNELS,
    PAGE_STATES,
    PRIORITIES,
    TICKET_STATUSES,
    WORKER_STATES,
    Base,
    IdType,
)
from intaked.store.tables.cluster import JOB_OUTCOMES, JobRun, RateBucket
from intaked.store.tables.ledger import ImapMailbox, InboundItem
from intaked.store.tables.paging import Page, PageAttempt
from intaked.store.tables.schedules import CalendarOverride, OncallOverride
from intaked.store.tables.security import DAMAGES, INCIDENT_CATEGORIES, SecurityForm
from intaked.store.tables.surveys import SURVEY_CHANNELS, SURVEY_STATES, Survey
from intaked.store.tables.telephony import Call, HotlineCheckpoint, WebhookReceipt
from intaked.store.tables.tickets import Attachment, Blob, Message, Ticket, TicketCounter, TicketEvent
from intaked.store.tables.work import OUTBOX_STATES, OutboxEntry, Worker

__all__ = [
    "ATTEMPT_STATUSES",
    "CALL_OUTCOMES",
    "CATEGORIES",
    "DAMAGES",
    "INCIDENT_CATEGORIES",
    "ITEM_STATES",
    "JOB_OUTCOMES",
    "NAMING_CONVENTION",
    "OUTBOX_STATES",
    "OVERRIDE_KINDS",
    "PAGE_CHANNELS",
    "PAGE_STATES",
    "PRIORITIES",
    "SURVEY_CHANNELS",
    "SURVEY_STATES",
    "TICKET_STATUSES",
    "WORKER_STATES",
    "Alarm",
    "Attachment",
    "Base",
    "Blob",
    "CalendarOverride",
    "Call",
    "HotlineCheckpoint",
    "IdType",
    "ImapMailbox",
    "InboundItem",
    "JobRun",
    "Message",
    "OncallOverride",
    "OutboxEntry",
    "Page",
    "PageAttempt",
    "RateBucket",
    "SecurityForm",
    "Survey",
    "Ticket",
    "TicketCounter",
    "TicketEvent",
    "WebhookReceipt",
    "Worker",
    "alarm_table",
    "attachment_table",
    "blob_table",
    "calendar_override_table",
    "call_table",
    "hotline_checkpoint_table",
    "imap_mailbox_table",
    "inbound_item_table",
    "job_run_table",
    "message_table",
    "oncall_override_table",
    "outbox_table",
    "page_attempt_table",
    "page_table",
    "rate_bucket_table",
    "security_form_table",
    "survey_table",
    "ticket_counter_table",
    "ticket_event_table",
    "ticket_table",
    "webhook_receipt_table",
    "worker_table",
]

# The tables as Core ``Table`` objects, for the set-based statements of the hot paths.
ticket_table = cast(Table, Ticket.__table__)
inbound_item_table = cast(Table, InboundItem.__table__)
message_table = cast(Table, Message.__table__)
attachment_table = cast(Table, Attachment.__table__)
blob_table = cast(Table, Blob.__table__)
ticket_event_table = cast(Table, TicketEvent.__table__)
ticket_counter_table = cast(Table, TicketCounter.__table__)
imap_mailbox_table = cast(Table, ImapMailbox.__table__)
outbox_table = cast(Table, OutboxEntry.__table__)
calendar_override_table = cast(Table, CalendarOverride.__table__)
oncall_override_table = cast(Table, OncallOverride.__table__)
page_table = cast(Table, Page.__table__)
page_attempt_table = cast(Table, PageAttempt.__table__)
webhook_receipt_table = cast(Table, WebhookReceipt.__table__)
call_table = cast(Table, Call.__table__)
hotline_checkpoint_table = cast(Table, HotlineCheckpoint.__table__)
worker_table = cast(Table, Worker.__table__)
alarm_table = cast(Table, Alarm.__table__)
job_run_table = cast(Table, JobRun.__table__)
rate_bucket_table = cast(Table, RateBucket.__table__)
survey_table = cast(Table, Survey.__table__)
security_form_table = cast(Table, SecurityForm.__table__)
