"""The mail relay port: what the outbox dispatcher needs from whatever carries its mail.

:class:`intaked.outbound.mailer.SmtpMailer` implements it over SMTP; the daemon builds one per
sending loop through a :data:`RelayFactory` and hands it to the dispatcher. Tests may give the
dispatcher a fake that implements the same two methods (tests/support/fake_relay.py).

``send`` returns the relay's reply (kept on the outbox row) and classifies every failure:

- :class:`PermanentFailure` (5xx): never retried;
- :class:`TemporaryFailure` (4xx): this message later;
- its subclass :class:`RelayUnavailable` (refused or dropped connections, timeouts, a relay that
  does not offer the STARTTLS we require or refuses our login): the relay itself is out, so the
  whole batch waits and the dispatcher pauses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class TemporaryFailure(Exception):
    """Try again later."""


class RelayUnavailable(TemporaryFailure):
    """The relay cannot be reached or used at all: no message will get through until it is back."""


class PermanentFailure(Exception):
    """Do not try again: the relay refused for good."""


class MailRelay(Protocol):
    """Carries one message at a time to one recipient; may keep a connection between calls."""

    def send(self, message: bytes, sender: str, recipient: str) -> str:
        """Hand ``message`` over for ``recipient`` with envelope sender ``sender``; the reply."""
        ...

    def close(self) -> None:
        """Let go of any connection kept between messages."""
        ...


#: Makes a relay for one sending loop (``outbox.senders`` of them run at once).
RelayFactory = Callable[[], MailRelay]
