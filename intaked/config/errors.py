"""What a bad configuration says: ``ConfigError``, one line per problem naming the key and the
reason, and never the value of a secret (wherever it came from: file, credential or environment)."""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError

from intaked.config.redaction import is_secret


class ConfigError(Exception):
    """The configuration is unusable; the message names the key and the reason."""


def _format_loc(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + item)
    return "".join(parts) or "(top level)"


def _may_echo(value: Any) -> bool:
    """Whether an error may show its value: a scalar, not a table or list that may hold a secret."""
    return value is None or isinstance(value, str | int | float | bool)


def format_validation_error(exc: ValidationError, source: str) -> str:
    """One line per error: ``<source>: <key>: <reason>``; a secret's value is never shown."""
    lines = []
    for err in exc.errors():
        key = _format_loc(err["loc"])
        if err["type"] == "extra_forbidden":
            reason = "unknown key"
        elif err["type"] == "missing":
            reason = "required key is missing"
        else:
            reason = err["msg"].removeprefix("Value error, ")
            if is_secret(err["loc"]):
                reason += " (the value is a secret: not shown)"
            elif err["type"] not in ("value_error",) and "input" in err and _may_echo(err["input"]):
                reason += f" (got {err['input']!r})"
        if not err["loc"] and re.match(r"^[a-z][\w.\[\]-]*: ", reason):  # a cross-key check names its key
            lines.append(f"{source}: {reason}")
        else:
            lines.append(f"{source}: {key}: {reason}")
    return "\n".join(lines)
