"""Schema migrations: apply them, or tell the operator exactly why the daemon will not start.

The schema is a public contract; it changes only through the Alembic revisions in
``intaked/store/migrations/versions``.
"""

from __future__ import annotations

from pathlib import Path

from alembic.command import downgrade as alembic_downgrade
from alembic.command import upgrade as alembic_upgrade
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


class SchemaError(Exception):
    """The database schema does not match what this intaked needs."""


def _alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def head_revision() -> str:
    """The newest revision this release ships."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None for an empty database)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Apply every pending migration; returns (revision before, revision after)."""
    before = current_revision(engine)
    cfg = _alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        alembic_upgrade(cfg, "head")
    return before, head_revision()


def downgrade(engine: Engine, revision: str) -> None:
    """Step the schema back to ``revision`` (``"base"``: empty), e.g. before running an older release."""
    cfg = _alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        alembic_downgrade(cfg, revision)


def ensure_schema(engine: Engine, *, auto_migrate: bool) -> str:
    """Make sure the schema is current before the daemon starts; raise SchemaError otherwise."""
    head = head_revision()
    current = current_revision(engine)
    if current == head:
        return head
    script = ScriptDirectory.from_config(_alembic_config())
    try:
        known = current is None or script.get_revision(current) is not None
    except Exception:  # alembic raises its own errors for unknown revisions
        known = False
    if not known:
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
