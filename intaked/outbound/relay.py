"""The mail relay as a port: what the outbox dispatcher needs from whatever carries its mail.

:class:`intaked.outbound.mailer.SmtpMailer` implements it over SMTP; the daemon builds one per
sending loop through a :data:`RelayFactory` and hands it to the dispatcher. Tests may give the
dispatcher a fake that implements the same two methods (tests/support/fakerelay.py).

``send`` returns the relay's reply (kept on the outbox row) and classifies every failure with the
exceptions of :mod:`intaked.outbound.mailer`: ``PermanentFailure`` (never retried),
``TemporaryFailure`` (this message later) and its subclass ``RelayUnavailable`` (the relay is out:
the whole batch waits).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


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
