"""Playing a worker that died: the test process's claims belong to a worker marked gone, and the
test carries on as a new worker (a new process would have a new id)."""

from __future__ import annotations

from sqlalchemy import Engine

from intaked.store.liveness import mark_gone, node_name, set_node_name, worker_id
from intaked.store.models import worker_table
from intaked.store.types import utcnow


def this_worker_died(engine: Engine) -> str:
    """Mark this process's worker gone (as a ``kill -9`` would leave it); returns its id."""
    dead = worker_id()
    now = utcnow()
    with engine.begin() as conn:
        if conn.execute(worker_table.select().where(worker_table.c.id == dead)).first() is None:
            conn.execute(
                worker_table.insert().values(
                    id=dead,
                    node=node_name(),
                    role="test",
                    pid=0,
                    state="alive",
                    started_at=now,
                    heartbeat_at=now,
                    lease_seconds=5.0,
                )
            )
    mark_gone(engine, {dead: "killed by the test"})
    set_node_name("")  # what follows runs as another worker
    return dead
