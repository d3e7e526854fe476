"""Attachment file names: find the declared name, then make it safe to show and to write to disk.

The name comes from Content-Disposition ``filename`` (RFC 2183), else Content-Type ``name`` (RFC 2045,
deprecated but what Outlook relies on), each as RFC 2231 extended/continued values, RFC 2047 encoded-words
(against the RFC, but common) or raw 8-bit bytes. A safe name has no directory part (``../x`` and
``..\\x`` keep ``x``), no control or bidi-override characters, no characters Windows forbids, no leading
dots, is not a Windows reserved device name, and is at most :data:`MAX_NAME_BYTES` bytes of UTF-8 with its
extension kept; an empty result becomes ``attachment-N`` plus an extension guessed from the content type.
"""

from __future__ import annotations

import mimetypes
import re
import unicodedata

from .params import HeaderParams, extended_param

MAX_NAME_BYTES = 200

_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f<>:\"|?*\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
_RESERVED = {
    "con",
    "prn",
    "aux",
    "nul",
    "clock$",
    "conin$",
    "conout$",
    *(f"com{i}" for i in range(10)),
    *(f"lpt{i}" for i in range(10)),
}
_KNOWN_EXT = {
    "text/plain": ".txt",
    "text/html": ".html",
    "text/calendar": ".ics",
    "text/csv": ".csv",
    "text/rfc822-headers": ".txt",
    "message/rfc822": ".eml",
    "message/delivery-status": ".txt",
    "message/disposition-notification": ".txt",
    "application/octet-stream": ".bin",
    "application/ms-tnef": ".dat",
    "application/vnd.ms-tnef": ".dat",
    "application/pdf": ".pdf",
    "application/pgp-signature": ".asc",
    "application/pkcs7-signature": ".p7s",
    "application/x-pkcs7-signature": ".p7s",
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/gif": ".gif",
}


def declared_name(
    disposition: HeaderParams, ctype: HeaderParams, hint: str | None, problems: list[str]
) -> str | None:
    """The sender's file name for a part, decoded, or None when it declares none."""
    for params, key in ((disposition.params, "filename"), (ctype.params, "name")):
        value = extended_param(params, key, hint, problems)
        if value is not None and value.strip():
            return value
    return None


def extension_for(content_type: str) -> str:
    """A file extension (with the dot) for a content type; ``.bin`` when nothing fits."""
    if content_type in _KNOWN_EXT:
        return _KNOWN_EXT[content_type]
    guessed = mimetypes.guess_extension(content_type, strict=False)
    return guessed or ".bin"


def _truncate(name: str) -> str:
    if len(name.encode("utf-8")) <= MAX_NAME_BYTES:
        return name
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or len(ext.encode("utf-8")) > 20:
        stem, ext = name, ""
    else:
        ext = "." + ext
    budget = MAX_NAME_BYTES - len(ext.encode("utf-8"))
    cut = stem.encode("utf-8")[:budget].decode("utf-8", "ignore").rstrip(" .")
    return cut + ext


def safe_filename(name: str | None, content_type: str, index: int) -> str:
    """A file name safe to display and to write to disk; ``attachment-<index><ext>`` when nothing is left."""
    text = unicodedata.normalize("NFC", name or "")
    text = text.replace("\\", "/").rsplit("/", 1)[-1]
    text = _UNSAFE.sub("_", text)
    text = "".join(c for c in text if unicodedata.category(c) not in ("Cc", "Cs", "Co", "Cn"))
    text = re.sub(r"\s+", " ", text).strip()
    text = text.lstrip(".").strip().rstrip(" .")
    if not text.strip("_ "):
        text = ""
    if text:
        stem = text.split(".", 1)[0].strip().lower()
        if stem in _RESERVED:
            text = "_" + text
        text = _truncate(text)
    if not text:
        text = f"attachment-{index}{extension_for(content_type)}"
    return text
