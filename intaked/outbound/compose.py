"""Composing outbound mail: acknowledgements from the Jinja2 templates, then RFC 5322 bytes.

What is queued in the outbox is the finished mail as data (addresses, subject, our Message-ID,
text and HTML), so a retry sends exactly the same message. Headers are built with the standard
library's SMTP policy from values stripped of control characters: a subject with CR/LF or an
encoded-word that decodes to one can never add a header.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
import uuid
from email.header import Header
from email.headerregistry import Address
from email.message import EmailMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import SMTPUTF8, compat32
from email.utils import format_datetime, formataddr
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined, select_autoescape

from intaked.config.addresses import DEFAULT_DISPLAY_NAME, SenderAddress, parse_sender

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
    """Templates from the operator's ``acknowledgements.templates_dir`` first, intaked's own for
    any it does not hold: a directory with the one template an operator changed keeps working
    when a release adds notices."""
    own = FileSystemLoader(str(BUILTIN_TEMPLATES))
    return Environment(
        loader=ChoiceLoader([FileSystemLoader(directory), own]) if directory else own,
        autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )


def new_message_id(from_address: str, purpose: str) -> str:
    """A unique Message-ID (without brackets) in the domain of our From: address
    (``outbound_mail.from_address``, with or without a display name)."""
    try:
        domain = parse_sender(from_address).domain
    except ValueError:
        domain = "localhost"
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
    a message, "auto-generated" for notices of our own). ``from_address`` is the configured one:
    the payload keeps its bare address (``from``, also the envelope sender) and display name."""
    try:
        sender = parse_sender(from_address)
        from_addr, from_name = sender.addr_spec, sender.display_name
    except ValueError:  # not from a validated configuration: kept, and refused when built
        from_addr, from_name = from_address, ""
    return {
        "from": from_addr,
        "from_name": from_name,
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


def needs_smtputf8(payload: dict[str, Any]) -> bool:
    """Whether the mail's recipient needs SMTPUTF8 (RFC 6531), such as josé@example.com (our own
    address is ASCII: intaked/config/addresses.py)."""
    return not str(payload["to"]).isascii()


def build_message(payload: dict[str, Any], now: dt.datetime) -> bytes:
    """The RFC 5322 bytes (CRLF line ends) of an outbox mail payload.

    Built with the standard library's compat32 MIME classes, about five times cheaper than the
    ``email.policy.SMTP`` header registry at the same safety: every value is one line (no CR/LF),
    non-ASCII text becomes RFC 2047 encoded-words, bodies are UTF-8 in base64. A mail to a UTF-8
    address (:func:`needs_smtputf8`) is built with the SMTPUTF8 policy instead: its headers are
    UTF-8 as they are, for a relay that offers SMTPUTF8. A payload with ``mime`` (base64) is a
    mail composed whole when it was queued: those bytes are sent as they are.
    """
    if payload.get("mime"):  # composed whole when queued (a report and its chart: intaked/reports/)
        return base64.b64decode(payload["mime"], validate=True)
    sender = parse_sender(one_line(payload["from"]))  # a bare address; "Name <address>" in old rows
    from_name = one_line(payload.get("from_name"), 200) or sender.display_name or DEFAULT_DISPLAY_NAME
    if needs_smtputf8(payload):
        return _build_utf8_message(payload, now, sender, from_name)
    msg = MIMEMultipart("alternative") if payload.get("html") else MIMEText(payload["text"], "plain", "utf-8")
    if isinstance(msg, MIMEMultipart):
        msg.attach(MIMEText(payload["text"], "plain", "utf-8"))
        msg.attach(MIMEText(payload["html"], "html", "utf-8"))
    msg["From"] = sender.header_value(from_name)
    msg["To"] = formataddr((one_line(payload.get("to_name"), 100), one_line(payload["to"])), charset="utf-8")
    msg["Subject"] = Header(one_line(payload["subject"], 900), "utf-8")  # type: ignore[assignment]  # documented compat32 use
    for name, value in _threading_headers(payload, now):
        msg[name] = value
    raw: bytes = msg.as_bytes(policy=compat32.clone(linesep="\r\n"))
    return raw


def _threading_headers(payload: dict[str, Any], now: dt.datetime) -> list[tuple[str, str]]:
    """Date, Message-ID, In-Reply-To, References and the automatic-mail markers (RFC 3834)."""
    headers = [("Date", format_datetime(now)), ("Message-ID", f"<{one_line(payload['message_id'])}>")]
    if payload.get("in_reply_to"):
        headers.append(("In-Reply-To", f"<{one_line(payload['in_reply_to'])}>"))
    references = [one_line(r) for r in payload.get("references") or [] if r]
    if references:
        headers.append(("References", " ".join(f"<{r}>" for r in references)))
    headers.append(("Auto-Submitted", one_line(payload.get("auto_submitted")) or "auto-replied"))
    headers.append(("X-Auto-Response-Suppress", "All"))
    headers.append(("Precedence", "auto_reply"))
    return headers


def _build_utf8_message(
    payload: dict[str, Any], now: dt.datetime, sender: SenderAddress, from_name: str
) -> bytes:
    msg = EmailMessage(policy=SMTPUTF8)
    msg["From"] = Address(from_name, addr_spec=sender.addr_spec)
    username, _, domain = one_line(payload["to"]).rpartition("@")
    msg["To"] = Address(one_line(payload.get("to_name"), 100), username, domain)
    msg["Subject"] = one_line(payload["subject"], 900)
    for name, value in _threading_headers(payload, now):
        msg[name] = value
    msg.set_content(payload["text"], charset="utf-8", cte="base64")
    if payload.get("html"):
        msg.add_alternative(payload["html"], subtype="html", charset="utf-8", cte="base64")
    return msg.as_bytes()
