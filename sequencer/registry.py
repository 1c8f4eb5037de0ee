"""The instruments cellseq knows: every :class:`~drivers.spec.InstrumentSpec` its modules declare.

A module of the ``drivers`` package (real instruments) or of ``simulators`` (the in-process
simulators, whose specs :mod:`simulators.specs` declares apart from their physics) declares its
instruments in a top-level ``INSTRUMENTS`` tuple; nothing else registers them. The modules are
found by reading the packages' source files for that assignment and importing only those, so a
station check does not import pyvisa, pyserial or easy-biologic (drivers import them inside
their builders) nor the simulators' cells and channels, and the first look-up costs one import
of each declaring module.

What ``cellseq sim serve`` can stand in for is the simulators' to say
(:mod:`simulators.served`): the drivers know nothing of their stand-ins.
"""

from __future__ import annotations

import functools
import importlib
import re
from pathlib import Path

from drivers.errors import CellseqError
from drivers.spec import InstrumentSpec, Kind

#: Packages whose modules may declare instruments.
PACKAGES = ("drivers", "simulators")
_DECLARES = re.compile(r"^INSTRUMENTS\s*[:=]", re.MULTILINE)


class RegistryError(CellseqError):
    """Two modules declare the same instrument name, or a declaration is malformed."""


def declaring_modules(package: str) -> list[str]:
    """Dotted names of the modules under ``package`` (recursively, in name order) whose
    source assigns ``INSTRUMENTS`` at top level."""
    root = importlib.import_module(package)
    names: list[str] = []
    for folder in map(Path, root.__path__):
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            if not _declares(path) or not _in_packages(folder, path):   # the cheap test first
                continue
            names.append(".".join((package, *parts)))
    return names


def _in_packages(folder: Path, path: Path) -> bool:
    """Every folder between ``folder`` and ``path`` is a package (has an ``__init__.py``)."""
    return all((p / "__init__.py").is_file() for p in path.parents
               if p != folder and p.is_relative_to(folder))


def _declares(path: Path) -> bool:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    # the plain search first: a line-anchored pattern is tried at every line of every file
    return "INSTRUMENTS" in text and _DECLARES.search(text) is not None


@functools.cache
def specs() -> dict[str, InstrumentSpec]:
    """Every declared instrument, by name."""
    found: dict[str, InstrumentSpec] = {}
    where: dict[str, str] = {}
    for package in PACKAGES:
        for name in declaring_modules(package):
            declared = getattr(importlib.import_module(name), "INSTRUMENTS", ())
            for spec in declared:
                if not isinstance(spec, InstrumentSpec):
                    raise RegistryError(f"{name}.INSTRUMENTS holds {spec!r}, not an"
                                        " InstrumentSpec")
                if spec.name in found:
                    raise RegistryError(f"instrument {spec.name!r} is declared twice: in"
                                        f" {where[spec.name]} and in {name}")
                found[spec.name], where[spec.name] = spec, name
    return found


def forget() -> None:
    """Look again at the next call (after a module was added, in tests)."""
    specs.cache_clear()


def spec(name: str) -> InstrumentSpec:
    """The spec of driver ``name``; :class:`RegistryError` naming the known ones."""
    known = specs()
    if name not in known:
        raise RegistryError(f"unknown driver {name!r}; known: {', '.join(sorted(known))}")
    return known[name]


def dry_run_spec(kind: Kind) -> InstrumentSpec:
    """The in-process simulator ``--sim`` places ``kind`` on."""
    chosen = [s for s in specs().values() if s.kind == kind and s.dry_run is not None]
    if len(chosen) != 1:
        raise RegistryError(f"{len(chosen)} in-process simulators say they serve dry runs of"
                            f" {kind}s ({', '.join(s.name for s in chosen) or 'none'}); one"
                            " must")
    return chosen[0]


def served(kind: Kind) -> list[str]:
    """Names of the instruments of ``kind`` that ``cellseq sim serve`` can stand in for."""
    from simulators.served import STAND_INS

    return sorted(s.name for s in specs().values() if s.kind == kind and s.name in STAND_INS)
