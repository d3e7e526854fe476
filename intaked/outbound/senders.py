"""The workers that send the outbox's rows (mail: intaked/outbound/dispatcher.py; Twilio:
intaked/twilio/dispatcher.py): ``outbox.senders`` loops, woken when rows are queued and every
``outbox.poll_seconds`` anyway, that stop claiming for a while once the provider is unreachable."""

from __future__ import annotations

import random
import time
from concurrent.futures import Executor

from intaked.config import Settings
from intaked.store.settle import Unsettled
from intaked.worker import WakeableWorker


class OutboxSender(WakeableWorker):
    """Runs :meth:`_send` in ``outbox.senders`` loops, except while paused (:meth:`_pause`)."""

    def __init__(
        self, name: str, executor: Executor, settings: Settings, unsettled: Unsettled | None = None
    ) -> None:
        self._settings = settings
        self._paused_until = 0.0  # monotonic time before which no batch is claimed (provider out)
        super().__init__(
            name,
            executor,
            poll_seconds=settings.outbox.poll_seconds,
            loops=settings.outbox.senders,
            unsettled=unsettled,
        )

    def _pass(self) -> int:
        if time.monotonic() < self._paused_until:
            return 0
        return self._send()

    def _send(self) -> int:
        """Claim and send one batch (blocking); how many rows were handled."""
        raise NotImplementedError

    def _pause(self) -> float:
        """Claim nothing for a while (the provider is unreachable: an outage costs one attempt per
        pause, not one per queued row); returns for how many seconds."""
        pause = self._settings.outbox.retry_base_seconds * random.uniform(0.5, 1.0)
        self._paused_until = time.monotonic() + pause
        return pause
