"""What every webhook handler is given besides the request: the settings and the listener of
page attempt changes (the escalation engine's ``attempt_updated``, given by the daemon)."""

from __future__ import annotations

from dataclasses import dataclass

from intaked.config import Settings
from intaked.outbound.attempts import AttemptListener


@dataclass(frozen=True, slots=True)
class WebhookContext:
    settings: Settings
    on_attempt: AttemptListener

    @property
    def base_url(self) -> str:
        """``webhooks.public_url`` without a trailing slash: the base of the URLs Twilio is given."""
        return self.settings.webhooks.public_url.rstrip("/")
