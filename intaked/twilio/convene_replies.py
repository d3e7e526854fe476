"""What convened people (intaked/paging/convene.py) answer on the paging webhooks: the convene
call's menu (1 join, 2 join and dial the war room, * repeat) and their SMS reply; each joins
through :func:`intaked.paging.convene.record_join`. Called by intaked/twilio/page_replies.py
for attempts whose ``step`` is the convene's, in the webhook's transaction.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, select

from intaked.config.warroom import parse_war_room
from intaked.paging.convene import record_join, team_of
from intaked.paging.rows import page_facts, ticket_row
from intaked.ports.phone import KEYPRESS_PATH, page_call_path
from intaked.store.models import page_table
from intaked.twilio.twiml import (
    JOIN_BRIDGE_KEY,
    VoiceSettings,
    convene_twiml,
    dial_bridge_twiml,
    redirect_twiml,
    say_twiml,
)

MAX_REPEATS = 3


def _page(conn: Connection, attempt: Mapping[str, Any]) -> Any:
    return conn.execute(select(page_table).where(page_table.c.id == attempt["page_id"])).mappings().one()


def convene_call(
    conn: Connection, voice: VoiceSettings, attempt: Mapping[str, Any], base_url: str, repeats: int
) -> str:
    """The TwiML of an answered convene call."""
    page = _page(conn, attempt)
    ticket = ticket_row(conn, page["ticket_id"])
    if repeats >= MAX_REPEATS:
        return say_twiml(voice, "未收到回應，再見。", "No response. Goodbye.")
    action = f"{base_url}{KEYPRESS_PATH}?attempt={attempt['id']}"
    again = f"{base_url}{page_call_path(attempt['id'])}&repeat={repeats + 1}"
    team = team_of(conn, ticket["id"], attempt["id"], attempt["person"])
    return convene_twiml(page_facts(ticket, page), team, voice, action, repeat_url=again)


def convene_keypress(
    conn: Connection,
    voice: VoiceSettings,
    attempt: Mapping[str, Any],
    digits: str,
    *,
    base_url: str,
    now: dt.datetime,
) -> str:
    """1 joins; 2 joins and dials the war room (a phone bridge); anything else repeats."""
    bridge = parse_war_room(str(json.loads(_page(conn, attempt)["policy"] or "{}").get("war_room") or ""))
    if digits == "1" or (digits == JOIN_BRIDGE_KEY and bridge is not None and bridge.number):
        joined = record_join(conn, attempt, channel="call", now=now)
        zh, en = f"已加入工單 {joined.number} 的處理，謝謝。", "You have joined the incident. Thank you."
        if digits == JOIN_BRIDGE_KEY and bridge is not None:
            return dial_bridge_twiml(voice, zh + "正在接通作戰會議。", en + " Joining the bridge.", bridge)
        return say_twiml(voice, zh, en)
    return redirect_twiml(base_url + page_call_path(attempt["id"]))
