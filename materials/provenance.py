"""Where each value of a material file comes from: a cited source, or an assumption with a reason.

A file's ``sources`` maps names to citations and its ``assumed`` maps names to the reason no
source gives them (a plain list of names is accepted for a lab's own file). A name is a value's
key (``sigma_25C_S_per_cm``), a block (``electrode`` covers every value of the electrode block),
a value inside a block (``electrode.c_max_mol_per_m3``), ``all`` (every value of the file), or
several of these separated by commas. The most specific name that mentions a value decides
whether it is sourced or assumed: ``electrode`` in ``sources`` with
``electrode.v_min_V`` in ``assumed`` means every electrode value is sourced but the window.

Why a module of its own: the library's test (every value accounted for), ``cellseq materials
NAME`` (both lists, value by value) and the schema's check (every name exists) read the same
rules.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

#: Keys that say what a material is, not values a model reads.
IDENTITY_KEYS = frozenset({
    "name", "kind", "aliases", "description", "formula", "composition", "paper",
    "lithium_metal", "sources", "assumed",
})
#: Blocks whose entries are values one by one (``electrode.ocp`` is one value: the table).
BLOCKS = ("electrode", "liquid")
#: The name that covers every value of a file.
ALL = "all"

Status = Literal["sourced", "assumed"]


@dataclass(frozen=True)
class Provenance:
    """One value's account: sourced or assumed, the entry that says so and its text."""

    value: str
    status: Status
    entry: str
    text: str


def split_names(entry: str) -> list[str]:
    """The names one ``sources`` or ``assumed`` entry lists (comma separated)."""
    return [n.strip() for n in entry.split(",") if n.strip()]


def value_paths(data: Mapping[str, Any]) -> list[str]:
    """Every value of a file's data (as read from YAML, or dumped by the schema with
    ``exclude_unset``): top-level model parameters and identity numbers such as the molar
    mass, and each entry of the electrode and liquid blocks."""
    paths: list[str] = []
    for key, value in data.items():
        if key in IDENTITY_KEYS:
            continue
        if key in BLOCKS:
            if isinstance(value, Mapping):
                paths.extend(f"{key}.{k}" for k in value)
            continue
        paths.append(key)
    return paths


def unknown_names(data: Mapping[str, Any], names: Iterable[str]) -> list[str]:
    """The names (of ``sources`` or ``assumed``) that mention no key of the file."""
    known = set(data) | {ALL}
    bad = []
    for name in names:
        head, _, rest = name.partition(".")
        if head not in known:
            bad.append(name)
        elif rest:
            block = data.get(head)
            if not isinstance(block, Mapping) or rest.split(".")[0] not in block:
                bad.append(name)
    return bad


def _index(entries: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """name -> (entry, text), one row per name of a comma-separated entry."""
    out: dict[str, tuple[str, str]] = {}
    for entry, text in entries.items():
        for name in split_names(entry):
            out[name] = (entry, text)
    return out


def _candidates(path: str) -> list[str]:
    """The names that would mention ``path``, most specific first."""
    head, _, _ = path.partition(".")
    return [path, head, ALL] if head != path else [path, ALL]


def account(data: Mapping[str, Any], sources: Mapping[str, str],
            assumed: Mapping[str, str]) -> tuple[list[Provenance], list[str], list[str]]:
    """(provenance of every accounted value, values neither list mentions, names in both)."""
    src, asm = _index(sources), _index(assumed)
    both = sorted(set(src) & set(asm))
    rows: list[Provenance] = []
    missing: list[str] = []
    for path in value_paths(data):
        for name in _candidates(path):
            if name in asm:
                rows.append(Provenance(path, "assumed", asm[name][0], asm[name][1]))
                break
            if name in src:
                rows.append(Provenance(path, "sourced", src[name][0], src[name][1]))
                break
        else:
            missing.append(path)
    return rows, missing, both


#: ``cellseq materials NAME`` fits a terminal of this many columns.
WIDTH = 80


def _wrap(text: str, indent: int) -> list[str]:
    return textwrap.wrap(text, WIDTH, initial_indent=" " * indent,
                         subsequent_indent=" " * indent, break_on_hyphens=False) or [""]


def describe(data: Mapping[str, Any], sources: Mapping[str, str],
             assumed: Mapping[str, str]) -> list[str]:
    """Lines for ``cellseq materials NAME``, none longer than :data:`WIDTH`: each source with
    the values it gives, then the assumed values with their reasons, then anything left
    unaccounted for."""
    rows, missing, both = account(data, sources, assumed)
    given: dict[tuple[str, str], list[str]] = {}
    for r in rows:
        given.setdefault((r.status, r.entry), []).append(r.value)
    lines: list[str] = []
    for status, entries, title in (
            ("sourced", sources, "sourced"),
            ("assumed", assumed, " (no published source gives them; each says why)")):
        n = sum(len(v) for (st, _), v in given.items() if st == status)
        lines.append(f"  {status}: {n} values{title if status == 'assumed' else ''}")
        for entry, text in entries.items():
            values = given.get((status, entry), [])
            head = entry if not values or split_names(entry) == values else (
                f"{entry} ({', '.join(values)})")
            lines += _wrap(head + ":", 4)
            lines += _wrap(text or "(no reason given)", 8)
        if not entries:
            lines.append("    none")
    if missing:
        lines += _wrap("NOT ACCOUNTED FOR (neither sourced nor assumed): " + ", ".join(missing), 2)
    if both:
        lines += _wrap("BOTH SOURCED AND ASSUMED: " + ", ".join(both), 2)
    return lines


__all__ = [
    "ALL",
    "BLOCKS",
    "IDENTITY_KEYS",
    "WIDTH",
    "Provenance",
    "account",
    "describe",
    "split_names",
    "unknown_names",
    "value_paths",
]
