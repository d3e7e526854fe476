"""Outlook TNEF (``application/ms-tnef``, ``winmail.dat``) unpacking via ``tnefparse``.

TNEF is Microsoft's format ([MS-OXTNEF]) for carrying MAPI properties and attachments inside one MIME
part. We take its attachments (long file name, else short name) and its body (plain text, else HTML;
compressed RTF is skipped). Any failure raises :class:`TnefError` so the caller can keep the raw
``winmail.dat`` as an ordinary attachment instead.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import tnefparse  # type: ignore[import-untyped, unused-ignore]

from .charsets import decode_text


class TnefError(Exception):
    """The TNEF payload could not be read."""


@dataclass(slots=True)
class TnefAttachment:
    """One attachment found in a TNEF payload (name not yet made safe)."""

    name: str
    data: bytes


@dataclass(slots=True)
class TnefContent:
    """What a TNEF payload carries that we use."""

    attachments: list[TnefAttachment] = field(default_factory=list)
    body_text: str | None = None
    body_html: str | None = None


def _text(value: object, problems: list[str]) -> str:
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, bytes):
        return decode_text(value.rstrip(b"\x00"), None, problems, "tnef")
    return ""


def _name(att: object, problems: list[str]) -> str:
    for getter in ("long_filename", "name"):
        try:
            attr = getattr(att, getter)
            value = attr() if callable(attr) else attr
        except Exception:  # tnefparse decodes names as UTF-8 and may fail
            continue
        text = _text(value, problems).strip()
        if text:
            return text
    raw: object = getattr(att, "_name", b"")
    return _text(raw, problems).strip()


def parse_tnef(data: bytes, problems: list[str]) -> TnefContent:
    """Unpack a TNEF payload; raises TnefError when it is not readable TNEF."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parsed = tnefparse.TNEF(data, do_checksum=False)
    except Exception as exc:  # tnefparse raises anything on bad input
        raise TnefError(f"{type(exc).__name__}: {exc}") from exc
    content = TnefContent()
    for att in getattr(parsed, "attachments", []) or []:
        payload: object = getattr(att, "data", b"")
        content.attachments.append(
            TnefAttachment(name=_name(att, problems), data=payload if isinstance(payload, bytes) else b"")
        )
    body: object = getattr(parsed, "body", None)
    html: object = getattr(parsed, "htmlbody", None)
    if body:
        content.body_text = _text(body, problems)
    if html:
        content.body_html = _text(html, problems)
    return content
