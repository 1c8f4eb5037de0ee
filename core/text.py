"""Counts in printed text: ``1 cell``, ``2 cells``, never ``1 cells``."""

from __future__ import annotations


def plural(n: int, noun: str, many: str | None = None) -> str:
    """``noun`` as it goes with ``n``: itself for one, else ``many`` (default: ``noun`` + s);
    for ``1 of 2 cells``, where the noun follows the total."""
    return noun if n == 1 else many or f"{noun}s"


def counted(n: int, noun: str, many: str | None = None) -> str:
    """``n`` and ``noun`` agreeing: ``1 cell``, ``0 cells``, ``3 experiments``."""
    return f"{n} {plural(n, noun, many)}"
