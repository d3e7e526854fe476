"""The webhook receipts (``webhook_receipts``): what each webhook already acted on.

A webhook handler (intaked/twilio/) and hotline reconciliation call :func:`record_receipt` first,
in the transaction that makes their change, so a replayed or retried request (same Sid, same
event) changes nothing the second time.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence

from sqlalchemy import Connection

from intaked.store.dialect import insert_or_merge
from intaked.store.models import webhook_receipt_table
from intaked.store.types import utcnow


def record_receipt(
    conn: Connection,
    endpoint: str,
    sid: str,
    event: str,
    params: Sequence[tuple[str, str]],
    now: dt.datetime | None = None,
) -> bool:
    """Remember, in the caller's transaction, that ``endpoint`` acted on ``event`` of ``sid``.
    False when it already had: the caller then changes nothing."""
    result = conn.execute(
        insert_or_merge(conn, webhook_receipt_table)
        .values(
            dedupe_key=f"{endpoint}:{sid}:{event}"[:255],
            endpoint=endpoint[:64],
            sid=sid[:64],
            params=json.dumps(list(params), ensure_ascii=False),
            received_at=now or utcnow(),
        )
        .on_conflict_do_nothing(index_elements=[webhook_receipt_table.c.dedupe_key])
        .returning(webhook_receipt_table.c.id)
    )
    return result.first() is not None
