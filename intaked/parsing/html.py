"""HTML body to plain text, for mail that has no text/plain alternative.

Uses ``inscriptis`` with its ``strict`` CSS profile (no padding around inline elements, no indentation;
it follows the HTML rendering model: block elements start lines, ``<br>`` breaks,
``<style>``/``<script>``/``<head>`` hidden, entities decoded). Input over :data:`MAX_HTML_CHARS` is
truncated first, and any failure of inscriptis/lxml (deep nesting, odd declarations, recursion) falls back
to a small linear-time tag stripper. Library warnings are silenced here so callers never see them.
"""

from __future__ import annotations

import re
import warnings
from html import unescape

import inscriptis
from inscriptis.css_profiles import CSS_PROFILES
from inscriptis.model.config import ParserConfig

MAX_HTML_CHARS = 2_000_000

_XML_DECL = re.compile(r"^\s*<\?xml[^>]*>", re.IGNORECASE)
_TAG = re.compile(r"<[^<>]*>")  # [^<>] keeps this linear on unclosed '<' runs
_BLANK_LINES = re.compile(r"\n{3,}")
_BLOCK_TAGS = {
    "p",
    "div",
    "br",
    "tr",
    "li",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "table",
    "blockquote",
    "pre",
    "hr",
    "ul",
    "ol",
    "dl",
    "dt",
    "dd",
    "section",
    "article",
    "header",
    "footer",
}
_HIDDEN_TAGS = {"style", "script", "head", "title", "template", "noscript", "xml"}


_TAG_NAME = re.compile(r"/?\s*([a-zA-Z][a-zA-Z0-9:_-]*)")
_SPACES = re.compile(r"[ \t\r\n\f]+")


def _fallback(html: str) -> str:
    """A forgiving, linear-time tag stripper (``html.parser`` is quadratic on unclosed comments)."""
    out: list[str] = []
    lower = html.lower()
    i, n = 0, len(html)
    while i < n:
        lt = html.find("<", i)
        if lt < 0:
            out.append(_SPACES.sub(" ", html[i:]))
            break
        out.append(_SPACES.sub(" ", html[i:lt]))
        if html.startswith("<!--", lt):
            end = html.find("-->", lt + 4)
            i = n if end < 0 else end + 3
            continue
        gt = html.find(">", lt + 1)
        if gt < 0:
            break  # an unclosed tag runs to the end
        match = _TAG_NAME.match(html, lt + 1, gt)
        name = match.group(1).lower() if match else ""
        closing = match is not None and match.group(0).startswith("/")
        if name in _HIDDEN_TAGS and not closing:
            end = lower.find("</" + name, gt + 1)
            close = lower.find(">", end) if end >= 0 else -1
            i = n if close < 0 else close + 1
            continue
        if name in _BLOCK_TAGS:
            out.append("\n")
        i = gt + 1
    return unescape("".join(out))


def tidy(text: str) -> str:
    """Normalise converted text: no NBSP, no trailing blanks, at most one empty line in a row."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\xa0", " ")
    text = "\n".join(line.rstrip(" \t\u3000") for line in text.split("\n"))
    text = _BLANK_LINES.sub("\n\n", text)
    return text.strip()


def html_to_text(html: str, problems: list[str]) -> str:
    """Readable text of an HTML document; never raises."""
    if not html.strip():
        return ""
    if len(html) > MAX_HTML_CHARS:
        problems.append(f"html: {len(html)} characters, truncated to {MAX_HTML_CHARS} before conversion")
        html = html[:MAX_HTML_CHARS]
    html = _XML_DECL.sub("", html)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            text = inscriptis.get_text(html, ParserConfig(css=CSS_PROFILES["strict"]))
    except Exception as exc:  # lxml/inscriptis failures on hostile HTML
        problems.append(f"html: converter failed ({type(exc).__name__}), used a simple tag stripper")
        return tidy(_fallback(html))
    converted = len("".join(str(text).split()))
    if converted < _visible_estimate(html) // 2:
        # lxml silently stops at its nesting limit (256): the rest of the document would be lost.
        # (Style sheets also make the estimate high; then the stripper finds no more text and is ignored.)
        fallback = _fallback(html)
        if len("".join(fallback.split())) > converted * 3 // 2 + 2:
            problems.append("html: converter lost text (deep nesting?), used a simple tag stripper")
            text = fallback
    return tidy(str(text))


def _visible_estimate(html: str) -> int:
    """A cheap upper estimate of the number of visible non-blank characters (linear time)."""
    text = _TAG.sub(" ", html)
    return len("".join(text.split()))
