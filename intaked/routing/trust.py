"""Is a suggested priority trusted? Trusted suggestions of P1/P2 page QRC before a person looks,
so this decides whether a mail can wake someone up at 3 a.m.

Trusted is:

- the hotline's emergency menu choice (``trust.hotline_emergency_choice``, default "1"): the caller
  pressed it on our own phone system; or
- mail whose From: is in an internal domain (``trust.internal_domains``, subdomains included), and
  whose ``Authentication-Results`` (RFC 8601) written by **our own MTA** (``trust.authserv_id``)
  says ``spf=pass`` for an internal envelope domain (``smtp.mailfrom``; when the header has none,
  the envelope sender we received) or ``dkim=pass`` with ``header.d`` (or the domain of
  ``header.i``) in an internal domain.

Everything else is not trusted, and fails closed: no ``authserv_id`` configured, no header, a
header we cannot parse, a result other than ``pass`` (``softfail``, ``neutral``, ``temperror``...).

What a forger controls, and why it does not help them:

- Any header field of their message, including ``Authentication-Results: <our id>; spf=pass``.
  Every MTA *prepends* its trace fields, so what our MTA writes is above everything that came with
  the message: only the top ``trust.authserv_fields`` Authentication-Results fields (default 1,
  the number our MTA adds to every message) are read, and only if they carry our authserv-id.
  A field with our id further down is never read, whatever it says, even when our MTA's real
  field above it says ``fail``. If a hop after our MTA adds its own field on top, nothing is
  trusted: this fails closed, never open. (RFC 8601 §5 also asks our MTA to delete incoming
  fields with its id; Postfix with OpenDKIM / OpenDMARC, or rspamd, can. Reading only the top
  fields holds even when it does not.)
- The header From: and the envelope sender: an outside SPF or DKIM pass is for the outsider's
  domain, so it is checked against the internal list, and the From: must be internal too (an
  outsider's DKIM pass for ``evil.example`` on mail "From: ceo@our.example" is not trusted).
- Values our MTA copies into its own field (``smtp.mailfrom``, ``header.from``): the parser
  (intaked/routing/authres.py) treats quoted strings and comments as text, so a mail-from of
  ``"x;spf=pass"@evil.example`` or a comment ``(dkim=pass)`` never becomes a result.
- A message that reaches intaked without passing our MTA: then no field was written by our MTA and
  the forger's field would be at the top. The SMTP listener must only take mail from our MTA
  (listen on loopback or firewall it), and our MTA must stamp every message it relays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from intaked.config import TrustSettings
from intaked.routing.authres import AuthResults, AuthResultsSyntaxError, parse_authentication_results


@dataclass(frozen=True, slots=True)
class TrustVerdict:
    """Whether the source is trusted, what vouched for it, and why (for logs and the CLI)."""

    trusted: bool
    reason: str
    source: str | None = None  # "hotline:emergency", "spf", "dkim"


def domain_of(address: str | None) -> str:
    """The lower-case domain of an address (or of a bare domain), "" when there is none."""
    if not address:
        return ""
    text = address.strip().strip("<>").lower()
    return text.rpartition("@")[2].rstrip(".")


def is_internal(domain: str, internal_domains: Sequence[str]) -> bool:
    """``domain`` is one of ``internal_domains`` or a subdomain of one."""
    return bool(domain) and any(domain == d or domain.endswith("." + d) for d in internal_domains)


def our_fields(fields: Sequence[str], authserv_id: str, count: int = 1) -> tuple[list[AuthResults], str]:
    """The Authentication-Results fields our MTA wrote: of ``fields`` (in message order, topmost
    first) the first ``count``, as long as they carry our authserv-id; and a note on what was
    ignored. Fields below them are never read: that is where a forger's fields end up."""
    ours: list[AuthResults] = []
    for index, value in enumerate(fields[:count]):
        try:
            parsed = parse_authentication_results(value)
        except AuthResultsSyntaxError as exc:
            return (
                ours,
                f"field {index + 1} from the top is unreadable ({exc}); it and those below are ignored",
            )
        if parsed.authserv_id != authserv_id:
            return ours, (
                f"field {index + 1} from the top is from {parsed.authserv_id!r}, not our MTA "
                f"{authserv_id!r}; it and those below are ignored"
            )
        ours.append(parsed)
    below = len(fields) - len(ours)
    return ours, f"{below} field(s) below ours ignored" if below > 0 else ""


def assess_mail(
    cfg: TrustSettings, header_from: str | None, envelope_from: str | None, auth_fields: Sequence[str]
) -> TrustVerdict:
    """Whether mail with this From:, envelope sender and Authentication-Results fields is trusted."""
    if not cfg.authserv_id:
        return TrustVerdict(False, "trust.authserv_id is not configured: no mail is trusted")
    if not cfg.internal_domains:
        return TrustVerdict(False, "trust.internal_domains is empty: no mail is trusted")
    from_domain = domain_of(header_from)
    if not is_internal(from_domain, cfg.internal_domains):
        return TrustVerdict(False, f"From: domain {from_domain or 'none'!r} is not internal")
    if not auth_fields:
        return TrustVerdict(False, "no Authentication-Results field")
    ours, ignored = our_fields(auth_fields, cfg.authserv_id, cfg.authserv_fields)
    if not ours:
        return TrustVerdict(False, ignored or f"no Authentication-Results field from {cfg.authserv_id!r}")
    seen: list[str] = []
    for field_results in ours:
        for result in field_results.results:
            if result.method == "spf":
                checked = result.get("smtp.mailfrom") or envelope_from
                spf_domain = domain_of(checked)
                seen.append(f"spf={result.result} ({spf_domain or 'no domain'})")
                if result.result == "pass" and is_internal(spf_domain, cfg.internal_domains):
                    return TrustVerdict(True, f"{cfg.authserv_id}: spf=pass for {spf_domain}", "spf")
            elif result.method == "dkim":
                identity = result.get("header.d") or domain_of(result.get("header.i"))
                dkim_domain = domain_of(identity)
                seen.append(f"dkim={result.result} ({dkim_domain or 'no domain'})")
                if result.result == "pass" and is_internal(dkim_domain, cfg.internal_domains):
                    return TrustVerdict(True, f"{cfg.authserv_id}: dkim=pass for {dkim_domain}", "dkim")
    found = ", ".join(seen) if seen else "no spf or dkim result"
    why = f"{cfg.authserv_id} says {found}: no pass for an internal domain"
    return TrustVerdict(False, f"{why}; {ignored}" if ignored else why)


def assess_hotline(cfg: TrustSettings, hotline_choice: str | None) -> TrustVerdict:
    """Whether a hotline caller's menu choice is the emergency choice."""
    choice = (hotline_choice or "").strip()
    if choice and choice == cfg.hotline_emergency_choice:
        return TrustVerdict(True, f"hotline emergency choice {choice!r}", "hotline:emergency")
    return TrustVerdict(False, f"hotline choice {choice or 'none'!r} is not the emergency choice")
