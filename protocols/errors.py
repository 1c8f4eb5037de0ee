"""Errors found in protocol and station files, each located by file, line and field path."""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import CellseqError


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input file.

    ``via`` is the chain of includes from the file the user gave down to ``file``, each entry
    ``"file:line"`` of an ``include:`` item, top file first; empty for the top file itself."""

    file: str
    line: int | None
    path: str
    message: str
    via: tuple[str, ...] = ()

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        field = f" {self.path}:" if self.path else ""
        chain = f" (included from {' -> '.join(self.via)})" if self.via else ""
        return f"{where}:{field} {self.message}{chain}"


class ProtocolError(CellseqError):
    """A protocol or station file that cannot be used; lists every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))
