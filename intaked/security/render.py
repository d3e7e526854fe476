"""The incident report form (資通安全事件通報單, seed 004's 附件三) of one ticket, in Traditional
Chinese: as a document (JSON), as text, and as a PDF (matplotlib's PDF backend with the Noto
CJK font the report charts use)."""

from __future__ import annotations

import datetime as dt
import io
import textwrap
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, select

from intaked.config import Settings
from intaked.security.actions import NoSuchTicket
from intaked.security.form import FIELDS, load
from intaked.security.levels import LEVEL_NAMES
from intaked.store.engine import read_only
from intaked.store.models import ticket_table
from intaked.store.types import utcnow

TITLE = "資通安全事件通報單"


def document(
    engine: Engine, settings: Settings, number: str, now: dt.datetime | None = None
) -> dict[str, Any]:
    """The form of ticket ``number``: its header and every field (label, value, the value's words)."""
    with read_only(engine).connect() as conn:
        ticket = conn.execute(select(ticket_table).where(ticket_table.c.number == number)).mappings().first()
        if ticket is None:
            raise NoSuchTicket(number)
        form = load(conn, ticket["id"])
    tz = ZoneInfo(settings.tickets.timezone)
    level = ticket["security_level"]
    fields: list[dict[str, Any]] = [
        {"name": "level", "label": "影響等級", "value": level, "text": LEVEL_NAMES.get(level or 0, "")}
    ]
    for field in FIELDS:
        value = form[field.name]
        if field.kind == "time":
            shown = _local(value, tz)
            value = value.isoformat() if value is not None else None
        elif field.kind == "choice":
            shown = (field.choices or {}).get(value or "", "")
        else:
            shown = value or ""
        fields.append({"name": field.name, "label": field.label, "value": value, "text": shown})
    return {
        "title": TITLE,
        "number": number,
        "filled_at": _local(now or utcnow(), tz),
        "subject": ticket["subject"],
        "aware_at": _local(ticket["security_aware_at"] or ticket["created_at"], tz),
        "notify_due_at": _local(ticket["security_notify_due_at"], tz),
        "notified_at": _local(ticket["security_notified_at"], tz),
        "contain_due_at": _local(ticket["security_contain_due_at"], tz),
        "fields": fields,
    }


def _local(value: dt.datetime | None, tz: dt.tzinfo) -> str:
    return value.astimezone(tz).strftime("%Y年%m月%d日 %H時%M分") if value is not None else ""


def lines(doc: Mapping[str, Any]) -> list[str]:
    """The form as lines of text."""
    out = [
        doc["title"],
        f"編號：{doc['number']}",
        f"填報時間：{doc['filled_at']}",
        f"知悉時間：{doc['aware_at']}",
        f"通報期限：{doc['notify_due_at']}",
        f"已通報時間：{doc['notified_at']}",
        f"損害控制或復原期限：{doc['contain_due_at']}",
        "",
    ]
    out.extend(f"{field['label']}：{field['text']}" for field in doc["fields"])
    return out


def text(doc: Mapping[str, Any]) -> str:
    return "\n".join(lines(doc)) + "\n"


def pdf(doc: Mapping[str, Any]) -> bytes:
    """The form as an A4 PDF (pages as needed), in the Noto CJK font when installed."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.backends.backend_pdf import PdfPages
    from matplotlib.figure import Figure

    from intaked.reports.chart import cjk_font

    family = cjk_font()
    fonts = [family, "DejaVu Sans"] if family else ["DejaVu Sans"]
    wrapped: list[str] = []
    for line in lines(doc):
        wrapped.extend(textwrap.wrap(line, 40) or [""])
    per_page = 45
    buffer = io.BytesIO()
    with PdfPages(buffer) as pages:
        for start in range(0, len(wrapped), per_page):
            figure = Figure(figsize=(8.27, 11.69))
            for index, line in enumerate(wrapped[start : start + per_page]):
                size = 16 if start == 0 and index == 0 else 10.5
                figure.text(0.08, 0.95 - index * 0.02, line, fontsize=size, family=fonts, va="top")
            pages.savefig(figure)
    return buffer.getvalue()
