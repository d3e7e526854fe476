"""Composing outbound mail: acknowledgements from the Jinja2 templates, then RFC 5322 bytes.

What is queued in the outbox is the finished mail as data (addresses, subject, our Message-ID,
text and HTML), so a retry sends exactly the same message. Headers are built with the standard
library's SMTP policy from values stripped of control characters: a subject with CR/LF or an
encoded-word that decodes to one can never add a header.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from email.header import Header
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import compat32
from email.utils import format_datetime, formataddr
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

BUILTIN_TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")
CHANNEL_NAMES = {"email": ("電子郵件", "e-mail"), "phone": ("電話", "phone")}
STATUS_NAMES = {
    "new": "新案件，待處理",
    "open": "處理中",
    "pending": "等待您的回覆",
    "resolved": "已解決",
    "closed": "已結案",
}


def one_line(value: str | None, limit: int = 500) -> str:
    """A header-safe single line: control characters (CR, LF, ...) become one space."""
    return _CONTROL.sub(" ", value or "").strip()[:limit]


@lru_cache(maxsize=8)
def _environment(directory: str) -> Environment:
    return Environment(
        loader=FileSystemLoader(directory or str(BUILTIN_TEMPLATES)),
        autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )


def new_message_id(from_address: str, purpose: str) -> str:
    """A unique Message-ID (without brackets) in the domain of our From: address."""
    domain = from_address.rpartition("@")[2] or "localhost"
    return f"{purpose}.{uuid.uuid4().hex}@{domain}"


def render_ack(
    ticket: dict[str, Any],
    *,
    requester_name: str | None,
    received_at: dt.datetime,
    timezone: str,
    templates_dir: str = "",
    template: str = "ack",
) -> dict[str, str]:
    """Subject, text and HTML of the acknowledgement for ``ticket`` (number, subject, status, ...)."""
    env = _environment(templates_dir)
    zh, en = CHANNEL_NAMES.get(
        ticket.get("channel") or "email", (ticket.get("channel"), ticket.get("channel"))
    )
    subject = one_line(ticket.get("subject"))
    context: dict[str, Any] = {
        "ticket": {"priority": None, **ticket, "subject": subject},
        "requester_name": one_line(requester_name, 100) or None,
        "received_local": received_at.astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M (%Z, UTC%z)"),
        "channel_zh": zh,
        "channel_en": en,
        "status_zh": STATUS_NAMES.get(ticket.get("status") or "", ticket.get("status")),
        "response_due": ticket.get("response_due"),
        "resolution_due": ticket.get("resolution_due"),
    }
    out = {"text": env.get_template(f"{template}.txt.j2").render(context)}
    if template == "ack":
        out["subject"] = one_line(env.get_template("ack.subject.j2").render(context), 900)
        out["html"] = env.get_template("ack.html.j2").render(context)
    else:
        out["subject"] = one_line(f"[{ticket['number']}] {subject}", 900)
    return out


def render_notice(template: str, context: dict[str, Any], templates_dir: str = "") -> dict[str, str]:
    """Subject and text of a notice from ``<template>.subject.j2`` and ``<template>.txt.j2``."""
    env = _environment(templates_dir)
    ticket = context.get("ticket", {})
    safe = {**context, "ticket": {**ticket, "subject": one_line(ticket.get("subject"))}}
    return {
        "subject": one_line(env.get_template(f"{template}.subject.j2").render(safe), 900),
        "text": env.get_template(f"{template}.txt.j2").render(safe),
    }


def mail_payload(
    *,
    from_address: str,
    to_address: str,
    to_name: str | None,
    rendered: dict[str, str],
    message_id: str,
    in_reply_to: str | None,
    references: list[str],
    auto_submitted: str = "auto-replied",
) -> dict[str, Any]:
    """The outbox payload of one mail (``auto_submitted``: RFC 3834, "auto-replied" for answers to
    a message, "auto-generated" for notices of our own)."""
    return {
        "from": from_address,
        "to": to_address,
        "to_name": one_line(to_name, 100),
        "subject": rendered["subject"],
        "text": rendered["text"],
        "html": rendered.get("html"),
        "message_id": message_id,
        "in_reply_to": in_reply_to,
        "references": references,
        "auto_submitted": auto_submitted,
    }


def build_message(payload: dict[str, Any], now: dt.datetime) -> bytes:
    """The RFC 5322 bytes (CRLF line ends) of an outbox mail payload.

    Built with the standard library's compat32 MIME classes, about five times cheaper than the
    ``email.policy.SMTP`` header registry at the same safety: every value is one line (no CR/LF),
    non-ASCII text becomes RFC 2047 encoded-words, bodies are UTF-8 in base64.
    """
    msg = MIMEMultipart("alternative") if payload.get("html") else MIMEText(payload["text"], "plain", "utf-8")
    if isinstance(msg, MIMEMultipart):
        msg.attach(MIMEText(payload["text"], "plain", "utf-8"))
        msg.attach(MIMEText(payload["html"], "html", "utf-8"))
    msg["From"] = formataddr(("IT 服務台 IT Service Desk", one_line(payload["from"])), charset="utf-8")
    msg["To"] = formataddr((one_line(payload.get("to_name"), 100), one_line(payload["to"])), charset="utf-8")
    msg["Subject"] = Header(one_line(payload["subject"], 900), "utf-8")  # type: ignore[assignment]  # documented compat32 use
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = f"<{one_line(payload['message_id'])}>"
    if payload.get("in_reply_to"):
        msg["In-Reply-To"] = f"<{one_line(payload['in_reply_to'])}>"
    references = [one_line(r) for r in payload.get("references") or [] if r]
    if references:
        msg["References"] = " ".join(f"<{r}>" for r in references)
    msg["Auto-Submitted"] = one_line(payload.get("auto_submitted")) or "auto-replied"
    msg["X-Auto-Response-Suppress"] = "All"
    msg["Precedence"] = "auto_reply"
    raw: bytes = msg.as_bytes(policy=compat32.clone(linesep="\r\n"))
    return raw
