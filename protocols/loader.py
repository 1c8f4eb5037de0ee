"""Load YAML input files safely and report every problem with file, line and field path.

Safety: YAML is composed with ``yaml.SafeLoader`` (no tags that build objects), file size and the
expanded node count are bounded (so alias bombs fail fast), and nothing in a file is executed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from protocols.campaign import Campaign, CampaignFile, Origin, SourceFile
from protocols.checks import Placed, check_campaign
from protocols.errors import Problem, ProtocolError

MAX_FILE_BYTES = 2 * 1024 * 1024
MAX_NODES = 200_000
MAX_INCLUDE_DEPTH = 10

M = TypeVar("M", bound=BaseModel)


def load_campaign(path: str | Path) -> Campaign:
    """Read and validate a protocol file and the files it includes; raise
    :class:`ProtocolError` listing every problem, each with its file, line and field."""
    path = Path(path)
    cells: list[Placed] = []
    experiments: list[Placed] = []
    problems: list[Problem] = []
    sources: list[str] = []
    files: list[SourceFile] = []
    top = _load_tree(path, [], cells, experiments, problems, sources,
                     (files, Path(os.path.abspath(path)), None, None))
    if top is None or problems:
        raise ProtocolError(problems)
    problems = list(dict.fromkeys(check_campaign(path.name, cells, experiments)))
    if problems:
        raise ProtocolError(problems)
    campaign = Campaign.model_construct(
        campaign=top.campaign, description=top.description,
        cells=[p.item for p in cells], experiments=[p.item for p in experiments],
        sources=sources)
    campaign._origins = [Origin(p.file, p.index, p.locate) for p in experiments]
    campaign._files = files
    return campaign


#: Where a file's record goes: the list, the file's lexical path, and the referring file's
#: index and reference (see :class:`SourceFile`).
_Record = tuple[list[SourceFile], Path, int | None, str | None]


def _load_tree(path: Path, stack: list[Path], cells: list[Placed], experiments: list[Placed],
               problems: list[Problem], sources: list[str], record: _Record
               ) -> CampaignFile | None:
    """Load ``path`` and, depth first, what it includes; collect problems instead of stopping."""
    name = path.name
    try:
        raw = read_bytes(path)
        data, root = parse_yaml(raw, name)
        doc = validate(data, root, CampaignFile, name)
    except ProtocolError as exc:
        problems.extend(exc.problems)
        return None
    sources.append(name)
    files, lexical, referrer, reference = record
    me = len(files)
    files.append(SourceFile(lexical, raw, referrer, reference))

    def locate(loc: tuple[object, ...], root: yaml.Node = root) -> tuple[int | None, str]:
        return _locate(root, loc)

    cells.extend(Placed(c, name, i, locate) for i, c in enumerate(doc.cells))
    experiments.extend(Placed(e, name, i, locate) for i, e in enumerate(doc.experiments))
    for k, ref in enumerate(doc.include):
        line, field = _locate(root, ("include", k))
        child = (path.parent / ref).resolve()
        if child in (*stack, path.resolve()):
            chain = " -> ".join(p.name for p in (*stack, path.resolve(), child))
            problems.append(Problem(name, line, field, f"include cycle: {chain}"))
            continue
        if len(stack) >= MAX_INCLUDE_DEPTH:
            problems.append(Problem(name, line, field, f"includes nest deeper than"
                                    f" {MAX_INCLUDE_DEPTH} files"))
            continue
        if not child.is_file():
            problems.append(Problem(name, line, field, f"included file {ref!r} does not exist"))
            continue
        _load_tree(child, [*stack, path.resolve()], cells, experiments, problems, sources,
                   (files, Path(os.path.normpath(lexical.parent / ref)), me, ref))
    return doc


#: Checks a validated model beyond its schema: yields (field location, message) pairs.
Check = Callable[[Any], Iterable[tuple[tuple[Any, ...], str]]]


def load_model(path: str | Path, model: type[M], check: Check | None = None) -> M:
    """Read and validate a YAML file as ``model``; ``check`` adds cross-field rules whose
    problems are located in the file like schema errors."""
    path = Path(path)
    data, root = read_yaml(path)
    result = validate(data, root, model, path.name)
    if check is not None:
        problems = []
        for loc, message in check(result):
            line, field = _locate(root, loc)
            problems.append(Problem(path.name, line, field, message))
        if problems:
            raise ProtocolError(problems)
    return result


def read_yaml(path: Path) -> tuple[Any, yaml.Node]:
    return parse_yaml(read_bytes(path), path.name)


def read_bytes(path: Path) -> bytes:
    """The bytes of an input file, within the size limit."""
    name = path.name
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise _one(name, None, f"file is {size} bytes; the limit is {MAX_FILE_BYTES}")
        raw = path.read_bytes()
    except FileNotFoundError:
        raise _one(str(path), None, "no such file") from None
    except IsADirectoryError:
        raise _one(str(path), None, "is a directory, not a file") from None
    except PermissionError:
        raise _one(str(path), None, "cannot be read (permission denied)") from None
    return raw


def parse_yaml(raw: bytes, name: str) -> tuple[Any, yaml.Node]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise _one(name, line, f"not UTF-8 text (byte 0x{raw[exc.start]:02x})") from None
    try:
        loader = yaml.SafeLoader(text)
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        raise _one(name, line, f"character #x{exc.character:04x} is not allowed in YAML"
                   ) from None
    try:
        root = loader.get_single_node()
        if root is None:
            raise _one(name, None, "the file is empty")
        _check_size_and_keys(root, name)
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
    return data, root


def _check_size_and_keys(root: yaml.Node, name: str) -> None:
    """Bound the expanded size (aliases counted each time they are used); refuse duplicate keys."""
    count, stack, seen = 0, [root], set()
    while stack:
        node = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise _one(name, None, f"the document expands to more than {MAX_NODES} nodes"
                                   " (aliases repeated too often?)")
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
                stack.extend((key, value))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)


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
