"""The bar chart of a service-level report (seed 003's "service request index analysis"): one
group of bars per row of the report (a team, a handler or a priority), one bar per figure: new,
completed on time, completed late, escalated once, twice, three times or more. Rendered as PNG by
matplotlib's Agg backend (no display), for the report's mail (intaked/reports/mailing.py).

The labels are in Traditional Chinese, drawn with a CJK font of Debian's ``fonts-noto-cjk`` (Noto
Sans CJK TC, else JP...), which ``scripts/bootstrap`` installs. Without one, the process logs a
warning once and draws English labels (the groups' own names then may show empty boxes).
"""

from __future__ import annotations

import functools
import io
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot: a daemon has no display

import matplotlib.pyplot as plt
import structlog
from matplotlib import font_manager
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

log = structlog.get_logger(__name__)

#: The figures drawn for each group: the report row's key, its Chinese and English label.
SERIES: tuple[tuple[str, str, str], ...] = (
    ("new", "本期新增", "New"),
    ("on_time", "準時完成", "On time"),
    ("late", "逾時完成", "Late"),
    ("escalated_once", "升級一次", "Escalated once"),
    ("escalated_twice", "升級兩次", "Escalated twice"),
    ("escalated_3_plus", "升級三次以上", "Escalated 3+"),
)
_TITLE = ("服務請求指標分析", "Service requests")
_COLOURS = ("#4e79a7", "#59a14f", "#e15759", "#f1ce63", "#f28e2b", "#b07aa1")

#: CJK families of fonts-noto-cjk, Traditional Chinese first.
CJK_FAMILIES = (
    "Noto Sans CJK TC",
    "Noto Sans CJK HK",
    "Noto Sans CJK JP",
    "Noto Sans CJK SC",
    "Noto Sans CJK KR",
    "Noto Serif CJK TC",
    "Noto Serif CJK JP",
)


def _known_family() -> str | None:
    names = {entry.name for entry in font_manager.fontManager.ttflist}
    return next((family for family in CJK_FAMILIES if family in names), None)


@functools.cache
def cjk_font() -> str | None:
    """The CJK font family to label charts with, or None (logged once, as a warning). Fonts
    installed after matplotlib built its font cache are looked for on disk and added."""
    family = _known_family()
    if family is None:
        for path in font_manager.findSystemFonts():
            if Path(path).name.startswith(("NotoSansCJK", "NotoSerifCJK")):
                font_manager.fontManager.addfont(path)
        family = _known_family()
    if family is None:
        log.warning(
            "report_chart_without_cjk_font",
            hint="install Debian's fonts-noto-cjk (scripts/bootstrap does); the labels are in English",
        )
    return family


def chart_figure(rows: Sequence[Mapping[str, Any]], *, title: str = "", cjk: bool | None = None) -> Figure:
    """The figure of ``rows`` (the report's rows: ``group`` and the counts of :data:`SERIES`): one
    bar container per series, each with one bar per row. ``cjk``: Chinese labels (default: when a
    CJK font exists)."""
    family = cjk_font() if cjk is not False else None
    chinese = family is not None
    figure = Figure(figsize=(max(6.0, 1.4 * len(rows) + 2.5), 4.2), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    width = 0.8 / len(SERIES)
    for index, (key, zh, en) in enumerate(SERIES):
        positions = [n + (index - (len(SERIES) - 1) / 2) * width for n in range(len(rows))]
        heights = [int(row.get(key) or 0) for row in rows]
        axes.bar(positions, heights, width, label=zh if chinese else en, color=_COLOURS[index])
    axes.set_xticks(range(len(rows)), [str(row["group"]) for row in rows])
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    heading = _TITLE[0] if chinese else _TITLE[1]
    axes.set_title(f"{heading} {title}".strip())
    axes.legend(fontsize="small", ncols=3, loc="upper center", bbox_to_anchor=(0.5, -0.08), frameon=False)
    axes.spines[["top", "right"]].set_visible(False)
    return figure


def render_png(rows: Sequence[Mapping[str, Any]], *, title: str = "") -> bytes:
    """The chart of ``rows`` as PNG bytes (see :func:`chart_figure`)."""
    family = cjk_font()
    style: Any = {"text.parse_math": False}  # a "$" in a team's name is no formula
    if family is not None:
        style["font.family"] = [family, "DejaVu Sans"]
    buffer = io.BytesIO()
    with plt.rc_context(style), warnings.catch_warnings():
        # A group name the font has no glyph for is drawn as a box, not an error.
        warnings.filterwarnings("ignore", message="Glyph .* missing from", category=UserWarning)
        figure = chart_figure(rows, title=title, cjk=family is not None)
        figure.savefig(buffer, format="png")
    return buffer.getvalue()
