"""Alembic environment for intaked's store: runs on the connection intaked hands it.

On PostgreSQL the migration holds a transaction-level advisory lock, so two daemons starting at
once apply it one after the other instead of racing.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from intaked.store.models import Base

MIGRATION_LOCK_KEY = 0x696E74616B6564  # "intaked"

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - intaked always passes its connection
    raise RuntimeError("run migrations through `intaked db upgrade`")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
    context.run_migrations()
