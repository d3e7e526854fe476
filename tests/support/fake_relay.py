"""A mail relay that keeps what it is given: :class:`intaked.ports.mail.MailRelay` for fast
unit tests of the outbox dispatcher, with failures scripted per recipient. Integration tests use
the real SMTP sink (tests/support/smtpsink.py) instead."""

from __future__ import annotations

from dataclasses import dataclass, field

from tests.support.smtpsink import Received


@dataclass
class FakeRelay:
    """Takes every message, except that a recipient in ``failures`` gets the exception listed for
    it (once per entry: a list of exceptions is used up in order)."""

    failures: dict[str, list[Exception]] = field(default_factory=dict)
    handed: list[Received] = field(default_factory=list)  # as the real sink records them
    closed: int = 0
    attempts: int = 0

    def send(self, message: bytes, sender: str, recipient: str) -> str:
        self.attempts += 1
        pending = self.failures.get(recipient)
        if pending:
            raise pending.pop(0)
        self.handed.append(Received(sender, [recipient], message))
        return f"250 2.0.0 Ok: queued as FAKE{len(self.handed)}"

    def close(self) -> None:
        self.closed += 1
