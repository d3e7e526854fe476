"""What paged people send back: keypresses on a page call and SMS replies.

Each function runs in the caller's transaction (a handler of intaked/twilio/page_webhooks.py,
after the signature was checked) and returns the TwiML to answer with. Only a keypress of 1 (or 2,
which also joins the war-room bridge), an SMS reply
(``1``, ``ack``, ``確認`` with the page's reply code), or ``intaked page ack`` acknowledges; a call
that ends without a key (voicemail, an answering machine) is not an acknowledgement.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import KW_ONLY, dataclass
from typing import Any

import structlog
from sqlalchemy import Connection, select, update

from intaked.config import Settings
from intaked.config.warroom import parse_war_room
from intaked.paging.convene import CONVENE_STEP, is_convene, record_join
from intaked.paging.outcomes import acknowledge, escalate_now
from intaked.paging.rows import AckResult, lock_page, page_facts, previous_position, ticket_row
from intaked.ports.phone import KEYPRESS_PATH, page_call_path
from intaked.store.models import page_attempt_table, page_table
from intaked.twilio.convene_replies import convene_call, convene_keypress
from intaked.twilio.twiml import (
    JOIN_BRIDGE_KEY,
    VoiceSettings,
    dial_bridge_twiml,
    page_twiml,
    redirect_twiml,
    say_twiml,
)

log = structlog.get_logger(__name__)

_attempts = page_attempt_table
_pages = page_table

ACK_WORDS = frozenset({"1", "ack", "ok", "yes", "確認", "收到", "確定"})
MAX_REPEATS = 3
#: The statuses of a page call's attempt until the call is answered.
_NOT_ANSWERED = ("queued", "sent", "ringing")
_TOKENS = re.compile(r"[0-9]+|[^\s0-9,.;:!?，。！？、]+")


def voice_settings(settings: Settings) -> VoiceSettings:
    twilio = settings.twilio
    return VoiceSettings(
        language=twilio.language_zh,
        voice=twilio.voice_zh,
        english_language=twilio.language_en,
        english_voice=twilio.voice_en,
        gather_seconds=settings.paging.gather_seconds,
    )


@dataclass(frozen=True, slots=True)
class PageCall:
    """A page call Twilio asks about (a handler of intaked/twilio/page_webhooks.py), answered in
    the caller's transaction: ``attempt_id`` is its page attempt, ``base_url`` where our webhooks
    are, ``now`` when Twilio asked. Each answer is TwiML."""

    conn: Connection
    settings: Settings
    attempt_id: int
    _: KW_ONLY
    base_url: str
    now: dt.datetime

    @property
    def _voice(self) -> VoiceSettings:
        return voice_settings(self.settings)

    def answered(self, answered_by: str = "", repeats: int = 0) -> str:
        """The call is answered (or asked to repeat): the page's menu, or why there is none."""
        attempt = self._attempt()
        if attempt is None:
            return self._unknown()
        conn, voice = self.conn, self._voice
        page = conn.execute(select(_pages).where(_pages.c.id == attempt["page_id"])).mappings().one()
        ticket = ticket_row(conn, page["ticket_id"])
        if attempt["status"] in _NOT_ANSWERED:
            conn.execute(
                update(_attempts)
                .where(_attempts.c.id == self.attempt_id, _attempts.c.status.in_(_NOT_ANSWERED))
                .values(status="answered", answered_at=self.now)
            )
        if is_convene(attempt):
            return convene_call(conn, voice, attempt, self.base_url, repeats)
        facts = page_facts(ticket, page)
        if page["state"] != "active":
            by = page["acknowledged_by"] or ""
            return say_twiml(
                voice,
                f"工單 {facts.number} 已由 {by} 確認，不需處理。"
                if by
                else f"工單 {facts.number} 的呼叫已結束。",
                f"Ticket already acknowledged by {by}." if by else "This page has ended.",
            )
        if answered_by.startswith(("machine", "fax")):
            # A voicemail box: leave the summary, which does not acknowledge anything.
            return say_twiml(
                voice,
                f"資訊緊急事件 {facts.priority}，工單 {facts.number}。{facts.subject}。"
                "請盡快回電或回覆簡訊。",
                f"IT emergency {facts.priority}, ticket {facts.number}. Please respond.",
            )
        if repeats >= MAX_REPEATS:
            return say_twiml(voice, "未收到回應，再見。", "No response. Goodbye.")
        action = f"{self.base_url}{KEYPRESS_PATH}?attempt={self.attempt_id}"
        again = f"{self.base_url}{page_call_path(self.attempt_id)}&repeat={repeats + 1}"
        return page_twiml(facts, voice, action, repeat_url=again)

    def keypress(self, digits: str) -> str:
        """A key pressed: 1 acknowledges, 2 acknowledges and joins the war-room bridge, 9
        escalates now, * (or anything else) repeats."""
        attempt = self._attempt()
        if attempt is None:
            return self._unknown()
        if is_convene(attempt):
            voice = self._voice
            return convene_keypress(self.conn, voice, attempt, digits, base_url=self.base_url, now=self.now)
        bound = log.bind(
            attempt=self.attempt_id, page=attempt["page_id"], person=attempt["person"], digits=digits
        )
        if digits == "1":
            return self._acknowledge(attempt, bound)
        if digits == JOIN_BRIDGE_KEY:
            return self._join_bridge(attempt, bound)
        if digits == "9":
            return self._escalate(attempt, bound)
        return redirect_twiml(self.base_url + page_call_path(self.attempt_id))

    def _acknowledge_page(self, attempt: Any) -> AckResult:
        """Acknowledge the attempt's page as its person, by this call."""
        return acknowledge(
            self.conn,
            self.settings,
            attempt["page_id"],
            by=attempt["person"],
            channel="call",
            now=self.now,
            attempt_id=self.attempt_id,
        )

    def _acknowledge(self, attempt: Any, bound: Any) -> str:
        result = self._acknowledge_page(attempt)
        if result.acknowledged:
            bound.info("page_ack_by_keypress")
            return say_twiml(
                self._voice,
                f"已確認工單 {result.number}，你是事件指揮官。謝謝。",
                "Acknowledged. You are the incident commander. Thank you.",
            )
        zh, en = not_acknowledged_text(result)
        return say_twiml(self._voice, zh, en)

    def _join_bridge(self, attempt: Any, bound: Any) -> str:
        """2: acknowledge as 1 does, then dial the bridge (also when someone else was first: the
        bridge is where the incident is worked). Without a phone bridge, 2 repeats the menu."""
        page = self.conn.execute(select(_pages.c.policy).where(_pages.c.id == attempt["page_id"])).scalar()
        bridge = parse_war_room(str(json.loads(page or "{}").get("war_room") or ""))
        if bridge is None or not bridge.number:
            return redirect_twiml(self.base_url + page_call_path(self.attempt_id))
        result = self._acknowledge_page(attempt)
        if result.acknowledged:
            bound.info("page_ack_by_keypress", bridge=True)
            zh, en = "已確認，你是事件指揮官。正在接通作戰會議。", "Acknowledged. Joining the bridge."
        else:
            zh, en = not_acknowledged_text(result)
            zh, en = zh + "正在接通作戰會議。", en + " Joining the bridge."
        return dial_bridge_twiml(self._voice, zh, en, bridge)

    def _escalate(self, attempt: Any, bound: Any) -> str:
        page = lock_page(self.conn, attempt["page_id"])
        if (
            page is not None
            and _is_current_step(page, attempt)
            and escalate_now(
                self.conn,
                page,
                reason=f"9 pressed by {attempt['person']}",
                actor=attempt["person"],
                now=self.now,
            )
        ):
            bound.warning("page_escalated_by_keypress")
            return say_twiml(self._voice, "正在立即升級。", "Escalating now.")
        return say_twiml(self._voice, "此呼叫已結束。", "This page has ended.")

    def _attempt(self) -> Any:
        query = select(_attempts).where(_attempts.c.id == self.attempt_id)
        return self.conn.execute(query).mappings().one_or_none()

    def _unknown(self) -> str:
        return say_twiml(self._voice, "找不到此呼叫。", "This page is unknown.")


def sms_reply(
    conn: Connection, settings: Settings, sender: str, body: str, *, now: dt.datetime
) -> str | None:
    """An SMS to our number: an acknowledgement if it says so and names (or implies) a page the
    sender was paged for; returns the text to answer with, or None for no answer (success: the
    confirmation SMS goes out through the outbox)."""
    tokens = [t.lower() for t in _TOKENS.findall(body.strip())]
    if not tokens or tokens[0] not in ACK_WORDS:
        return None  # not a page reply (the hotline issue handles other texts)
    codes = [t for t in tokens[1:] if t.isdigit()]
    convened = _convene_reply(conn, sender, codes, now)
    if convened is not None:
        return convened
    sender_pages = (
        select(_attempts.c.page_id, _attempts.c.person, _attempts.c.id, _attempts.c.channel)
        .join(_pages, _pages.c.id == _attempts.c.page_id)
        .where(
            _attempts.c.address == sender,
            _attempts.c.channel.in_(("sms", "call")),
            _attempts.c.step != CONVENE_STEP,
        )
    )
    if codes:
        sender_pages = sender_pages.where(_pages.c.reply_code == codes[0])
    else:
        sender_pages = sender_pages.where(_pages.c.state == "active")
    rows = conn.execute(sender_pages.order_by(_attempts.c.id)).all()
    # The SMS that carried the page is the one acknowledged; a call of theirs still ringing is hung up.
    pages: dict[int, tuple[str, int | None]] = {}
    for page_id, person, attempt_id, channel in rows:
        known = pages.get(page_id)
        pages[page_id] = (person, attempt_id if channel == "sms" else known[1] if known else None)
    if not pages:
        log.warning("page_reply_unmatched", sender=sender, body=body[:40])
        return "找不到你被呼叫的事件，請附上代碼，例如：1 1234 / No page found for you: reply 1 <code>."
    if len(pages) > 1:
        return "你有多個呼叫，請附上代碼，例如：1 1234 / Several pages: reply 1 <code>."
    ((page_id, (person, attempt_id)),) = pages.items()
    result = acknowledge(conn, settings, page_id, by=person, channel="sms", now=now, attempt_id=attempt_id)
    if result.acknowledged:
        log.info("page_ack_by_sms", page=page_id, person=person)
        return None
    zh, en = not_acknowledged_text(result)
    return f"{zh} / {en}"


def _convene_reply(conn: Connection, sender: str, codes: list[str], now: dt.datetime) -> str | None:
    """A reply from someone convened to an incident (intaked/paging/convene.py): with the code
    of its page, or without one while they have a convene not yet answered, they joined; None
    when the reply is not about a convene."""
    query = (
        select(_attempts)
        .join(_pages, _pages.c.id == _attempts.c.page_id)
        .where(
            _attempts.c.address == sender,
            _attempts.c.step == CONVENE_STEP,
            _attempts.c.channel.in_(("sms", "call")),
        )
    )
    if codes:
        query = query.where(_pages.c.reply_code == codes[0])
    else:
        query = query.where(_attempts.c.acknowledged_at.is_(None))
    rows = conn.execute(query.order_by(_attempts.c.id)).mappings().all()
    if not rows:
        return None
    if len({row["page_id"] for row in rows}) > 1:
        return "你有多個召集，請附上代碼，例如：1 1234 / Several incidents: reply 1 <code>."
    carried = [row for row in rows if row["channel"] == "sms"] or list(rows)
    joined = record_join(conn, dict(carried[-1]), channel="sms", now=now)
    return f"已加入 {joined.number} 的處理，謝謝。 / Joined {joined.number}."


def not_acknowledged_text(result: AckResult) -> tuple[str, str]:
    """Why an acknowledgement changed nothing, in Chinese and English: who was first, or that
    the page was cancelled (the priority was lowered, the ticket resolved)."""
    if result.state == "acknowledged":
        by = result.by or "someone else"
        return f"工單 {result.number} 已由 {by} 確認。", f"{result.number} already acknowledged by {by}."
    return f"工單 {result.number} 的呼叫已取消。", f"The page for {result.number} was cancelled."


def _is_current_step(page: Any, attempt: Any) -> bool:
    """Whether ``attempt`` belongs to the step that ran last: a 9 pressed on an older step's
    call must not skip the current step's wait."""
    steps = len(json.loads(page["policy"]).get("steps") or [])
    return (attempt["round"], attempt["step"]) == previous_position(page, steps)
