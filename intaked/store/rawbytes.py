"""Raw mail as the intake ledger stores it (``raw_encoding``: zlib or identity), and its unpacking.

Importable without the database layer: the parse workers unpack messages themselves, so the back
office hands them the compressed bytes and never holds a whole batch of unpacked mail.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass


def decompress_raw(data: bytes, encoding: str) -> bytes:
    """The exact bytes received, from the ledger's ``raw`` and ``raw_encoding`` columns."""
    if encoding == "zlib":
        return zlib.decompress(data)
    if encoding == "identity":
        return data
    raise ValueError(f"unknown raw_encoding {encoding!r}")


@dataclass(frozen=True, slots=True)
class PackedRaw:
    """A message's raw bytes as the ledger stores them (``raw``, ``raw_encoding``), and their
    length once unpacked (``raw_size``)."""

    data: bytes
    encoding: str
    size: int

    def unpack(self) -> bytes:
        return decompress_raw(self.data, self.encoding)
