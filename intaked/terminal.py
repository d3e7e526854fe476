"""What the operator's commands print is safe for a terminal.

Mail, caller names and transcripts are written by strangers: a subject or a body may carry
terminal control sequences (ESC, CSI, an OSC 52 that writes the clipboard, C1 controls, BEL,
backspace, a lone carriage return that overwrites the line). :func:`safe_text` shows every
control character as a visible JSON-style escape (ESC becomes the six characters ``\\u001b``)
and keeps newlines and tabs; a CRLF line end becomes a newline.

:func:`safe_output` replaces ``sys.stdout`` and ``sys.stderr`` with streams that pass everything
through :func:`safe_text`, for the whole of a command (``intaked.cli.main``), so no command can
forget. JSON output goes through the same streams and stays exact: ``json`` already escapes C0
controls, and a C1 control or DEL left raw by ``ensure_ascii=False`` becomes its ``\\u00XX``
escape, which a JSON reader decodes back to the same character.
"""

from __future__ import annotations

import io
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import TextIO, cast

#: C0 controls but tab and newline, DEL, and the C1 controls (U+0080..U+009F: CSI is U+009B).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _visible(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def safe_text(text: str) -> str:
    """``text`` with each control character but newline and tab shown as ``\\u00XX``."""
    if "\r\n" in text:
        text = text.replace("\r\n", "\n")
    return _CONTROL.sub(_visible, text)


class SafeStream(io.TextIOBase):
    """A text stream that writes :func:`safe_text` of everything to ``target``."""

    def __init__(self, target: TextIO) -> None:
        super().__init__()
        self.target = target

    def write(self, text: str) -> int:
        self.target.write(safe_text(text))
        return len(text)

    def flush(self) -> None:
        self.target.flush()

    def isatty(self) -> bool:
        return self.target.isatty()

    def fileno(self) -> int:
        return self.target.fileno()

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self.target.encoding


@contextmanager
def safe_output() -> Iterator[None]:
    """Everything printed to stdout and stderr inside the block goes through :func:`safe_text`."""
    out, err = sys.stdout, sys.stderr
    sys.stdout = cast(TextIO, SafeStream(out))
    sys.stderr = cast(TextIO, SafeStream(err))
    try:
        yield
    finally:
        with suppress(OSError, ValueError):  # a closed pipe: nothing more to say
            sys.stdout.flush()
            sys.stderr.flush()
        sys.stdout, sys.stderr = out, err
