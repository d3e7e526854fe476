"""The mail of a service-level report (intaked/reports/service_level.py): the table as HTML with
its chart inline, and the same figures as plain text, Traditional Chinese then English.

The message is ``multipart/alternative``: a ``text/plain`` part, then a ``multipart/related`` of
the ``text/html`` part and the chart's PNG, which the HTML shows as ``cid:<id>`` (RFC 2387,
RFC 2392). Every name that comes from the database (a team, a handler) is escaped by the HTML
template (Jinja2 autoescape).

The outbox row (kind ``mail``, purpose ``report``, no ticket) carries the whole message as built,
base64 in the payload's ``mime`` (the dispatcher sends those bytes as they are: a retry sends the
same mail), next to the usual fields (from, to, subject, text, html, message_id) for people and
tools that read the outbox (docs/schema.md, ``outbox``).
"""

from __future__ import annotations

import base64
import datetime as dt
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP, SMTPUTF8
from email.utils import format_datetime
from functools import lru_cache
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from intaked.config import Settings
from intaked.config.addresses import DEFAULT_DISPLAY_NAME
from intaked.outbound.compose import BUILTIN_TEMPLATES, new_message_id, one_line

PURPOSE = "report"
CHART_CID_PREFIX = "chart"

#: The table's columns: the row's key, its Chinese and English heading, and how it is shown.
COLUMNS: tuple[tuple[str, str, str, str], ...] = (
    ("carried_over", "前期遺留", "Carried over", "count"),
    ("new", "本期新增", "New", "count"),
    ("handled", "執行總數", "Handled", "count"),
    ("on_time", "準時完成", "On time", "count"),
    ("open_not_overdue", "未完成", "Open, not overdue", "count"),
    ("late", "逾時完成", "Late", "count"),
    ("escalated_once", "升級一次", "Escalated once", "count"),
    ("escalated_twice", "升級兩次", "Escalated twice", "count"),
    ("escalated_3_plus", "升級三次以上", "Escalated 3+", "count"),
    ("completion_rate", "完成率", "Completion rate", "rate"),
    ("service_level", "服務水準", "Service level", "rate"),
    ("avg_escalations", "平均升級次數", "Avg. escalations", "number"),
    ("commitment_kept_rate", "承諾達成率", "Commitment kept", "rate"),
    ("first_commitment_kept_rate", "一次承諾達成率", "First commitment kept", "rate"),
    ("standard_met_rate", "標準達成率", "Standard time met", "rate"),
    ("satisfaction_avg", "滿意度", "Satisfaction (1-5)", "number"),
)
HOTLINE: tuple[tuple[str, str, str, str], ...] = (
    ("calls", "來電", "Calls", "count"),
    ("answered_by_desk", "服務台接聽", "Answered by the desk", "count"),
    ("voicemail", "語音留言", "Voicemail", "count"),
    ("missed", "未接", "Missed", "count"),
    ("missed_rate", "未接率", "Missed rate", "rate"),
    ("avg_answer_seconds", "平均接聽秒數", "Avg. answer (s)", "number"),
)
GROUPINGS = {"team": "團隊", "handler": "處理人", "priority": "優先等級"}
KINDS = {
    "weekly": ("每週服務水準報告", "Weekly service-level report"),
    "monthly": ("每月服務水準報告", "Monthly service-level report"),
}
NOTHING = "—"


def shown(value: Any, how: str) -> str:
    """A figure as the table shows it: counts as they are, rates in per cent, "—" for null."""
    if value is None:
        return NOTHING
    if how == "rate":
        return f"{float(value) * 100:.1f}%"
    if how == "number":
        return f"{float(value):.2f}"
    return str(value)


def _cells(figures: dict[str, Any], columns: tuple[tuple[str, str, str, str], ...]) -> list[dict[str, str]]:
    return [{"zh": zh, "en": en, "value": shown(figures.get(key), how)} for key, zh, en, how in columns]


@lru_cache(maxsize=1)
def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(str(BUILTIN_TEMPLATES)),
        autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )


def render_report(report: dict[str, Any], *, kind: str, label: str, chart_cid: str) -> dict[str, str]:
    """Subject, text and HTML of ``report`` (the shape of ``build_report``), the HTML showing the
    chart ``cid:<chart_cid>``."""
    rows = [
        {"group": one_line(str(row["group"]), 200), "cells": _cells(row, COLUMNS), "total": False}
        for row in report["rows"]
    ]
    rows.append({"group": "合計 Total", "cells": _cells(report["total"], COLUMNS), "total": True})
    context = {
        "label": label,
        "heading_zh": KINDS[kind][0],
        "heading_en": KINDS[kind][1],
        "period_from": report["period"]["from"],
        "period_to": report["period"]["to"],
        "timezone": report["timezone"],
        "by": report["by"],
        "by_zh": GROUPINGS.get(report["by"], report["by"]),
        "columns": [{"zh": zh, "en": en} for _, zh, en, _ in COLUMNS],
        "rows": rows,
        "hotline": _cells(report.get("hotline") or {}, HOTLINE),
        "chart_cid": chart_cid,
    }
    env = _environment()
    return {
        "subject": one_line(env.get_template("report.subject.j2").render(context), 900),
        "text": env.get_template("report.txt.j2").render(context),
        "html": env.get_template("report.html.j2").render(context),
    }


def build_mime(
    settings: Settings,
    recipient: str,
    rendered: dict[str, str],
    chart: bytes | None,
    *,
    chart_cid: str,
    message_id: str,
    now: dt.datetime,
) -> bytes:
    """The RFC 5322 bytes (CRLF) of the report mail: text, and HTML related to its chart (none
    when the chart could not be drawn)."""
    sender = settings.outbound_mail.sender
    msg = EmailMessage(policy=SMTP if recipient.isascii() else SMTPUTF8)
    msg["From"] = Address(sender.display_name or DEFAULT_DISPLAY_NAME, addr_spec=sender.addr_spec)
    msg["To"] = recipient
    msg["Subject"] = rendered["subject"]
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = f"<{message_id}>"
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-responder answers it
    msg["X-Auto-Response-Suppress"] = "All"
    msg.set_content(rendered["text"], charset="utf-8", cte="base64")
    msg.add_alternative(rendered["html"], subtype="html", charset="utf-8", cte="base64")
    if chart is None:
        return msg.as_bytes()
    html = next(part for part in msg.iter_parts() if part.get_content_type() == "text/html")
    html.add_related(
        chart,
        maintype="image",
        subtype="png",
        cid=f"<{chart_cid}>",
        filename="chart.png",
        disposition="inline",
    )
    return msg.as_bytes()


def report_mail(
    settings: Settings,
    report: dict[str, Any],
    chart: bytes | None,
    *,
    kind: str,
    label: str,
    recipient: str,
    key: str,
    now: dt.datetime,
) -> dict[str, Any]:
    """The outbox row of ``report`` (with its ``chart`` PNG, if one could be drawn) to
    ``recipient``, under ``key``."""
    message_id = new_message_id(settings.outbound_mail.from_address, f"report-{kind}")
    chart_cid = f"{CHART_CID_PREFIX}.{message_id}" if chart is not None else ""
    rendered = render_report(report, kind=kind, label=label, chart_cid=chart_cid)
    raw = build_mime(
        settings, recipient, rendered, chart, chart_cid=chart_cid, message_id=message_id, now=now
    )
    sender = settings.outbound_mail.sender
    return {
        "kind": "mail",
        "purpose": PURPOSE,
        "idempotency_key": key,
        "ticket_id": None,
        "recipient": recipient,
        "payload": {
            "from": sender.addr_spec,
            "from_name": sender.display_name,
            "to": recipient,
            "to_name": "",
            "subject": rendered["subject"],
            "text": rendered["text"],
            "html": rendered["html"],
            "message_id": message_id,
            "in_reply_to": None,
            "references": [],
            "auto_submitted": "auto-generated",
            "mime": base64.b64encode(raw).decode("ascii"),
        },
    }
