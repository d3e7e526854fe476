"""A mail relay that keeps what it is given: :class:`intaked.ports.mail.MailRelay` for fast
unit tests of the outbox dispatcher, with failures scripted per recipient. Integration tests use
the real SMTP sink (tests/support/smtpsink.py) instead."""

from __future__ import annotations

from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage


@dataclass
class Handed:
    """One message the relay took."""

    sender: str
    recipient: str
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.raw, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class FakeRelay:
    """Takes every message, except that a recipient in ``failures`` gets the exception listed for
    it (once per entry: a list of exceptions is used up in order)."""

    failures: dict[str, list[Exception]] = field(default_factory=dict)
    handed: list[Handed] = field(default_factory=list)
    closed: int = 0
    attempts: int = 0

    def send(self, message: bytes, sender: str, recipient: str) -> str:
        self.attempts += 1
        pending = self.failures.get(recipient)
        if pending:
            raise pending.pop(0)
        self.handed.append(Handed(sender, recipient, message))
        return f"250 2.0.0 Ok: queued as FAKE{len(self.handed)}"

    def close(self) -> None:
        self.closed += 1
