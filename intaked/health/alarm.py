"""The stall alarm: every ``health.check_seconds`` the front reads what it watches
(intaked/health/conditions.py) and, for a condition failing for longer than its threshold, mails
``health.alarm_email`` (and sends ``health.alarm_person`` an SMS) once per incident; when the
condition clears, a recovery notice goes the same way. ``alarm_raised`` / ``alarm_resolved`` are
logged with the condition either way.

The alarm must not depend on the part that stalled: it goes straight from the front through the
mail relay port and the phone provider port, never through the outbox. Which front tells an
incident, and whether it was told already, the ``alarms`` table decides
(intaked/health/incidents.py). A send that fails is logged and tried again at the next check.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import Engine

from intaked.config import Settings
from intaked.health.conditions import Condition, read_conditions
from intaked.health.incidents import claim_alarm, open_incidents, release_claim, resolve
from intaked.ports.mail import RelayFactory
from intaked.ports.phone import PhoneProvider
from intaked.store.liveness import node_name
from intaked.store.types import utcnow

log = structlog.get_logger(__name__)

SMS_LIMIT = 300


@dataclass(frozen=True, slots=True)
class Notice:
    """What one alarm or recovery says: a mail's subject and text, and the SMS."""

    subject: str
    text: str
    sms: str


class AlarmMonitor:
    """Judges the conditions and tells the operations contact (blocking: run
    :meth:`check_once` on a database thread)."""

    def __init__(
        self, settings: Settings, engine: Engine, relay: RelayFactory, phone: PhoneProvider | None
    ) -> None:
        self._settings = settings
        self._engine = engine
        self._relay = relay
        self._phone = phone
        self._node = settings.daemon.node_name or node_name()
        # When this front first saw a condition failing whose start the store does not know.
        self._first_seen: dict[str, dt.datetime] = {}

    def check_once(self) -> int:
        """One look at every condition; always 0 (a worker pass that never asks for another)."""
        now = utcnow()
        conditions = read_conditions(self._settings, self._engine, now)
        incidents = open_incidents(self._engine)
        for condition in conditions:
            self._judge(condition, incidents, now)
        return 0

    def _judge(self, condition: Condition, incidents: dict[str, bool], now: dt.datetime) -> None:
        key = condition.key
        since = condition.since
        if condition.failing and since is None:
            since = self._first_seen.setdefault(key, now)
            if (now - since).total_seconds() <= condition.threshold:
                return  # failing, not yet for long: neither raised nor cleared
        elif not condition.failing:
            self._first_seen.pop(key, None)
        stalled = (
            since is not None and condition.failing and (now - since).total_seconds() > condition.threshold
        )
        if stalled and since is not None:
            if not incidents.get(key, False):
                self._raise(condition, since, now)
        elif key in incidents and resolve(self._engine, key, now):
            log.info("alarm_resolved", condition=key, what=condition.what)
            self._notify(self._recovery(condition, now))

    def _raise(self, condition: Condition, since: dt.datetime, now: dt.datetime) -> None:
        if not claim_alarm(self._engine, condition.key, condition.detail, now):
            return  # told already, or another front is telling it
        log.error(
            "alarm_raised",
            condition=condition.key,
            what=condition.what,
            since=since.isoformat(),
            detail=condition.detail,
        )
        if not self._notify(self._alarm(condition, since)):
            release_claim(self._engine, condition.key, now)

    def _local(self, at: dt.datetime) -> str:
        return at.astimezone(ZoneInfo(self._settings.tickets.timezone)).strftime("%Y-%m-%d %H:%M:%S %Z")

    def _alarm(self, condition: Condition, since: dt.datetime) -> Notice:
        when = self._local(since)
        text = (
            f"intaked on {self._node} sees {condition.what} stalled since {when} "
            f"(alarm threshold {condition.threshold:g} s).\n\n"
            f"What it saw: {condition.detail}\n\n"
            f"What to check: {condition.hint}\n\n"
            f"Condition: {condition.key}. This alarm is sent once per incident; a recovery notice "
            "follows when the condition clears.\n"
        )
        sms = f"intaked alarm: {condition.what} stalled since {when}. {condition.detail}"
        return Notice(f"intaked: {condition.what} stalled since {when}", text, sms[:SMS_LIMIT])

    def _recovery(self, condition: Condition, now: dt.datetime) -> Notice:
        when = self._local(now)
        text = (
            f"intaked on {self._node} sees {condition.what} working again at {when}.\n\n"
            f"Condition: {condition.key}. Now: {condition.detail}\n"
        )
        return Notice(
            f"intaked: {condition.what} recovered", text, f"intaked: {condition.what} recovered at {when}"
        )

    def _notify(self, notice: Notice) -> bool:
        """Send ``notice`` to whoever is configured; True when it reached someone (or nobody is
        configured: the log line is the whole alarm then)."""
        health = self._settings.health
        tried = delivered = 0
        if health.alarm_email:
            tried += 1
            delivered += self._mail(health.alarm_email, notice)
        person = self._settings.people.get(health.alarm_person) if health.alarm_person else None
        if person is not None and person.phone and self._phone is not None:
            tried += 1
            delivered += self._sms(person.phone, notice)
        return delivered > 0 or tried == 0

    def _mail(self, address: str, notice: Notice) -> bool:
        # Imported when an alarm goes out: the front does not load the templates' engine otherwise.
        from intaked.outbound.compose import build_message, mail_payload, new_message_id

        from_address = self._settings.outbound_mail.from_address
        payload = mail_payload(
            from_address=from_address,
            to_address=address,
            to_name=None,
            rendered={"subject": notice.subject, "text": notice.text},
            message_id=new_message_id(from_address, "alarm"),
            in_reply_to=None,
            references=[],
            auto_submitted="auto-generated",
        )
        try:
            relay = self._relay()
            try:
                relay.send(build_message(payload, utcnow()), payload["from"], address)
            finally:
                relay.close()
        except Exception as exc:  # the relay refused or is down: the next check tries again
            log.error("alarm_mail_failed", to=address, error=str(exc), error_type=type(exc).__name__)
            return False
        return True

    def _sms(self, number: str, notice: Notice) -> bool:
        assert self._phone is not None
        try:
            self._phone.send_sms(number, notice.sms, None)
        except Exception as exc:  # Twilio refused or is unreachable
            log.error("alarm_sms_failed", to=number, error=str(exc), error_type=type(exc).__name__)
            return False
        return True
