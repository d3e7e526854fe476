"""Schema migrations: apply them, or tell the operator exactly why the daemon will not start.

The schema is a public contract; it changes only through the Alembic revisions in
``intaked/store/migrations/versions``.

The daemon checks the schema on every start, and a restart after a crash should be back at work
within a second; so the usual case, a schema already current, costs one query of
``alembic_version`` compared with the newest revision read from the revision files' own
``revision =`` / ``down_revision =`` lines. Alembic itself (its import and its loading of every
revision script) is needed only when something has to change or be explained.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, inspect, select
from sqlalchemy.sql import column, table

from intaked.store.engine import read_only

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
VERSIONS_DIR = MIGRATIONS_DIR / "versions"
VERSION_TABLE = "alembic_version"  # Alembic's default; migrations/env.py does not change it

_REVISION_LINE = re.compile(r"^revision\s*=\s*['\"]([^'\"]+)['\"]", re.MULTILINE)
_DOWN_REVISION_LINE = re.compile(r"^down_revision\s*=\s*(?:['\"]([^'\"]+)['\"]|None)", re.MULTILINE)


class SchemaError(Exception):
    """The database schema does not match what this intaked needs."""


def _alembic_config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def _alembic_head() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def _head_from_revision_files() -> str | None:
    """The one revision no other revision builds on, read from the revision files' text;
    None when they do not say plainly (Alembic then decides)."""
    revisions: set[str] = set()
    built_on: set[str] = set()
    for path in VERSIONS_DIR.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        revision = _REVISION_LINE.search(text)
        down = _DOWN_REVISION_LINE.search(text)
        if revision is None:
            continue  # __init__.py
        if down is None:
            return None  # several parents, or a form this reader does not know
        revisions.add(revision.group(1))
        if down.group(1):
            built_on.add(down.group(1))
    heads = revisions - built_on
    return heads.pop() if len(heads) == 1 else None


def head_revision() -> str:
    """The newest revision this release ships."""
    return _head_from_revision_files() or _alembic_head()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None for an empty database)."""
    versions = table(VERSION_TABLE, column("version_num"))
    with read_only(engine).connect() as conn:
        if not inspect(conn).has_table(VERSION_TABLE):
            return None
        found = list(conn.execute(select(versions.c.version_num)).scalars())
    if len(found) > 1:
        raise SchemaError(f"database schema is at several revisions at once ({', '.join(found)})")
    return str(found[0]) if found else None


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Apply every pending migration; returns (revision before, revision after)."""
    from alembic.command import upgrade as alembic_upgrade

    before = current_revision(engine)
    cfg = _alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        alembic_upgrade(cfg, "head")
    return before, head_revision()


def downgrade(engine: Engine, revision: str) -> None:
    """Step the schema back to ``revision`` (``"base"``: empty), e.g. before running an older release."""
    from alembic.command import downgrade as alembic_downgrade

    cfg = _alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        alembic_downgrade(cfg, revision)


def _known_revision(revision: str) -> bool:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_alembic_config())
    try:
        return script.get_revision(revision) is not None
    except Exception:  # alembic raises its own errors for unknown revisions
        return False


def ensure_schema(engine: Engine, *, auto_migrate: bool) -> str:
    """Make sure the schema is current before the daemon starts; raise SchemaError otherwise."""
    head = head_revision()
    current = current_revision(engine)
    if current == head:
        return head
    if current is not None and not _known_revision(current):
        raise SchemaError(
            f"database schema is at revision {current}, which this intaked does not know "
            f"(it ships up to {head}): a newer intaked has migrated it; upgrade intaked"
        )
    if not auto_migrate:
        raise SchemaError(
            f"database schema is at revision {current or '(empty)'} but this intaked needs {head}: "
            "run `intaked db upgrade` (or set database.auto_migrate = true)"
        )
    upgrade(engine)
    return head
