"""SCPI as instruments accept it, for the wire simulators.

Headers in short or long form (``SOUR`` / ``SOURce``), any case, an optional leading colon,
optional nodes (``[:LEVel]``), numeric suffixes (``OUTP1``), ``*`` common commands, several units
joined by ``;`` (a unit without a leading colon continues the previous unit's path, as IEEE 488.2
says, and falls back to the root so the common loose style works too), quoted string parameters,
and the error queue read with ``SYST:ERR?``.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

#: a handler gets the unit's parameters (strings, quotes kept) and returns a reply or None
Handler = Callable[[list[str]], str | None]

T = TypeVar("T")

ERROR_QUEUE_LENGTH = 10
_HEADER = re.compile(r"^\s*(\S+?)(\?)?(?:\s+(.*))?$", re.DOTALL)


class ScpiError(Exception):
    """A SCPI error for the queue: ``code`` and message as ``SYST:ERR?`` reports them."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f'{code},"{message}"')
        self.code, self.message = code, message


UNDEFINED_HEADER = (-113, "Undefined header")
MISSING_PARAMETER = (-109, "Missing parameter")
PARAMETER_NOT_ALLOWED = (-108, "Parameter not allowed")
DATA_TYPE_ERROR = (-104, "Data type error")
ILLEGAL_PARAMETER = (-224, "Illegal parameter value")
OUT_OF_RANGE = (-222, "Data out of range")


@dataclass(frozen=True)
class _Node:
    long: str       # as the manual writes it: "SOURce"
    optional: bool

    @property
    def short(self) -> str:
        return "".join(c for c in self.long if not c.islower())

    def matches(self, token: str) -> bool:
        name = token.upper().rstrip("0123456789") or token.upper()
        return name in (self.short.upper(), self.long.upper())


@dataclass(frozen=True)
class Command:
    """One header (``"SOURce:CURRent[:LEVel]"``, ``"*IDN"``) with its set and query handlers."""

    pattern: str
    on_set: Handler | None = None
    on_query: Handler | None = None

    def nodes(self) -> list[_Node]:
        parts = re.findall(r"\[:?([^\]]+)\]|:?([^:\[]+)", self.pattern)
        return [_Node(opt or req, bool(opt)) for opt, req in parts]


def _match(tokens: Sequence[str], nodes: Sequence[_Node]) -> bool:
    if not nodes:
        return not tokens
    head = nodes[0]
    if tokens and head.matches(tokens[0]) and _match(tokens[1:], nodes[1:]):
        return True
    return head.optional and _match(tokens, nodes[1:])


def split_outside_quotes(text: str, separator: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quote = ""
    for c in text:
        if quote:
            quote = "" if c == quote else quote
        elif c in "\"'":
            quote = c
        elif c == separator:
            parts.append("".join(current))
            current = []
            continue
        current.append(c)
    parts.append("".join(current))
    return parts


def number(params: list[str], low: float, high: float) -> float:
    """The one numeric parameter, checked against ``low..high``."""
    if not params:
        raise ScpiError(*MISSING_PARAMETER)
    if len(params) > 1:
        raise ScpiError(*PARAMETER_NOT_ALLOWED)
    try:
        value = float(params[0])
    except ValueError:
        raise ScpiError(*DATA_TYPE_ERROR) from None
    if not low <= value <= high:
        raise ScpiError(*OUT_OF_RANGE)
    return value


def choice(params: list[str], options: Mapping[str, T]) -> T:
    """The one keyword (or quoted string) parameter, as its canonical name in ``options``
    (keys: accepted spellings, upper case)."""
    if not params:
        raise ScpiError(*MISSING_PARAMETER)
    if len(params) > 1:
        raise ScpiError(*PARAMETER_NOT_ALLOWED)
    key = params[0].strip("\"'").upper()
    if key not in options:
        raise ScpiError(*ILLEGAL_PARAMETER)
    return options[key]


class ScpiParser:
    """Executes command lines against a command table and keeps the error queue."""

    def __init__(self, commands: Sequence[Command]) -> None:
        self._commands = [(c, c.nodes()) for c in commands if not c.pattern.startswith("*")]
        self._common = {c.pattern.upper(): c for c in commands if c.pattern.startswith("*")}
        self.errors: deque[tuple[int, str]] = deque()

    def push_error(self, code: int, message: str) -> None:
        if len(self.errors) >= ERROR_QUEUE_LENGTH:
            self.errors[-1] = (-350, "Queue overflow")
            return
        self.errors.append((code, message))

    def next_error(self) -> str:
        code, message = self.errors.popleft() if self.errors else (0, "No error")
        return f'{code},"{message}"'

    def execute(self, line: str) -> str | None:
        """Run every unit of ``line``; the replies of its queries joined by ``;`` (None: no
        query). An error stops the rest of the line, as on real instruments."""
        replies: list[str] = []
        path: list[str] = []
        for unit in split_outside_quotes(line, ";"):
            if not unit.strip():
                continue
            try:
                reply, path = self._unit(unit, path)
            except ScpiError as exc:
                self.push_error(exc.code, exc.message)
                break
            if reply is not None:
                replies.append(reply)
        return ";".join(replies) if replies else None

    def _unit(self, unit: str, path: list[str]) -> tuple[str | None, list[str]]:
        parsed = _HEADER.match(unit)
        if parsed is None:
            raise ScpiError(*UNDEFINED_HEADER)
        header, query, rest = parsed.group(1), bool(parsed.group(2)), parsed.group(3)
        params = [p.strip() for p in split_outside_quotes(rest, ",")] if rest else []
        if header.startswith("*"):
            command = self._common.get(header.upper())
        else:
            tokens = header.lstrip(":").split(":")
            tried = [tokens] if header.startswith(":") or not path else [path + tokens, tokens]
            command = None
            for candidate in tried:
                command = self._find(candidate)
                if command is not None:
                    path = candidate[:-1]
                    break
        handler = None if command is None else command.on_query if query else command.on_set
        if handler is None:
            raise ScpiError(*UNDEFINED_HEADER)
        return handler(params), path

    def _find(self, tokens: list[str]) -> Command | None:
        if not all(tokens):
            return None
        for command, nodes in self._commands:
            if _match(tokens, nodes):
                return command
        return None
