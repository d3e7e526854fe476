"""Security incidents (0017): the incident report form's fields of a ticket (seed 004's 附件三,
資通安全事件通報單), one row per ticket (docs/schema.md, ``security_forms``). The level and the
clocks are columns of ``tickets``."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from intaked.store.tables.base import Base, one_of
from intaked.store.types import utcnow

#: 事件分類: 非法入侵, 感染病毒, 阻斷服務, 其他.
INCIDENT_CATEGORIES = ("intrusion", "malware", "dos", "other")
#: 破壞程度: 系統當機, 資料庫毀損, 網頁遭篡改, 其他.
DAMAGES = ("crash", "database", "defacement", "other")
#: The form's free-text fields, at most this many characters each (the form: 文字勿超過 100 中文字).
TEXT_LIMIT = 100


class SecurityForm(Base):
    """The report form of one security incident ticket."""

    __tablename__ = "security_forms"
    __table_args__ = (
        one_of("incident_category", INCIDENT_CATEGORIES, nullable=True),
        one_of("damage", DAMAGES, nullable=True),
    )

    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True)
    occurred_at: Mapped[dt.datetime | None]
    incident_category: Mapped[str | None] = mapped_column(String(16))
    damage: Mapped[str | None] = mapped_column(String(16))
    ip_address: Mapped[str | None] = mapped_column(String(TEXT_LIMIT))
    url: Mapped[str | None] = mapped_column(String(TEXT_LIMIT))
    brand_model: Mapped[str | None] = mapped_column(String(TEXT_LIMIT))
    os_version: Mapped[str | None] = mapped_column(String(TEXT_LIMIT))
    protection: Mapped[str | None] = mapped_column(String(TEXT_LIMIT))
    category_other: Mapped[str | None] = mapped_column(String(TEXT_LIMIT))
    damage_other: Mapped[str | None] = mapped_column(String(TEXT_LIMIT))
    description: Mapped[str | None] = mapped_column(String(TEXT_LIMIT))
    impact: Mapped[str | None] = mapped_column(String(TEXT_LIMIT))
    response: Mapped[str | None] = mapped_column(String(TEXT_LIMIT))
    support: Mapped[str | None] = mapped_column(String(TEXT_LIMIT))
    solution: Mapped[str | None] = mapped_column(String(TEXT_LIMIT))
    repaired_at: Mapped[dt.datetime | None]
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str | None] = mapped_column(String(128))
