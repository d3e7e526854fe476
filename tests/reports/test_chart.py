"""The report's bar chart (intaked/reports/chart.py): one group of bars per row of the report,
one bar per figure, a PNG that decodes, Traditional Chinese labels with fonts-noto-cjk, and
English labels with one warning when no CJK font exists."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image
from structlog.testing import capture_logs

from intaked.reports import chart
from intaked.reports.chart import SERIES, chart_figure, cjk_font, render_png

ROWS: list[dict[str, Any]] = [
    {"group": "資訊部", "new": 5, "on_time": 3, "late": 2, "escalated_once": 1},
    {"group": "field_service", "new": 2, "on_time": 1, "escalated_3_plus": 1},
    {"group": "<b>$x$</b>", "new": 1},
]


@pytest.fixture
def no_cjk_font(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(chart, "_known_family", lambda: None)
    monkeypatch.setattr(chart.font_manager, "findSystemFonts", lambda: [])
    cjk_font.cache_clear()
    yield
    cjk_font.cache_clear()


def test_one_bar_group_per_row() -> None:
    figure = chart_figure(ROWS, title="2026-W49")
    (axes,) = figure.axes
    assert len(axes.containers) == len(SERIES)  # one container per figure (new, on time, ...)
    for container, (key, _, _) in zip(axes.containers, SERIES, strict=True):
        assert [bar.get_height() for bar in container] == [row.get(key, 0) for row in ROWS]
    assert [label.get_text() for label in axes.get_xticklabels()] == [row["group"] for row in ROWS]


def test_png_decodes() -> None:
    png = render_png(ROWS, title="2026-W49")
    image = Image.open(io.BytesIO(png))
    image.load()
    assert image.format == "PNG"
    assert image.width > 400 and image.height > 300


def test_labels_in_traditional_chinese_with_the_noto_font() -> None:
    if cjk_font() is None:
        pytest.skip("no CJK font: install fonts-noto-cjk (scripts/bootstrap does)")
    assert cjk_font() in chart.CJK_FAMILIES
    axes = chart_figure(ROWS).axes[0]
    legend = axes.get_legend()
    assert legend is not None
    assert [text.get_text() for text in legend.get_texts()] == [zh for _, zh, _ in SERIES]


@pytest.mark.usefixtures("no_cjk_font")
def test_without_a_cjk_font_english_labels_and_one_warning() -> None:
    with capture_logs() as logs:
        first = render_png(ROWS)
        render_png(ROWS)
    Image.open(io.BytesIO(first)).load()
    warnings = [entry for entry in logs if entry["event"] == "report_chart_without_cjk_font"]
    assert len(warnings) == 1
    assert warnings[0]["log_level"] == "warning"
    legend = chart_figure(ROWS).axes[0].get_legend()
    assert legend is not None
    assert [text.get_text() for text in legend.get_texts()] == [en for _, _, en in SERIES]
