"""Which priorities page, and the escalation policy a page freezes onto its row at its start.

The policy is copied from ``[paging.policies.*]`` as JSON when the page starts, so a configuration
change never alters a page that is under way.
"""

from __future__ import annotations

from typing import Any

from intaked.config import PagePolicySettings, Settings
from intaked.sla.targets import wall_time

PAGED_PRIORITIES = ("P1", "P2")
#: Call outcomes worth dialling again (the phone may be free a minute later).
REDIAL_ERRORS = frozenset({"busy", "no-answer"})
#: An attempt reached the provider (it may have rung or been delivered).
REACHED_STATUSES = ("sent", "delivered", "ringing", "answered", "completed", "acknowledged")


def seconds(duration: str) -> float:
    """A configured duration (``"5m"``) in seconds of wall time."""
    return wall_time(duration).total_seconds()


def freeze_policy(settings: Settings, priority: str, team: str = "") -> dict[str, Any] | None:
    """The policy a page of ``priority`` runs, as stored on the page (None: no paging for it).

    With ``team`` (a ``[teams.<name>]`` that names an ``oncall`` schedule or a ``policy``), the
    page is that team's: its own policy (else the one of ``priority``), whose first step pages
    the team's on-call when it names one; the later steps escalate as configured (with no
    policy at all, the on-call alone, by SMS and call). A team that names neither pages under the
    policy of ``priority`` (the QRC)."""
    cfg = settings.teams.get(team) if team else None
    paged_by_team = cfg is not None and bool(cfg.oncall or cfg.policy)
    key = cfg.policy if cfg is not None and cfg.policy else priority
    policy: PagePolicySettings | None = settings.paging.policies.get(key)  # type: ignore[call-overload]
    if policy is None and cfg is not None and cfg.oncall:  # the team's on-call, by SMS and call
        policy = PagePolicySettings.model_validate({"steps": [{"targets": [{"oncall": cfg.oncall}]}]})
    if policy is None:
        return None
    steps = [
        {
            "after_seconds": seconds(step.after),
            "targets": [{"oncall": t.oncall} if t.oncall else {"person": t.person} for t in step.targets],
            "channels": list(step.channels),
        }
        for step in policy.steps
    ]
    if cfg is not None and cfg.oncall:
        steps[0] = {**steps[0], "targets": [{"oncall": cfg.oncall}]}
    return {
        "priority": priority,
        "policy": key,
        "team": team if paged_by_team else "",
        "repeat": policy.repeat,
        "wait_after_last_step_seconds": seconds(policy.give_up_after),
        "call_retries": settings.paging.call_retries,
        "call_retry_after_seconds": seconds(settings.paging.call_retry_after),
        "callback_base": _callback_base(settings),
        "from_address": settings.outbound_mail.from_address,
        "war_room": settings.paging.war_room,
        "steps": steps,
    }


def _callback_base(settings: Settings) -> str:
    public = getattr(getattr(settings, "webhooks", None), "public_url", "") or ""
    return str(public).rstrip("/")


def missing_policy_reason(priority: str) -> str:
    """Why a paged priority pages nobody (``intaked check-config`` says it too)."""
    return f"no [paging.policies.{priority}] is configured: a {priority} ticket pages nobody"


def missing_policies(settings: Settings) -> list[str]:
    """The paged priorities (P1, P2) without an escalation policy."""
    return [p for p in PAGED_PRIORITIES if p not in settings.paging.policies]
