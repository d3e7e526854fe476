"""Security incidents (issue 19, docs/security-incidents.md): the security team's notice, the
level, the notification and damage-control clocks, the internal reporting chain per level, and
the incident report form (資通安全事件通報單)."""
