"""Names that wrap where a reader expects in a narrow terminal's table.

Experiment and cell ids are written with hyphens (``interfacial-impedance-20-days``,
``ncm811-2c-aiose-1``), with no space for rich to wrap at: a folding column cut them every
few letters (``interfacial-im`` / ``pedance-20-day`` / ``s``). :class:`Breakable` is a cell
whose lines end after a hyphen, slash, underscore, comma or space, whatever precedes them,
and whose minimum width tells the table the longest piece that cannot be broken; a piece
wider than its column (a column squeezed below it) is still folded, rather than cut."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from rich.measure import Measurement
from rich.text import Text

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderResult

#: A piece ends after its break characters, or its trailing spaces ("vsp300-1/ch0, " is
#: three pieces: "vsp300-", "1/", "ch0, ").
_PIECE = re.compile(r"[^-/_,\s]*[-/_,]+\s*|[^-/_,\s]+\s*|\s+")


def pieces(text: str) -> list[str]:
    """``text`` split after each break opportunity; joined again they are ``text``."""
    return _PIECE.findall(text)


def wrap_at_breaks(text: str, width: int) -> list[str]:
    """Each line of ``text`` (split at its newlines) filled to ``width`` columns with whole
    words; a word too wide for a line of its own (``li-aiose-long-1,``) starts a new line and
    breaks after its hyphens, slashes, underscores or commas, and a piece wider than
    ``width`` with none of them folds."""
    width = max(width, 1)
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in re.findall(r"\S+\s*", paragraph) or [""]:
            if len(line) + len(word.rstrip()) <= width:
                line += word
                continue
            if line:
                lines.append(line.rstrip())
            line = ""
            for piece in pieces(word):
                if line and len(line) + len(piece.rstrip()) > width:
                    lines.append(line.rstrip())
                    line = ""
                line += piece
                while len(line.rstrip()) > width:     # wider than the column: fold it
                    lines.append(line[:width])
                    line = line[width:]
        lines.append(line.rstrip())
    return lines


def _widest_piece(text: str) -> int:
    return max((len(p.rstrip()) for p in pieces(text)), default=0)


class Breakable:
    """A table cell of ``text`` that wraps at :func:`wrap_at_breaks`' opportunities."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        longest = max((len(line) for line in self.text.split("\n")), default=0)
        return Measurement(min(_widest_piece(self.text), options.max_width),
                           min(longest, options.max_width))

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield Text("\n".join(wrap_at_breaks(self.text, options.max_width)), no_wrap=True,
                   overflow="fold")
