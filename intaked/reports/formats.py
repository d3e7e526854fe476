"""The service-level report (``build_report``'s document) as text, CSV and HTML.

- text: aligned tables for a terminal, headings in Traditional Chinese then English (a CJK
  character takes two columns);
- CSV: one line per group and one for the total (group ``all``), every figure a column (rates as
  fractions, nothing for null);
- HTML: one self-contained page (inline style, no script, no outside resource), every text from
  the database escaped.
"""

from __future__ import annotations

import csv
import html
import io
import unicodedata
from collections.abc import Iterator, Sequence
from typing import Any, Final

from intaked.reports.measures import CLOCKS

# (key, Chinese heading, English heading, kind): kind "n" a count, "%" a fraction, "avg" a mean.
COLUMNS: Final = (
    ("carried_over", "前期遺留", "carried over", "n"),
    ("new", "本期新增", "new", "n"),
    ("handled", "執行總數", "handled", "n"),
    ("on_time", "準時完成", "on time", "n"),
    ("open_not_overdue", "未完成", "open, not due", "n"),
    ("late", "升級完成", "late", "n"),
    ("escalated_once", "升級一次", "esc. 1", "n"),
    ("escalated_twice", "升級二次", "esc. 2", "n"),
    ("escalated_3_plus", "三次以上", "esc. 3+", "n"),
    ("completion_rate", "完成率", "completion", "%"),
    ("avg_escalations", "平均升級次數", "avg esc.", "avg"),
    ("service_level", "服務水準", "service level", "%"),
    ("commitment_kept_rate", "承諾達成率", "kept", "%"),
    ("first_commitment_kept_rate", "一次承諾達成率", "first kept", "%"),
    ("standard_met_rate", "標準達成率", "standard met", "%"),
    ("satisfaction_responses", "滿意度回覆", "survey answers", "n"),
    ("satisfaction_avg", "滿意度平均", "satisfaction", "avg"),
)
COUNT_COLUMNS: Final = COLUMNS[:9]
RATE_COLUMNS: Final = COLUMNS[9:]
CLOCK_HEADINGS: Final = {
    "triage": ("受理分級", "triage"),
    "response": ("回應", "response"),
    "resolution": ("解決", "resolution"),
}
HOTLINE_LINES: Final = (
    ("calls", "來電", "calls", "n"),
    ("answered_by_desk", "服務台接聽", "answered by the desk", "n"),
    ("voicemail", "語音留言", "voicemail", "n"),
    ("missed", "未接", "missed", "n"),
    ("missed_rate", "未接率", "missed rate", "%"),
    ("avg_answer_seconds", "平均接聽秒數", "average answer (s)", "avg"),
)
RCA_HEADINGS: Final = (
    ("根本原因分析", "RCA"),
    ("事件", "incident"),
    ("期限", "due"),
    ("狀態", "status"),
    ("逾期", "overdue"),
)
GROUP_HEADINGS: Final = {
    "team": ("團隊", "team"),
    "handler": ("處理人", "handler"),
    "priority": ("優先級", "priority"),
}


def shown(value: Any, kind: str) -> str:
    """A figure as a person reads it: a count, a percentage, a mean; ``-`` for null."""
    if value is None:
        return "-"
    if kind == "%":
        return f"{value * 100:.1f}%"
    if kind == "avg":
        return f"{value:.2f}"
    return str(value)


def width(text: str) -> int:
    """Terminal columns ``text`` takes (wide and full-width characters take two)."""
    return sum(2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in text)


def _pad(text: str, columns: int, right: bool) -> str:
    space = " " * max(0, columns - width(text))
    return space + text if right else text + space


def aligned(header: Sequence[Sequence[str]], body: Sequence[Sequence[str]]) -> list[str]:
    """Lines of a table: the first column left-aligned, the others right-aligned."""
    lines = [*header, *body]
    widths = [max(width(line[i]) for line in lines) for i in range(len(lines[0]))]
    out = []
    for line in lines:
        cells = [_pad(cell, widths[i], right=i > 0) for i, cell in enumerate(line)]
        out.append("  ".join(cells).rstrip())
    return out


def _table(report: dict[str, Any], columns: Sequence[tuple[str, str, str, str]]) -> list[str]:
    zh, en = GROUP_HEADINGS[report["by"]]
    header = [[zh, *(c[1] for c in columns)], [en, *(c[2] for c in columns)]]
    rows = [*report["rows"], report["total"]]
    body = [[row["group"], *(shown(row[key], kind) for key, _, _, kind in columns)] for row in rows]
    return aligned(header, body)


def _sla_table(total: dict[str, Any]) -> list[str]:
    header = [["優先級"], ["priority"]]
    for zh, en in CLOCK_HEADINGS.values():
        header[0] += [f"{zh}達成", f"{zh}件數"]
        header[1] += [f"{en} met", f"{en} n"]
    body = []
    for priority, clocks in total["sla"].items():
        line = [priority]
        for clock in CLOCKS:
            line += [shown(clocks[f"{clock}_met"], "%"), str(clocks[f"{clock}_count"])]
        body.append(line)
    return aligned(header, body)


def _rca_cells(report: dict[str, Any]) -> list[list[str]]:
    """The RCA follow-ups as table cells (``rca`` may be missing from an older document)."""
    return [
        [
            r["number"],
            r["incident"],
            (r["due"] or "")[:16].replace("T", " "),
            r["status"],
            "*" if r["overdue"] else "",
        ]
        for r in report.get("rca", [])
    ]


def as_text(report: dict[str, Any]) -> str:
    """The report for a terminal: counts, rates, the SLA by priority (all groups), the hotline,
    the RCA follow-ups."""
    period = report["period"]
    lines = [
        f"服務水準報表 Service-level report {period['from']} .. {period['to']} ({report['timezone']})",
        "",
        "服務請求 Service requests",
        *_table(report, COUNT_COLUMNS),
        "",
        "指標 Rates",
        *_table(report, RATE_COLUMNS),
        "",
        "SLA 達成 (全部) SLA targets met (all groups)",
        *_sla_table(report["total"]),
        "",
        "專線 Hotline",
        *aligned(
            [], [[f"{zh} {en}", shown(report["hotline"][key], kind)] for key, zh, en, kind in HOTLINE_LINES]
        ),
        "",
        "事後根本原因分析 RCA follow-ups",
        *(aligned([[zh for zh, _ in RCA_HEADINGS], [en for _, en in RCA_HEADINGS]], _rca_cells(report))),
    ]
    return "\n".join(lines) + "\n"


#: A text cell starting with one of these is a formula to a spreadsheet (CSV injection).
FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: Any) -> Any:
    """``value``, with a text that a spreadsheet would run as a formula (a handler or team name
    another tool wrote, say ``=HYPERLINK(...)``) led by an apostrophe, so it is shown as text."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _csv_cells(row: dict[str, Any], priorities: Sequence[str]) -> Iterator[Any]:
    yield spreadsheet_safe(row["group"])
    yield from ("" if row[key] is None else row[key] for key, _, _, _ in COLUMNS)
    yield from (row["satisfaction_distribution"][str(score)] for score in range(1, 6))
    for priority in priorities:
        for clock in CLOCKS:
            met = row["sla"][priority][f"{clock}_met"]
            yield "" if met is None else met
            yield row["sla"][priority][f"{clock}_count"]


def as_csv(report: dict[str, Any]) -> str:
    """One line per group, then the total; the SLA figures per priority (``sla_P1_triage_met``)."""
    priorities = list(report["total"]["sla"])
    header = ["group", *(key for key, _, _, _ in COLUMNS)]
    header += [f"satisfaction_{score}" for score in range(1, 6)]
    header += [f"sla_{p}_{clock}_{part}" for p in priorities for clock in CLOCKS for part in ("met", "count")]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in [*report["rows"], report["total"]]:
        writer.writerow(list(_csv_cells(row, priorities)))
    return buffer.getvalue()


STYLE: Final = (
    "body{font-family:sans-serif}table{border-collapse:collapse;margin:0 0 1.5em}"
    "th,td{border:1px solid #999;padding:.25em .5em}td{text-align:right}"
    "td:first-child{text-align:left}tr.total{font-weight:bold}"
)


TOTAL_ROW: Final = '<tr class="total">'


def _html_table(headings: Sequence[tuple[str, str]], rows: Sequence[tuple[Sequence[str], bool]]) -> str:
    head = "".join(f"<th>{html.escape(zh)}<br>{html.escape(en)}</th>" for zh, en in headings)
    body = "".join(
        (TOTAL_ROW if total else "<tr>") + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>"
        for cells, total in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def html_tables(report: dict[str, Any]) -> str:
    """The report's tables as an HTML fragment (every text escaped): groups, SLA, hotline, RCA."""
    group = GROUP_HEADINGS[report["by"]]
    rows = [(r, False) for r in report["rows"]] + [(report["total"], True)]
    main = _html_table(
        [group, *((zh, en) for _, zh, en, _ in COLUMNS)],
        [([r["group"], *(shown(r[key], kind) for key, _, _, kind in COLUMNS)], total) for r, total in rows],
    )
    sla_headings = [("優先級", "priority")]
    for zh, en in CLOCK_HEADINGS.values():
        sla_headings += [(f"{zh}達成", f"{en} met"), (f"{zh}件數", f"{en} n")]
    sla_rows = [
        ([p, *(x for c in CLOCKS for x in (shown(v[f"{c}_met"], "%"), str(v[f"{c}_count"])))], False)
        for p, v in report["total"]["sla"].items()
    ]
    hotline = report["hotline"]
    calls = _html_table(
        [(zh, en) for _, zh, en, _ in HOTLINE_LINES],
        [([shown(hotline[key], kind) for key, _, _, kind in HOTLINE_LINES], False)],
    )
    rca = _html_table(RCA_HEADINGS, [(cells, False) for cells in _rca_cells(report)])
    return main + _html_table(sla_headings, sla_rows) + calls + rca


def as_html(report: dict[str, Any]) -> str:
    """A self-contained HTML page of the report."""
    period = report["period"]
    title = html.escape(f"服務水準報表 Service-level report {period['from']} .. {period['to']}")
    zone = html.escape(report["timezone"])
    return (
        f'<!DOCTYPE html>\n<html lang="zh-Hant"><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{STYLE}</style></head><body><h1>{title}</h1><p>{zone}</p>"
        f"{html_tables(report)}</body></html>\n"
    )
