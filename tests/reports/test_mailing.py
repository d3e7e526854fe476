"""The report's mail (intaked/reports/mailing.py): text and HTML alternatives, the HTML related
to its chart by ``cid:``, the figures of every group, database text escaped."""

from __future__ import annotations

import base64
import datetime as dt
import io
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from PIL import Image

from intaked.outbound.compose import build_message
from intaked.reports.chart import render_png
from intaked.reports.mailing import report_mail
from tests.support.daemon import make_settings

NOW = dt.datetime(2026, 12, 7, 0, 5, tzinfo=dt.UTC)


def row(group: str, **figures: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"group": group, "new": 0, "on_time": 0, "late": 0, "handled": 0}
    base.update(completion_rate=None, service_level=None)
    return {**base, **figures}


REPORT: dict[str, Any] = {
    "period": {"from": "2026-11-30", "to": "2026-12-06"},
    "by": "team",
    "timezone": "Asia/Taipei",
    "rows": [
        row("資訊部", new=5, handled=5, on_time=3, late=2, completion_rate=1.0, service_level=0.6),
        row("<script>alert(1)</script>", new=2),
    ],
    "total": row("total", new=7, handled=5, on_time=3, late=2, completion_rate=1.0, service_level=0.6),
    "hotline": {"calls": 4, "missed_rate": 0.25},
}


def parts(raw: bytes) -> tuple[EmailMessage, EmailMessage, EmailMessage, EmailMessage]:
    """The message, its text part, its HTML part and its image; asserting the structure."""
    msg = message_from_bytes(raw, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    assert msg.get_content_type() == "multipart/alternative"
    text, related = msg.iter_parts()
    assert text.get_content_type() == "text/plain"
    assert related.get_content_type() == "multipart/related"
    html, image = related.iter_parts()
    assert html.get_content_type() == "text/html"
    assert image.get_content_type() == "image/png"
    return msg, text, html, image  # type: ignore[return-value]


def test_text_html_and_the_chart_inline() -> None:
    settings = make_settings("sqlite://", outbound_mail={"from_address": "IT 服務台 <helpdesk@example.com>"})
    chart = render_png(REPORT["rows"], title="2026-W49")
    outbox_row = report_mail(
        settings,
        REPORT,
        chart,
        kind="weekly",
        label="2026-W49",
        recipient="boss@example.com",
        key="report:weekly:2026-W49:boss@example.com",
        now=NOW,
    )
    assert outbox_row["purpose"] == "report" and outbox_row["ticket_id"] is None
    raw = build_message(outbox_row["payload"], NOW)  # what the dispatcher sends
    assert raw == base64.b64decode(outbox_row["payload"]["mime"])
    msg, text, html, image = parts(raw)
    assert msg["To"] == "boss@example.com"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert "2026-W49" in msg["Subject"]
    cid = image["Content-ID"].strip("<>")
    html_text = html.get_content()
    assert f'src="cid:{cid}"' in html_text
    assert image.get_content() == chart
    Image.open(io.BytesIO(image.get_content())).load()
    assert "資訊部" in html_text and "60.0%" in html_text and "100.0%" in html_text
    assert "<script>" not in html_text and "&lt;script&gt;alert(1)&lt;/script&gt;" in html_text
    plain = text.get_content()
    assert "資訊部" in plain and "本期新增 / New: 5" in plain and "服務水準 / Service level: 60.0%" in plain
    assert "<script>alert(1)</script>" in plain  # plain text needs no escaping
