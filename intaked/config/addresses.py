"""The helpdesk's own sender address (``outbound_mail.from_address``): parsed, checked, rendered.

The setting may be a bare address (``helpdesk@example.com.tw``) or an address with a display name
(``IT 服務台 <helpdesk@example.com.tw>``), as people write them in a mail client. It is parsed with
the standard library's RFC 5322 header parser, once, and then each use takes the part it needs:
the envelope MAIL FROM and loop detection take the bare address, our Message-IDs take its domain,
and the From header takes both, with a non-ASCII display name as an RFC 2047 encoded-word.

The address itself must be ASCII: it goes into every Message-ID we make and into MAIL FROM,
which a relay without SMTPUTF8 could not carry (an internationalised domain is written in its
``xn--`` form).
"""

from __future__ import annotations

from dataclasses import dataclass
from email.headerregistry import AddressHeader, HeaderRegistry
from email.utils import formataddr
from functools import lru_cache

#: The From display name of a ``from_address`` given without one.
DEFAULT_DISPLAY_NAME = "IT 服務台 IT Service Desk"
EXAMPLE = '"helpdesk@example.com" or "IT 服務台 <helpdesk@example.com>"'

_registry = HeaderRegistry()


@dataclass(frozen=True, slots=True)
class SenderAddress:
    """One mailbox: ``display_name`` (may be empty) and the bare ``addr_spec`` (local@domain)."""

    display_name: str
    addr_spec: str

    @property
    def domain(self) -> str:
        return self.addr_spec.rpartition("@")[2]

    def header_value(self, default_name: str = DEFAULT_DISPLAY_NAME) -> str:
        """The From header's value as sent: a non-ASCII display name RFC 2047-encoded."""
        return formataddr((self.display_name or default_name, self.addr_spec), charset="utf-8")

    def readable(self, default_name: str = DEFAULT_DISPLAY_NAME) -> str:
        """The From header as a mail client shows it."""
        return f"{self.display_name or default_name} <{self.addr_spec}>"


@lru_cache(maxsize=64)
def parse_sender(value: str) -> SenderAddress:
    """``value`` as one mailbox; a ValueError saying what is wrong with it otherwise."""
    if any(c in value for c in "\r\n"):
        raise ValueError(f"{value!r} is not an e-mail address (a line break); expected e.g. {EXAMPLE}")
    try:
        header = _registry("From", value)
    except Exception:  # the stdlib parser raises IndexError, HeaderParseError, ... on some garbage
        raise ValueError(f"{value!r} is not an e-mail address; expected e.g. {EXAMPLE}") from None
    assert isinstance(header, AddressHeader)
    if len(header.groups) != 1 or header.groups[0].display_name is not None or len(header.addresses) != 1:
        raise ValueError(f"{value!r} is not one e-mail address; expected e.g. {EXAMPLE}")
    address = header.addresses[0]
    if not address.addr_spec.isascii():
        raise ValueError(
            f"{value!r}: the address must be ASCII (write a domain in its xn-- form); "
            "only the display name may be in any script"
        )
    if header.defects:
        reason = "; ".join(str(defect) for defect in header.defects)
        raise ValueError(f"{value!r} is not an e-mail address ({reason}); expected e.g. {EXAMPLE}")
    if not address.username or not address.domain:
        raise ValueError(
            f"{value!r} is not an e-mail address (no local part or domain); expected e.g. {EXAMPLE}"
        )
    return SenderAddress(address.display_name, address.addr_spec)
