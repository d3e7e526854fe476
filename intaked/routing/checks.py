"""What ``intaked check-config`` notes about routing, the directory and trust: settings that are
valid but leave something out (a directory file not there yet, P1/P2 rules nothing can trust)."""

from __future__ import annotations

from pathlib import Path

from intaked.config import Settings


def config_notes(settings: Settings) -> list[str]:
    """Warnings for ``intaked check-config`` about routing, the directory and trust."""
    notes: list[str] = []
    path = settings.directory.path
    if path and not Path(path).is_file():
        notes.append(f"directory.path {path!r} does not exist (yet): no requester is enriched until it does")
    pages = [r.name for r in settings.routing.rules if r.suggested_priority in ("P1", "P2")]
    if pages and not (settings.trust.authserv_id and settings.trust.internal_domains):
        notes.append(
            f"rules {', '.join(pages)} suggest P1/P2 but trust.authserv_id or trust.internal_domains is "
            "empty: no mail is trusted, every suggestion waits for a person"
        )
    return notes
