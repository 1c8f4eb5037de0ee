"""Load YAML input files safely and report every problem with file, line and field path.

Safety: every file is read through :func:`core.input_files.read_input_file` (regular files
only, within :data:`MAX_FILE_BYTES`); YAML is composed with ``yaml.SafeLoader`` (no tags that
build objects); the expanded node count is bounded (so alias bombs fail fast); nothing in a file
is executed. A document nests at most :data:`MAX_DEPTH` levels, so nothing downstream recurses
without bound.

Includes. A protocol file may ``include:`` other protocol files, by paths relative to the
including file. By default an included file must lie inside the folder of the file the user
gave, or below it (after following symbolic links): an absolute path, a ``../`` that climbs out
of that folder, or a link leading out is refused, so a protocol cannot read arbitrary YAML on
the machine; ``allow_outside_includes`` (``--allow-outside-includes``) lifts this. A file is
included once (a second include of it, or a cycle, is refused), includes nest at most
:data:`MAX_INCLUDE_DEPTH` deep, and a campaign reads at most :data:`MAX_FILES` files,
:data:`MAX_TOTAL_BYTES` bytes and :data:`MAX_TOTAL_NODES` YAML nodes in all. A problem in an
included file names that file (relative to the top file's folder) and the chain of ``include:``
lines that led to it from the top file.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from core.input_files import UnreadableFile, read_input_file
from protocols.campaign import Campaign, CampaignFile, Origin, walk_with_locations
from protocols.checks import Placed, check_campaign
from protocols.errors import Problem, ProtocolError
from protocols.material_files import campaign_library, cell_problems, folder_files
from protocols.profile_files import MAX_PROFILE_BYTES, ProfileData, ProfileFileError, parse_profile
from protocols.steps.profile import CurrentProfile

#: One protocol or station file.
MAX_FILE_BYTES = 2 * 1024 * 1024
#: YAML nodes of one file, aliases counted each time they are used.
MAX_NODES = 200_000
#: Nesting of mappings and lists: a loop inside a loop adds two levels, so about 30 nested loops.
MAX_DEPTH = 64
MAX_INCLUDE_DEPTH = 10
#: A whole campaign: the top file and every file it includes, directly or not.
MAX_FILES = 200
MAX_TOTAL_BYTES = 16 * 1024 * 1024
MAX_TOTAL_NODES = 1_000_000
#: libyaml's parser, where PyYAML was built with it: about ten times faster than PyYAML's own
#: (60 ms of a campaign's start-up); the same constructor and resolver make the same values.
_FAST_LOADER = getattr(yaml, "CSafeLoader", None)

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class SourceFile:
    """A file a campaign was loaded from, with the bytes that were read and validated.

    ``name`` is how messages name it: the top file's name, and an included file's path
    relative to the top file's folder (``gitt.yaml``, ``shared/cells.yaml``; with outside
    includes allowed, ``../lab/cells.yaml``). ``path`` is where it was read."""

    name: str
    path: Path
    data: bytes
    #: where it was read as written (absolute, symbolic links kept): a copy of the files at
    #: these relative places loads as the originals did
    lexical: Path | None = None
    #: how the file that named it wrote it (an ``include`` entry, a materials folder); None
    #: for the top file
    reference: str | None = None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class _Load:
    """One campaign load: the include policy, what was read so far, and what it found."""

    root: Path                       # the top file's folder, resolved
    allow_outside: bool
    files: list[SourceFile] = field(default_factory=list)
    first_seen: dict[Path, str] = field(default_factory=dict)   # real path -> "file:line"
    total_bytes: int = 0
    total_nodes: int = 0
    cells: list[Placed] = field(default_factory=list)
    experiments: list[Placed] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    stopped: bool = False            # a campaign-wide limit was reached
    materials: list[SourceFile] = field(default_factory=list)   # the lab's own material files
    profiles: dict[Path, SourceFile] = field(default_factory=dict)   # profile CSV files read


def load_campaign(path: str | Path, *, allow_outside_includes: bool = False) -> Campaign:
    """Read and validate a protocol file and the files it includes; raise
    :class:`ProtocolError` listing every problem, each with its file, line and field (and, in
    an included file, the includes that led there)."""
    given = Path(path)
    try:
        raw = read_input_file(path, MAX_FILE_BYTES)
    except UnreadableFile as exc:
        raise _one(exc.path, None, exc.reason) from None
    load = _Load(root=Path(os.path.realpath(given.parent)), allow_outside=allow_outside_includes)
    top = _load_tree(load, given, given.name, raw, (), (), Path(os.path.abspath(given)), None)
    if top is None or load.problems:
        raise ProtocolError(load.problems)
    problems: list[Problem] = []
    library = campaign_library(load.materials, problems)
    problems.extend(check_campaign(given.name, load.cells, load.experiments))
    for p in load.cells:
        problems.extend(cell_problems(p, library))
    problems = list(dict.fromkeys(problems))
    if problems:
        raise ProtocolError(problems)
    if load.materials:
        for p in load.cells:
            p.item._material_library = library  # type: ignore[union-attr]
    campaign = Campaign.model_construct(
        campaign=top.campaign, description=top.description,
        cells=[p.item for p in load.cells], experiments=[p.item for p in load.experiments],
        sources=[f.name for f in load.files], material_files=[f.name for f in load.materials])
    campaign._origins = [Origin(p.file, p.index, p.locate, p.via) for p in load.experiments]
    campaign._files = (*load.files, *load.materials, *load.profiles.values())
    return campaign


def _load_tree(load: _Load, path: Path, name: str, raw: bytes, via: tuple[str, ...],
               stack: tuple[Path, ...], lexical: Path, reference: str | None
               ) -> CampaignFile | None:
    """Validate one file's ``raw`` bytes and, depth first, what it includes; collect problems
    instead of stopping. ``lexical``: the file's path as written (absolute, normalised without
    resolving links); ``reference``: the include entry that named it."""
    real = Path(os.path.realpath(path))
    load.first_seen.setdefault(real, via[-1] if via else name)
    load.total_bytes += len(raw)
    try:
        nodes_left = min(MAX_NODES, MAX_TOTAL_NODES - load.total_nodes)
        data, root, nodes = _parse(raw, name, nodes_left, campaign_wide=nodes_left < MAX_NODES)
        load.total_nodes += nodes
        doc = validate(data, root, CampaignFile, name)
    except ProtocolError as exc:
        load.problems.extend(replace(p, via=via) for p in exc.problems)
        return None
    load.files.append(SourceFile(name, Path(os.path.realpath(path)), raw, lexical, reference))

    def locate(loc: tuple[object, ...], root: yaml.Node = root) -> tuple[int | None, str]:
        return _locate(root, loc)

    if doc.materials is not None:
        line, field_path = _locate(root, ("materials",))
        _read_materials(load, path, name, line, field_path, doc.materials, via)
    load.cells.extend(Placed(c, name, i, locate, via) for i, c in enumerate(doc.cells))
    load.experiments.extend(Placed(e, name, i, locate, via)
                            for i, e in enumerate(doc.experiments))
    for i, experiment in enumerate(doc.experiments):
        for step, loc in walk_with_locations(experiment.steps):
            if isinstance(step, CurrentProfile):
                line, field_path = _locate(root, ("experiments", i, *loc, "file"))
                _read_profile(load, path, lexical, name, line, field_path, step, via)
    for k, ref in enumerate(doc.include):
        if load.stopped:
            break
        line, field_path = _locate(root, ("include", k))
        child = _include(load, path, name, line, field_path, ref, via, (*stack, real))
        if child is not None:
            child_path, child_name, child_raw = child
            _load_tree(load, child_path, child_name, child_raw, (*via, f"{name}:{line}"),
                       (*stack, real), Path(os.path.normpath(lexical.parent / ref)), ref)
    return doc


def _include(load: _Load, parent: Path, name: str, line: int | None, field_path: str,
             ref: str, via: tuple[str, ...], stack: tuple[Path, ...]
             ) -> tuple[Path, str, bytes] | None:
    """The file an ``include:`` item names, its display name and bytes, if the include policy
    and the campaign's limits allow it; otherwise a problem at the include line and None."""

    def refuse(message: str) -> None:
        load.problems.append(Problem(name, line, field_path, message, via))

    if len(load.first_seen) >= MAX_FILES:
        load.stopped = True
        return refuse(f"the campaign includes more than {MAX_FILES} files (the limit)")
    if os.path.isabs(ref) and not load.allow_outside:
        return refuse(f"include {ref!r} is an absolute path; name included files relative to"
                      " this file, inside its folder (or pass --allow-outside-includes)")
    child = parent.parent / ref
    try:
        real = Path(os.path.realpath(child))
    except (OSError, ValueError):
        return refuse(f"include {ref!r} is not a usable path")
    if not load.allow_outside and not real.is_relative_to(load.root):
        return refuse(f"include {ref!r} leads outside the protocol's folder ({load.root});"
                      " move the file inside it, or pass --allow-outside-includes")
    if real in stack:
        chain = " -> ".join(p.name for p in (*stack, real))
        return refuse(f"include cycle: {chain}")
    if real in load.first_seen:
        return refuse(f"{ref!r} is already part of the campaign (from {load.first_seen[real]});"
                      " a file is included once")
    if len(stack) > MAX_INCLUDE_DEPTH:
        return refuse(f"includes nest deeper than {MAX_INCLUDE_DEPTH} files")
    try:
        raw = read_input_file(real, MAX_FILE_BYTES)   # the path that was checked
    except UnreadableFile as exc:
        return refuse(f"included file {ref!r} {exc.reason}" if exc.reason != "no such file"
                      else f"included file {ref!r} does not exist")
    if load.total_bytes + len(raw) > MAX_TOTAL_BYTES:
        load.stopped = True
        return refuse(f"the campaign's files add up to more than {MAX_TOTAL_BYTES:,} bytes"
                      " (the limit)")
    try:
        shown = Path(os.path.relpath(real, load.root)).as_posix()
    except ValueError:   # another drive (Windows): no relative path exists
        shown = str(real)
    return real, shown, raw


def _read_materials(load: _Load, path: Path, name: str, line: int | None, field_path: str,
                    folder: str, via: tuple[str, ...]) -> None:
    """Read the lab's material files in the folder a protocol file names, under the same
    policy and limits as included files (inside the protocol's folder unless outside includes
    are allowed; bounded regular files; counted in the campaign's bytes)."""
    problems: list[Problem] = []
    files = folder_files(path, folder, line, field_path, problems)
    load.problems.extend(replace(p, via=via) for p in problems)
    for f in files:
        real = Path(os.path.realpath(f))
        if any(m.path == real for m in load.materials):
            continue
        if not load.allow_outside and not real.is_relative_to(load.root):
            load.problems.append(Problem(name, line, field_path, f"materials folder {folder!r}"
                                         f" leads outside the protocol's folder ({load.root});"
                                         " move it inside, or pass --allow-outside-includes",
                                         via))
            return
        try:
            raw = read_input_file(real, MAX_FILE_BYTES)
        except UnreadableFile as exc:
            load.problems.append(Problem(name, line, field_path,
                                         f"material file {f.name!r} {exc.reason}", via))
            continue
        if load.total_bytes + len(raw) > MAX_TOTAL_BYTES:
            load.stopped = True
            load.problems.append(Problem(name, line, field_path, "the campaign's files add up"
                                         f" to more than {MAX_TOTAL_BYTES:,} bytes (the limit)",
                                         via))
            return
        load.total_bytes += len(raw)
        try:
            shown = Path(os.path.relpath(real, load.root)).as_posix()
        except ValueError:   # another drive (Windows): no relative path exists
            shown = str(real)
        load.materials.append(SourceFile(shown, real, raw, f, folder))


def _read_profile(load: _Load, path: Path, lexical: Path, name: str, line: int | None,
                  field_path: str, step: CurrentProfile, via: tuple[str, ...]) -> None:
    """Read the CSV file a profile step names, relative to the protocol file that holds it and
    under the include policy, and hand the step what it holds; a problem names the protocol's
    line for a file that cannot be read, and the CSV's own line for what is wrong inside."""

    def refuse(message: str) -> None:
        load.problems.append(Problem(name, line, field_path, message, via))

    ref = step.file
    if os.path.isabs(ref) and not load.allow_outside:
        return refuse(f"profile {ref!r} is an absolute path; name it relative to this file,"
                      " inside its folder (or pass --allow-outside-includes)")
    try:
        real = Path(os.path.realpath(path.parent / ref))
    except (OSError, ValueError):
        return refuse(f"profile {ref!r} is not a usable path")
    if not load.allow_outside and not real.is_relative_to(load.root):
        return refuse(f"profile {ref!r} leads outside the protocol's folder ({load.root});"
                      " move the file inside it, or pass --allow-outside-includes")
    source = load.profiles.get(real)
    if source is None:
        try:
            raw = read_input_file(real, MAX_PROFILE_BYTES)
        except UnreadableFile as exc:
            return refuse(f"profile {ref!r} {exc.reason}" if exc.reason != "no such file"
                          else f"profile file {ref!r} does not exist")
        if load.total_bytes + len(raw) > MAX_TOTAL_BYTES:
            load.stopped = True
            return refuse(f"the campaign's files add up to more than {MAX_TOTAL_BYTES:,} bytes"
                          " (the limit)")
        load.total_bytes += len(raw)
        try:
            shown = Path(os.path.relpath(real, load.root)).as_posix()
        except ValueError:   # another drive (Windows): no relative path exists
            shown = str(real)
        written = Path(os.path.normpath(lexical.parent / ref))
        source = SourceFile(shown, real, raw, written, ref)
        load.profiles[real] = source
    try:
        data: ProfileData = parse_profile(source.data, source.name, step.quantity,
                                          step.time_unit, step.value_unit)
    except ProfileFileError as exc:
        load.problems.append(Problem(source.name, exc.line, "", exc.message,
                                     (*via, f"{name}:{line}")))
        return None
    step.attach(data)
    return None


#: Checks a validated model beyond its schema: yields (field location, message) pairs.
Check = Callable[[Any], Iterable[tuple[tuple[Any, ...], str]]]


def load_model(path: str | Path, model: type[M], check: Check | None = None) -> M:
    """Read and validate a YAML file as ``model``; ``check`` adds cross-field rules whose
    problems are located in the file like schema errors."""
    data, root = read_yaml(path)
    name = Path(path).name
    result = validate(data, root, model, name)
    if check is not None:
        problems = []
        for loc, message in check(result):
            line, field_path = _locate(root, loc)
            problems.append(Problem(name, line, field_path, message))
        if problems:
            raise ProtocolError(problems)
    return result


def read_yaml(path: str | Path) -> tuple[Any, yaml.Node]:
    """A file read through the bounded reader and parsed; ProtocolError naming the path."""
    try:
        raw = read_input_file(path, MAX_FILE_BYTES)
    except UnreadableFile as exc:
        raise _one(exc.path, None, exc.reason) from None
    return parse_yaml(raw, Path(path).name)


def parse_yaml(raw: bytes, name: str) -> tuple[Any, yaml.Node]:
    data, root, _ = _parse(raw, name, MAX_NODES)
    return data, root


def _parse(raw: bytes, name: str, max_nodes: int, campaign_wide: bool = False
           ) -> tuple[Any, yaml.Node, int]:
    """The document, its node tree and its expanded node count."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise _one(name, line, f"not UTF-8 text (byte 0x{raw[exc.start]:02x})") from None
    fast = _compose_fast(text)
    try:
        loader = yaml.SafeLoader(text) if fast is None else fast[0]
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        raise _one(name, line, f"character #x{exc.character:04x} is not allowed in YAML"
                   ) from None
    try:
        root = loader.get_single_node() if fast is None else fast[1]
        if root is None:
            raise _one(name, None, "the file is empty")
        nodes = _check_size_and_keys(root, name, max_nodes, campaign_wide)
        data = loader.construct_document(root)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise _one(name, line, f"invalid YAML: {exc.problem or exc.context}") from None
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        raise _one(name, line, f"character #x{exc.character:04x} is not allowed in YAML"
                   ) from None
    except RecursionError:
        raise _one(name, None, "the document nests too deeply") from None
    except yaml.YAMLError as exc:
        raise _one(name, None, f"invalid YAML: {exc}") from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise _one(name, root.start_mark.line + 1,
                   f"the top level must be a mapping of keys, not a {type(data).__name__}")
    return data, root, nodes


def _compose_fast(text: str) -> tuple[Any, yaml.Node | None] | None:
    """libyaml's loader and the document's node tree; None without libyaml or on any fault it
    finds: PyYAML's own parser then reads the text again and words the error as ever (libyaml's
    messages say less, e.g. not which alias is undefined, and count bytes, not characters)."""
    if _FAST_LOADER is None:
        return None
    try:
        loader = _FAST_LOADER(text)
    except yaml.YAMLError:
        return None
    try:
        return loader, loader.get_single_node()
    except (yaml.YAMLError, RecursionError):
        loader.dispose()
        return None


def _check_size_and_keys(root: yaml.Node, name: str, max_nodes: int,
                         campaign_wide: bool = False) -> int:
    """Bound the expanded size (aliases counted each time they are used) and the nesting
    depth; refuse duplicate keys. Returns the node count."""
    count, stack, seen = 0, [(root, 1)], set()
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > max_nodes:
            if campaign_wide:
                raise _one(name, None, "the campaign's files expand to more than"
                                       f" {MAX_TOTAL_NODES} YAML nodes in all (the limit)")
            raise _one(name, None, f"the document expands to more than {max_nodes} nodes"
                                   " (aliases repeated too often?)")
        if depth > MAX_DEPTH:
            raise _one(name, node.start_mark.line + 1,
                       f"the document nests deeper than {MAX_DEPTH} levels")
        if isinstance(node, yaml.MappingNode):
            if id(node) not in seen:
                seen.add(id(node))
                keys: set[str] = set()
                for key, _ in node.value:
                    if isinstance(key, yaml.ScalarNode):
                        if key.value in keys:
                            raise _one(name, key.start_mark.line + 1,
                                       f"key {key.value!r} appears twice in one mapping")
                        keys.add(key.value)
            for key, value in node.value:
                stack.extend(((key, depth + 1), (value, depth + 1)))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, depth + 1) for item in node.value)
    return count


def validate(data: Any, root: yaml.Node | None, model: type[M], name: str) -> M:
    try:
        return model.model_validate(data)
    except RecursionError:
        raise _one(name, None, "the document nests too deeply") from None
    except ValidationError as exc:
        problems = [_problem(err, root, name) for err in exc.errors(include_url=False)]
        raise ProtocolError(problems) from None


def _problem(err: Any, root: yaml.Node | None, name: str) -> Problem:
    line, path = _locate(root, err["loc"])
    kind = err["type"]
    if kind == "extra_forbidden":
        message = f"unknown key {str(err['loc'][-1])!r}"
    elif kind == "missing":
        message = f"missing required field {str(err['loc'][-1])!r}"
        path = path.rsplit(".", 1)[0] if "." in path else ""
    elif kind == "union_tag_invalid":
        ctx = err.get("ctx", {})
        message = (f"unknown step kind {ctx.get('tag')!r}; known kinds: "
                   f"{ctx.get('expected_tags', '')}")
    elif kind == "union_tag_not_found":
        message = "a step needs a 'kind' (e.g. kind: rest)"
    else:
        message = err["msg"].removeprefix("Value error, ")
    return Problem(name, line, path, message)


def _locate(root: yaml.Node | None, loc: tuple[Any, ...]) -> tuple[int | None, str]:
    node, line, path = root, (root.start_mark.line + 1 if root else None), ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
            if isinstance(node, yaml.SequenceNode) and 0 <= part < len(node.value):
                node = node.value[part]
                line = node.start_mark.line + 1
            continue
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == part:
                    path += f".{part}" if path else str(part)
                    node, line = value, key.start_mark.line + 1
                    break
            else:
                kinds = [v.value for k, v in node.value
                         if isinstance(k, yaml.ScalarNode) and k.value == "kind"]
                if kinds and kinds[0] == part:
                    continue  # the discriminator level pydantic adds to the location
                path += f".{part}" if path else str(part)
        else:
            path += f".{part}" if path else str(part)
    return line, path


def _one(file: str, line: int | None, message: str) -> ProtocolError:
    return ProtocolError([Problem(file, line, "", message)])
