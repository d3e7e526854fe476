"""HTML body to plain text, for mail that has no text/plain alternative.

Uses ``inscriptis`` with its ``strict`` CSS profile (no padding around inline elements, no indentation;
it follows the HTML rendering model: block elements start lines, ``<br>`` breaks,
``<style>``/``<script>``/``<head>`` hidden, entities decoded). Input over :data:`MAX_HTML_CHARS` is
truncated first, and any failure of inscriptis/lxml (deep nesting, odd declarations, recursion) falls back
to a small ``html.parser`` based stripper. Library warnings are silenced here so callers never see them.
"""

from __future__ import annotations

import re
import warnings
from html.parser import HTMLParser

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


class _Stripper(HTMLParser):
    """A forgiving fallback: keeps text, turns block tags into line breaks, drops hidden content."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN_TAGS:
            self.hidden += 1
        elif tag in _BLOCK_TAGS:
            self.out.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN_TAGS:
            self.hidden = max(0, self.hidden - 1)
        elif tag in _BLOCK_TAGS:
            self.out.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.out.append(re.sub(r"\s+", " ", data))


def _fallback(html: str) -> str:
    stripper = _Stripper()
    try:
        stripper.feed(html)
        stripper.close()
    except Exception:  # html.parser is lenient, but never lose the body
        return re.sub(r"<[^>]*>", " ", html)
    return "".join(stripper.out)


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
        if len("".join(fallback.split())) > converted * 3 // 2 + 16:
            problems.append("html: converter lost text (deep nesting?), used a simple tag stripper")
            text = fallback
    return tidy(str(text))


def _visible_estimate(html: str) -> int:
    """A cheap upper estimate of the number of visible non-blank characters (linear time)."""
    text = _TAG.sub(" ", html)
    return len("".join(text.split()))
