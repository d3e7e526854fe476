"""A parser that misbehaves on marked messages, for fault injection in worker processes."""

from __future__ import annotations

import os
import time

from intaked.intake.parsepool import ParseResult, parse_in_process


def hostile_parse(raw: bytes) -> ParseResult:
    """Hangs on ``HANG-ME``, kills its process on ``CRASH-ME``, raises on ``RAISE-ME``."""
    if b"HANG-ME" in raw:
        time.sleep(3600)
    if b"CRASH-ME" in raw:
        os._exit(3)
    if b"RAISE-ME" in raw:
        raise RuntimeError("injected parser bug")
    return parse_in_process(raw)


def buggy_parse(raw: bytes) -> ParseResult:
    """A parser with a bug: loses the subject's non-ASCII text and every attachment."""
    result = parse_in_process(raw)
    if isinstance(result, str):
        return result
    result.subject = result.subject.encode("ascii", "ignore").decode().strip()
    result.attachments = []
    return result
