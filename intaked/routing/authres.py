"""A small, careful parser of one ``Authentication-Results`` header field value (RFC 8601 §2.2).

    authres-header = authserv-id [ CFWS authres-version ] ( no-result / 1*resinfo )
    resinfo        = ";" methodspec [ CFWS reasonspec ] [ CFWS 1*propspec ]
    methodspec     = method [ "/" method-version ] "=" result
    reasonspec     = "reason" "=" value
    propspec       = ptype "." property "=" pvalue

Comments (parenthesised, nestable, with backslash escapes) are skipped wherever whitespace may
appear, quoted strings are unquoted, names and results are compared in lower case. A comment or a
quoted string never yields a result: ``(spf=pass)`` and ``smtp.mailfrom="x; dkim=pass"`` are
text, not verdicts. A ``resinfo`` that does not follow the grammar is dropped (and named in
:attr:`AuthResults.problems`) without affecting the others; a field whose authserv-id cannot be
read raises :class:`AuthResultsSyntaxError`. Pure functions, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field

_SPECIALS = frozenset(';="()')


class AuthResultsSyntaxError(ValueError):
    """The field value does not start with an authserv-id."""


@dataclass(frozen=True, slots=True)
class MethodResult:
    """One ``method=result`` with its reason and properties (``ptype.property`` → value)."""

    method: str
    result: str
    version: str | None = None
    reason: str | None = None
    properties: tuple[tuple[str, str], ...] = ()

    def get(self, key: str) -> str | None:
        """The value of property ``key`` (e.g. ``"header.d"``), the first one when repeated."""
        wanted = key.lower()
        return next((value for name, value in self.properties if name == wanted), None)


@dataclass(frozen=True, slots=True)
class AuthResults:
    """One parsed field: who wrote it and what it says."""

    authserv_id: str
    results: tuple[MethodResult, ...] = ()
    version: str | None = None
    problems: tuple[str, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "atom", "quoted" or one of ; = (a special character)
    text: str
    spaced: bool  # white space or a comment came before it


def _skip_comment(text: str, start: int) -> int:
    """The index after the comment that opens at ``start`` (nesting and escapes honoured)."""
    depth = 0
    i = start
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return len(text)  # an unclosed comment runs to the end


def _tokens(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i = 0
    spaced = True
    while i < len(text):
        c = text[i]
        if c.isspace():
            spaced = True
            i += 1
        elif c == "(":
            i = _skip_comment(text, i)
            spaced = True
        elif c == '"':
            chars: list[str] = []
            i += 1
            while i < len(text) and text[i] != '"':
                if text[i] == "\\" and i + 1 < len(text):
                    i += 1
                chars.append(text[i])
                i += 1
            i += 1  # the closing quote (or the end)
            tokens.append(_Token("quoted", "".join(chars), spaced))
            spaced = False
        elif c in ";=":
            tokens.append(_Token(c, c, spaced))
            spaced = False
            i += 1
        elif c == ")":  # a stray closing parenthesis: part of nothing
            spaced = True
            i += 1
        else:
            start = i
            while i < len(text) and not text[i].isspace() and text[i] not in _SPECIALS:
                i += 1
            tokens.append(_Token("atom", text[start:i], spaced))
            spaced = False
    return tokens


def _value(tokens: list[_Token], i: int) -> tuple[str | None, int]:
    """A value (atom or quoted string) at ``i``, glued to what directly follows it without white
    space (a base64 ``header.b=ab+c=`` keeps its ``=``); None when there is none."""
    if i >= len(tokens) or tokens[i].kind not in ("atom", "quoted"):
        return None, i
    parts = [tokens[i].text]
    i += 1
    while i < len(tokens) and not tokens[i].spaced and tokens[i].kind in ("atom", "quoted", "="):
        parts.append(tokens[i].text)
        i += 1
    return "".join(parts), i


def _resinfo(tokens: list[_Token]) -> MethodResult:
    """One ``methodspec [reasonspec] [propspec...]`` (the tokens between two semicolons)."""
    if len(tokens) < 3 or tokens[0].kind != "atom" or tokens[1].kind != "=" or tokens[2].kind != "atom":
        raise ValueError("expected method=result")
    method, _, version = tokens[0].text.lower().partition("/")
    if not method or not method.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"bad method name {tokens[0].text!r}")
    result = tokens[2].text.lower()
    reason: str | None = None
    properties: list[tuple[str, str]] = []
    i = 3
    while i < len(tokens):
        token = tokens[i]
        if token.kind != "atom" or i + 1 >= len(tokens) or tokens[i + 1].kind != "=":
            raise ValueError(f"unexpected {token.text!r}")
        name = token.text.lower()
        value, i = _value(tokens, i + 2)
        if value is None:
            raise ValueError(f"{name} has no value")
        if name == "reason" and not properties:
            reason = value
        elif "." in name.strip("."):
            properties.append((name, value))
        else:
            raise ValueError(f"{name!r} is not ptype.property")
    return MethodResult(method, result, version or None, reason, tuple(properties))


def parse_authentication_results(value: str) -> AuthResults:
    """Parse one unfolded field value, e.g. ``mx.example.com; spf=pass smtp.mailfrom=example.com``."""
    tokens = _tokens(value)
    if not tokens or tokens[0].kind not in ("atom", "quoted") or not tokens[0].text:
        raise AuthResultsSyntaxError("no authserv-id")
    authserv_id = tokens[0].text.lower()
    i = 1
    version: str | None = None
    if i < len(tokens) and tokens[i].kind == "atom" and tokens[i].text.isdigit():
        version = tokens[i].text
        i += 1
    if i < len(tokens) and tokens[i].kind != ";":
        raise AuthResultsSyntaxError(f"unexpected {tokens[i].text!r} after the authserv-id")
    groups: list[list[_Token]] = []
    for token in tokens[i:]:
        if token.kind == ";":
            groups.append([])
        else:
            groups[-1].append(token)
    results: list[MethodResult] = []
    problems: list[str] = []
    for n, group in enumerate(groups):
        if len(group) == 1 and group[0].kind == "atom" and group[0].text.lower() == "none":
            continue  # no-result: nothing was checked
        if not group:
            continue
        try:
            results.append(_resinfo(group))
        except ValueError as exc:
            problems.append(f"resinfo {n + 1}: {exc}")
    return AuthResults(authserv_id, tuple(results), version, tuple(problems))
