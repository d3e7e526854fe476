"""intaked's own health, watched from the front (docs/operations.md, "Its own alarm and the
heartbeat"):

- ``conditions.py``: what a stall looks like in the store (the ledger, the outbox, Twilio, the
  IMAP mailboxes, this node's workers);
- ``incidents.py``: the ``alarms`` table, so that each incident is told once;
- ``alarm.py``: the monitor that mails (and texts) the operations contact, straight through the
  relay and phone ports, never through the outbox;
- ``heartbeat.py``: the heartbeat URL, pinged only while ready.

:class:`HealthWorkers` runs both on the front's loop, their blocking work on the daemon's database
threads. The daemon builds the relay factory and the phone provider and passes them in.
"""

from __future__ import annotations

from concurrent.futures import Executor

from sqlalchemy import Engine

from intaked.config import Settings
from intaked.health.alarm import AlarmMonitor
from intaked.health.heartbeat import HeartbeatPinger
from intaked.ports.mail import RelayFactory
from intaked.ports.phone import PhoneProvider
from intaked.worker import WakeableWorker


class HealthWorkers:
    """The alarm monitor and, with ``health.heartbeat_url`` set, the heartbeat."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        executor: Executor,
        relay: RelayFactory,
        phone: PhoneProvider | None,
    ) -> None:
        health = settings.health
        self.monitor = AlarmMonitor(settings, engine, relay, phone)
        self._workers = [
            WakeableWorker("alarm", executor, self.monitor.check_once, poll_seconds=health.check_seconds)
        ]
        if health.heartbeat_url:
            pinger = HeartbeatPinger(settings, engine)
            self._workers.append(
                WakeableWorker("heartbeat", executor, pinger.ping_once, poll_seconds=health.heartbeat_seconds)
            )

    def start(self) -> None:
        for worker in self._workers:
            worker.start()

    async def stop(self) -> None:
        for worker in self._workers:
            await worker.stop()


__all__ = ["AlarmMonitor", "HealthWorkers", "HeartbeatPinger"]
