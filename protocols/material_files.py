"""A campaign's materials: the built-in library plus the lab's own folder(s), and the check that
every cell names materials the library knows.

A protocol file may name a folder of material files (``materials: ./materials/``, relative to the
file). Each file in it is read like a protocol (bounded, safe YAML; every problem located by
file, line and field) and must follow :class:`materials.MaterialFile`. A cell whose electrolyte,
cathode or anode the library does not know is refused, naming the cell and the field, the closest
known names and how to add a material: a dry run never simulates one material as another.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from materials import Library, Material, MaterialKind, UnknownMaterial, builtin, parse_material
from protocols.cells import Cell, CellKind
from protocols.checks import Placed
from protocols.errors import Problem, ProtocolError

if TYPE_CHECKING:
    from protocols.loader import SourceFile

#: At most this many files in one materials folder (a folder is not a data dump).
MAX_MATERIAL_FILES = 200
_SUFFIXES = (".yaml", ".yml")


def folder_files(protocol: Path, folder: str, line: int | None, field: str,
                 problems: list[Problem]) -> list[Path]:
    """The material files in the folder a protocol file names (sorted), or a problem."""
    where = (protocol.parent / folder).resolve()
    if not where.is_dir():
        problems.append(Problem(protocol.name, line, field,
                                f"materials folder {folder!r} does not exist (or is not a folder)"))
        return []
    files = sorted(p for p in where.iterdir() if p.suffix.lower() in _SUFFIXES and p.is_file())
    if not files:
        problems.append(Problem(protocol.name, line, field,
                                f"materials folder {folder!r} holds no .yaml files"))
    if len(files) > MAX_MATERIAL_FILES:
        problems.append(Problem(protocol.name, line, field, f"materials folder {folder!r} holds"
                                f" {len(files)} files; the limit is {MAX_MATERIAL_FILES}"))
        return []
    return files


def campaign_library(files: Sequence[SourceFile], problems: list[Problem]) -> Library:
    """The built-in library plus ``files`` (read by the loader: the bytes a run keeps);
    problems of each file are located like a protocol's."""
    from protocols.loader import _locate, parse_yaml  # the loader imports this module

    lib = builtin()
    if not files:
        return lib
    materials: list[Material] = []
    for source in files:
        path = source.path
        try:
            data, root = parse_yaml(source.data, source.name)
        except ProtocolError as exc:
            problems.extend(exc.problems)
            continue
        try:
            material = parse_material(data, path, builtin=False)
        except ValidationError as exc:
            for err in exc.errors(include_url=False):
                ctx = err.get("ctx") or {}
                loc = (ctx["field"], ctx["entry"]) if "entry" in ctx else err["loc"]
                line, field = _locate(root, loc)
                message = err["msg"].removeprefix("Value error, ")
                if err["type"] == "missing":
                    message = f"missing required field {str(err['loc'][-1])!r}"
                problems.append(Problem(source.name, line, field, message))
            continue
        if material.doc.paper:
            line, field = _locate(root, ("paper",))
            problems.append(Problem(source.name, line, field, "only the library's own files are"
                                    " the reference paper's materials; remove 'paper'"))
            continue
        materials.append(material)
    try:
        return lib.with_materials(materials)
    except ValueError as exc:
        problems.append(Problem(files[0].name, None, "", str(exc)))
        return lib


def cell_problems(placed: Placed, library: Library) -> list[Problem]:
    """Problems of one placed cell's materials: each names the cell and the field."""
    c = placed.item
    assert isinstance(c, Cell)
    wanted: list[tuple[tuple[object, ...], str, MaterialKind]] = [
        (("electrolyte",), c.electrolyte, "electrolyte")]
    if c.kind is CellKind.FULL_CELL:
        if c.cathode is not None:
            wanted.append((("cathode", "material"), c.cathode.material, "cathode"))
        wanted.append((("anode",), c.anode, "anode"))
    out = []
    for loc, name, kind in wanted:
        try:
            library.resolve(name, kind)
        except UnknownMaterial as exc:
            out.append(placed.problem(("cells", placed.index, *loc), f"cell {c.id!r}: {exc}"))
    return out


__all__ = ["MAX_MATERIAL_FILES", "campaign_library", "cell_problems", "folder_files"]
