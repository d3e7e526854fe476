"""Locating the shared real-world mail corpus and reading its expected results (test helper)."""

from __future__ import annotations

import ast
import datetime
import json
from pathlib import Path
from typing import Any

import pytest

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "mail-corpus"
SKIP_REASON = f"mail corpus not found at {CORPUS} (development corpus, see its README.md)"


def corpus_available() -> bool:
    return (CORPUS / "README.md").is_file()


def require_corpus() -> Path:
    if not corpus_available():
        pytest.skip(SKIP_REASON)
    return CORPUS


def manifest_files(folder: str, role: str) -> list[Path]:
    """Files of ``role`` listed in ``<folder>/MANIFEST.json`` (empty when the corpus is absent)."""
    manifest = CORPUS / folder / "MANIFEST.json"
    if not manifest.is_file():
        return []
    data = json.loads(manifest.read_text(encoding="utf-8"))
    return sorted(CORPUS / folder / f["path"] for f in data["files"] if f.get("role") == role)


def all_messages() -> list[Path]:
    out: list[Path] = []
    for folder in ("imap_tools", "stalwart_mail_parser", "enmime", "nodemailer_mailparser"):
        out += manifest_files(folder, "message")
    return out


def rel(path: Path) -> str:
    return str(path.relative_to(CORPUS))


def _email_address(name: str = "", email: str = "", **_: Any) -> dict[str, str]:
    return {"name": name, "email": email}


def load_imap_tools_expected(path: Path) -> dict[str, Any]:
    """Evaluate the ``DATA = dict(...)`` literal of an imap_tools expected file (no import, no builtins)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "DATA" for t in node.targets
        ):
            code = compile(ast.Expression(node.value), str(path), "eval")
            namespace = {
                "__builtins__": {},
                "dict": dict,
                "datetime": datetime,
                "EmailAddress": _email_address,
            }
            value = eval(code, namespace)  # the corpus' own literal; names limited to the ones above
            assert isinstance(value, dict)
            return value
    raise AssertionError(f"no DATA in {path}")
