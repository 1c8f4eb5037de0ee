"""The material library: files read once, names resolved by :mod:`materials.matcher`.

:func:`builtin` is the library shipped with cellseq (``materials/library/*.yaml``), read once per
process. A lab's own folder joins it with :meth:`Library.with_files`; a lab file may not take a
name the library already uses (that would change what a name means without anyone seeing it).
An unknown name raises :class:`UnknownMaterial`; nothing is ever substituted.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from materials.matcher import closest, key, lookup_keys, recipe_key
from materials.provenance import Provenance, account, describe
from materials.schema import MaterialFile, MaterialKind

LIBRARY_DIR = Path(__file__).resolve().parent / "library"

#: Where the message that refuses a name tells the user to look.
HOW_TO_ADD = ("to add a material, put a YAML file for it in a folder and name that folder in the"
              " protocol (materials: ./materials/); `cellseq materials` lists the library and"
              " the README's 'Material library' section describes the file")


class UnknownMaterial(LookupError):
    """A name no material file answers to; carries the closest known names."""

    def __init__(self, name: str, kind: MaterialKind | None, suggestions: list[str],
                 wrong_kind: str | None = None) -> None:
        self.name, self.kind, self.suggestions = name, kind, suggestions
        if wrong_kind is not None:
            text = f"{name!r} is {_a(wrong_kind)}, not {_a(str(kind))}"
        else:
            what = f"{kind} " if kind else ""
            text = f"no {what}material {name!r} in the library"
        if suggestions:
            text += f"; closest known: {', '.join(suggestions)}"
        super().__init__(f"{text}; {HOW_TO_ADD}")


def _a(noun: str) -> str:
    return f"{'an' if noun[:1] in 'aeiou' else 'a'} {noun}"


@dataclass(frozen=True)
class Material:
    """One resolved material: its identity and its parameters (read-only; copy to change)."""

    name: str
    kind: MaterialKind
    aliases: tuple[str, ...]
    path: Path
    builtin: bool
    doc: MaterialFile = field(repr=False)
    data: dict[str, Any] = field(repr=False, compare=False)

    def params(self) -> dict[str, Any]:
        """The parameters as a fresh dict the caller may change."""
        return copy.deepcopy(self.data)

    @property
    def sources(self) -> dict[str, str]:
        return dict(self.doc.sources)

    @property
    def assumed(self) -> list[str]:
        """The names of the assumed values (``assumed_reasons`` has why)."""
        return list(self.doc.assumed)

    @property
    def assumed_reasons(self) -> dict[str, str]:
        return dict(self.doc.assumed)

    def provenance(self) -> tuple[list[Provenance], list[str], list[str]]:
        """(every value's account, values neither sourced nor assumed, names in both)."""
        return account(self.doc.model_dump(exclude_unset=True), self.doc.sources,
                       self.doc.assumed)

    def describe_provenance(self) -> list[str]:
        """The sources with the values each gives, then the assumed values with their reasons
        (what ``cellseq materials NAME`` prints)."""
        return describe(self.doc.model_dump(exclude_unset=True), self.doc.sources,
                        self.doc.assumed)


class Library:
    """Materials by canonical name, with the lookup keys of their names and aliases."""

    def __init__(self, materials: Iterable[Material]) -> None:
        self._by_name: dict[str, Material] = {}
        self._index: dict[str, str] = {}
        #: name as written -> canonical name (or None): every cell of a campaign names its
        #: materials again, and the matcher's normalisation need not run twice for a name
        self._found: dict[str, str | None] = {}
        self.lookups = 0
        self.lookup_hits = 0
        for m in materials:
            self._add(m)

    def _add(self, m: Material) -> None:
        if m.name in self._by_name:
            raise ValueError(f"{m.path.name}: material {m.name!r} is already defined in"
                             f" {self._by_name[m.name].path.name}")
        keys = [key(n) for n in (m.name, m.path.stem, *m.aliases)]
        comp = m.doc.composition
        if comp is not None:
            keys.append(recipe_key(comp.salt, comp.solvents, comp.additives))
        for k in dict.fromkeys(keys):
            other = self._index.get(k)
            if other is not None and other != m.name:
                raise ValueError(f"{m.path.name}: name {k!r} is also used by {other}"
                                 f" ({self._by_name[other].path.name})")
        self._by_name[m.name] = m
        for k in keys:
            self._index[k] = m.name
        self._found.clear()  # a new material may answer to a name that found none before

    def with_files(self, files: Iterable[Path]) -> Library:
        """This library plus the materials in ``files`` (a lab's folder)."""
        return self.with_materials(read_material(path, builtin=False) for path in files)

    def with_materials(self, materials: Iterable[Material]) -> Library:
        """This library plus ``materials``; a name already taken raises ValueError."""
        lib = Library(self._by_name.values())
        for m in materials:
            lib._add(m)
        return lib

    def names(self, kind: MaterialKind | None = None) -> list[str]:
        return sorted(n for n, m in self._by_name.items() if kind is None or m.kind == kind)

    def __iter__(self) -> Iterator[Material]:
        return iter(sorted(self._by_name.values(), key=lambda m: (m.kind, m.name.lower())))

    def find(self, name: str) -> Material | None:
        """The material ``name`` stands for, or None; remembered per name as written
        (``lookups`` and ``lookup_hits`` count the calls and the answers found remembered)."""
        self.lookups += 1
        try:
            canonical = self._found[name]
        except KeyError:
            canonical = next((c for c in map(self._index.get, lookup_keys(name))
                              if c is not None), None)
            self._found[name] = canonical
        else:
            self.lookup_hits += 1
        return None if canonical is None else self._by_name[canonical]

    def resolve(self, name: str, kind: MaterialKind | None = None) -> Material:
        """The material ``name`` stands for, of ``kind`` if given; :class:`UnknownMaterial`
        otherwise, with the closest names of that kind."""
        m = self.find(name)
        if m is not None and (kind is None or m.kind == kind):
            return m
        pool = [n for mat in self._by_name.values() if kind is None or mat.kind == kind
                for n in (mat.name, *mat.aliases)]
        raise UnknownMaterial(name, kind, closest(name, pool),
                              wrong_kind=m.kind if m is not None else None)


def parse_material(data: Any, path: Path, builtin: bool) -> Material:
    """A validated :class:`Material` from a file's data (raises pydantic's ValidationError)."""
    doc = MaterialFile.model_validate(data)
    return Material(doc.name, doc.kind, tuple(doc.aliases), path, builtin, doc, doc.parameters())


#: libyaml's safe loader when PyYAML has it (the library loads ~10x faster), else PyYAML's.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_material(path: Path, builtin: bool = True) -> Material:
    with path.open(encoding="utf-8") as fh:
        data = yaml.load(fh, Loader=_SAFE_LOADER)
    try:
        return parse_material(data, path, builtin)
    except ValidationError as exc:
        raise ValueError("; ".join(f"{path.name}: {where}{msg}" for where, msg in _problems(exc))
                         ) from None
    except ValueError as exc:
        raise ValueError(f"{path.name}: {exc}") from None


def _problems(exc: ValidationError) -> list[tuple[str, str]]:
    """(``field: `` or ``""``, message) per error, without pydantic's decoration."""
    out = []
    for err in exc.errors(include_url=False):
        ctx = err.get("ctx") or {}
        loc = (ctx["field"], ctx["entry"]) if "entry" in ctx else err["loc"]
        where = ".".join(str(p) for p in loc)
        out.append((f"{where}: " if where else "", err["msg"].removeprefix("Value error, ")))
    return out


@functools.cache
def builtin() -> Library:
    """The library shipped with cellseq, read once per process."""
    return Library(read_material(p) for p in sorted(LIBRARY_DIR.glob("*.yaml")))


__all__ = ["HOW_TO_ADD", "LIBRARY_DIR", "Library", "Material", "UnknownMaterial", "builtin",
           "parse_material", "read_material"]
