"""Injected store faults: every writing statement on an engine fails while the fault is on, the
way a full disk (SQLite) or a cut connection (PostgreSQL) makes it fail, through the driver's own
exception, so that intaked sees exactly what the database would raise."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, event

READING = ("SELECT", "BEGIN", "PRAGMA", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "SHOW", "SET")


class StoreOutage:
    """While ``down``, the engine's INSERT/UPDATE/DELETE statements raise OperationalError.
    ``after`` lets that many more writes through first (to fail in the middle of a unit of work)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.down = False
        self.failed = 0
        self.after = 0
        event.listen(engine, "before_cursor_execute", self._before)

    def _before(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not self.down or statement.lstrip().upper().startswith(READING):
            return
        if self.after > 0:
            self.after -= 1
            return
        self.failed += 1
        raise self._engine.dialect.loaded_dbapi.OperationalError("database or disk is full")

    def remove(self) -> None:
        event.remove(self._engine, "before_cursor_execute", self._before)
