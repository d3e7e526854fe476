"""The incident report form's fields (seed 004, 附件三 資通安全事件通報單), stored per ticket in
``security_forms``: what each field is called on the form, which values the choice fields take,
and setting one field (text at most 100 characters, as the form says; nothing is written when a
value is refused)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, select, update

from intaked.security.actions import NoSuchTicket
from intaked.sla.tracker import event
from intaked.store.dialect import insert_or_merge
from intaked.store.models import security_form_table, ticket_event_table, ticket_table
from intaked.store.tables.security import TEXT_LIMIT
from intaked.store.types import utcnow


@dataclass(frozen=True)
class Field:
    name: str
    label: str  # as on the form
    kind: str  # "time", "text" or "choice"
    choices: Mapping[str, str] | None = None  # value -> the form's word


CATEGORY_WORDS = {"intrusion": "非法入侵", "malware": "感染病毒", "dos": "阻斷服務", "other": "其他"}
DAMAGE_WORDS = {"crash": "系統當機", "database": "資料庫毀損", "defacement": "網頁遭篡改", "other": "其他"}
FIELDS = (
    Field("occurred_at", "事件發生時間", "time"),
    Field("ip_address", "IP 位址 (IP Address)", "text"),
    Field("url", "網際網路位址 (Web-URL)", "text"),
    Field("brand_model", "設備廠牌、機型", "text"),
    Field("os_version", "作業系統名稱、版本", "text"),
    Field("protection", "已裝置之安全機制", "text"),
    Field("incident_category", "事件分類", "choice", CATEGORY_WORDS),
    Field("category_other", "事件分類 (其他)", "text"),
    Field("damage", "破壞程度", "choice", DAMAGE_WORDS),
    Field("damage_other", "破壞程度 (其他)", "text"),
    Field("description", "事件說明", "text"),
    Field("impact", "可能影響範圍及損失評估", "text"),
    Field("response", "應變措施", "text"),
    Field("support", "期望支援項目", "text"),
    Field("solution", "解決辦法", "text"),
    Field("repaired_at", "已修護時間", "time"),
)
BY_NAME = {field.name: field for field in FIELDS}
# The Chinese words of the choices are accepted as values too.
_WORD_TO_VALUE = {
    name: {word: value for value, word in (BY_NAME[name].choices or {}).items()}
    for name in ("incident_category", "damage")
}


class InvalidField(ValueError):
    """A field or value the form does not take."""


def parse_value(name: str, text: str) -> Any:
    """The stored value of ``text`` for field ``name`` ("" clears it); InvalidField otherwise."""
    field = BY_NAME.get(name)
    if field is None:
        raise InvalidField(f"no form field {name!r} (fields: {', '.join(BY_NAME)})")
    if text == "":
        return None
    if field.kind == "time":
        try:
            value = dt.datetime.fromisoformat(text)
        except ValueError:
            raise InvalidField(f"{name}: {text!r} is not an ISO 8601 date and time") from None
        if value.tzinfo is None:
            raise InvalidField(f"{name}: {text!r} has no UTC offset (e.g. 2026-12-24T16:00:00+08:00)")
        return value
    if field.kind == "choice":
        value_of = _WORD_TO_VALUE[name]
        choices = field.choices or {}
        if text in choices:
            return text
        if text in value_of:
            return value_of[text]
        raise InvalidField(
            f"{name}: {text!r} is not one of {', '.join(f'{k} ({v})' for k, v in choices.items())}"
        )
    if len(text) > TEXT_LIMIT:
        raise InvalidField(
            f"{name} ({field.label}) is {len(text)} characters long; the form takes at most {TEXT_LIMIT}"
        )
    return text


def set_field(
    engine: Engine, number: str, name: str, text: str, *, by: str, now: dt.datetime | None = None
) -> None:
    """Set one field of ticket ``number``'s form (validated before anything is written)."""
    value = parse_value(name, text)
    now = now or utcnow()
    with engine.begin() as conn:
        ticket_id = conn.execute(select(ticket_table.c.id).where(ticket_table.c.number == number)).scalar()
        if ticket_id is None:
            raise NoSuchTicket(number)
        before = load(conn, ticket_id).get(name)
        _ensure_row(conn, ticket_id, now)
        conn.execute(
            update(security_form_table)
            .where(security_form_table.c.ticket_id == ticket_id)
            .values({name: value, "updated_at": now, "updated_by": by})
        )
        detail = {"field": name, "before": before, "after": value}
        conn.execute(ticket_event_table.insert(), [event(ticket_id, "security_form_set", detail, now, by)])


def _ensure_row(conn: Connection, ticket_id: int, now: dt.datetime) -> None:
    conn.execute(
        insert_or_merge(conn, security_form_table)
        .values(ticket_id=ticket_id, updated_at=now)
        .on_conflict_do_nothing(index_elements=[security_form_table.c.ticket_id])
    )


def load(conn: Connection, ticket_id: int) -> dict[str, Any]:
    """The stored form of ``ticket_id`` (every field, None when not set)."""
    row = (
        conn.execute(select(security_form_table).where(security_form_table.c.ticket_id == ticket_id))
        .mappings()
        .first()
    )
    return {field.name: (row[field.name] if row is not None else None) for field in FIELDS}
