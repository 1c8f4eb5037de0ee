"""The material library: files read once, names resolved by :mod:`materials.matcher`.

:func:`builtin` is the library shipped with cellseq (``materials/library/*.yaml``), indexed once
per process by each file's identity (name, kind, aliases, composition: the few top-level entries
that hold them, not the tables) and each file read in full the first time a name finds it: a run
of one cell reads its three materials, not the 35 files. A lab's own folder joins it with
:meth:`Library.with_files`; a lab file may not take a name the library already uses (that would
change what a name means without anyone seeing it).
An unknown name raises :class:`UnknownMaterial`; nothing is ever substituted.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from materials.matcher import closest, key, lookup_keys, recipe_key
from materials.provenance import Provenance, account, describe
from materials.schema import Composition, MaterialFile, MaterialKind

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


@dataclass(frozen=True)
class _Unread:
    """A library file known by its identity alone, read in full when a name first finds it."""

    name: str
    kind: MaterialKind
    aliases: tuple[str, ...]
    composition: Composition | None
    path: Path
    builtin: bool

    def read(self) -> Material:
        """The whole file; its identity must be the one the index was built from."""
        m = read_material(self.path, self.builtin)
        if (m.name, m.kind, m.aliases, m.doc.composition) != (
                self.name, self.kind, self.aliases, self.composition):
            raise ValueError(f"{self.path.name}: its name, kind, aliases or composition read in"
                             " full differ from its top-level entries read alone (the library's"
                             " index); write them as plain top-level entries")
        return m


def _composition(m: Material | _Unread) -> Composition | None:
    return m.doc.composition if isinstance(m, Material) else m.composition


class Library:
    """Materials by canonical name, with the lookup keys of their names and aliases."""

    def __init__(self, materials: Iterable[Material | _Unread]) -> None:
        self._by_name: dict[str, Material | _Unread] = {}
        self._index: dict[str, str] = {}
        #: name as written -> canonical name (or None): every cell of a campaign names its
        #: materials again, and the matcher's normalisation need not run twice for a name
        self._found: dict[str, str | None] = {}
        self.lookups = 0
        self.lookup_hits = 0
        for m in materials:
            self._add(m)

    def _add(self, m: Material | _Unread) -> None:
        if m.name in self._by_name:
            raise ValueError(f"{m.path.name}: material {m.name!r} is already defined in"
                             f" {self._by_name[m.name].path.name}")
        keys = [key(n) for n in (m.name, m.path.stem, *m.aliases)]
        comp = _composition(m)
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
        entries = sorted(self._by_name.values(), key=lambda m: (m.kind, m.name.lower()))
        return iter([self._material(m.name) for m in entries])

    def _material(self, name: str) -> Material:
        """The material of canonical ``name``, its file read now if it was not yet."""
        m = self._by_name[name]
        if isinstance(m, _Unread):
            m = self._by_name[name] = m.read()
        return m

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
        return None if canonical is None else self._material(canonical)

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


#: A line of a file's top-level mapping (not indented, not a comment) ...
_TOP_LINE = re.compile(r"^[^\s#].*", re.MULTILINE)
#: ... which must be a plain ``key:`` for the identity to be read from its entries alone.
_TOP_KEY = re.compile(r"([A-Za-z_][A-Za-z0-9_]*):(?:[ \t]|$)")
_IDENTITY_KEYS = ("name", "kind", "aliases", "composition")
_KINDS = ("cathode", "anode", "electrolyte")


def identity_entries(text: str) -> dict[str, Any] | None:
    """The top-level entries ``name``, ``kind``, ``aliases`` and ``composition`` of a material
    file, parsed from their own lines alone (each entry up to the next top-level line); None
    where the text is not a block mapping of plain keys at column 0, or an entry is written
    twice (then the whole file is read)."""
    lines = [(m.start(), m.group()) for m in _TOP_LINE.finditer(text)]
    parts: list[str] = []
    names: list[str] = []
    for k, (start, line) in enumerate(lines):
        key_match = _TOP_KEY.match(line)
        if key_match is None:
            return None
        name = key_match.group(1)
        if name not in _IDENTITY_KEYS:
            continue
        if name in names:
            return None
        names.append(name)
        end = lines[k + 1][0] if k + 1 < len(lines) else len(text)
        parts.append(text[start:end].rstrip("\n") + "\n")
    try:
        found = yaml.load("".join(parts), Loader=_SAFE_LOADER) if parts else {}
    except yaml.YAMLError:
        return None
    if not isinstance(found, dict) or list(found) != names:
        return None
    return found


def _indexed(path: Path) -> Material | _Unread:
    """A library file by its identity alone, or read in full where the identity cannot be
    read apart (or is malformed: the full read says what is wrong)."""
    found = identity_entries(path.read_text(encoding="utf-8"))
    if found is None:
        return read_material(path)
    name, kind, aliases = found.get("name"), found.get("kind"), found.get("aliases", [])
    if not (isinstance(name, str) and kind in _KINDS and isinstance(aliases, list)
            and all(isinstance(a, str) for a in aliases)):
        return read_material(path)
    composition = found.get("composition")
    if composition is not None:
        try:
            composition = Composition.model_validate(composition)
        except ValidationError:
            return read_material(path)
    return _Unread(name, kind, tuple(aliases), composition, path, True)


@functools.cache
def builtin() -> Library:
    """The library shipped with cellseq, indexed once per process (each file read in full the
    first time a name finds it)."""
    return Library(_indexed(p) for p in sorted(LIBRARY_DIR.glob("*.yaml")))


__all__ = ["HOW_TO_ADD", "LIBRARY_DIR", "Library", "Material", "UnknownMaterial", "builtin",
           "parse_material", "read_material"]
