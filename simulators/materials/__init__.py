"""Material parameters for the simulated cells, one YAML file per material in this directory.

Keys carry their units in their names (``sigma_25C_S_per_cm``, ``ea_eV``, ``r_int_ohm_cm2``); each
file lists the values that are not the paper's under ``assumed``. Area-specific values (Ohm cm^2,
S s^n / cm^2) let one file serve any cell geometry.

Names are matched case-insensitively, ignoring spaces and punctuation ("c-LLZTO" == "cllzto"),
against each file's ``name`` and ``aliases``. An unknown name is not an error: a lab may test a
membrane nobody has parameters for yet, and a dry run should still run. It gets the documented
default of its kind, the paper's own materials (:data:`DEFAULT_ELECTROLYTE` = AIOSE,
:data:`DEFAULT_CATHODE` = NCM811), renamed, with ``default_of`` saying whose values they are.
"""

from __future__ import annotations

import copy
import functools
import logging
import re
from pathlib import Path
from typing import Any, Literal

import yaml

MaterialKind = Literal["electrolyte", "cathode"]

#: Materials an unknown name falls back to, by kind.
DEFAULT_ELECTROLYTE = "AIOSE"
DEFAULT_CATHODE = "NCM811"
_DEFAULTS: dict[str, str] = {"electrolyte": DEFAULT_ELECTROLYTE, "cathode": DEFAULT_CATHODE}

_DIR = Path(__file__).resolve().parent
_log = logging.getLogger(__name__)


def _key(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "", name.lower())


@functools.cache
def _catalogue() -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Every material file, read once: (by canonical name, lookup key -> canonical name)."""
    by_name: dict[str, dict[str, Any]] = {}
    index: dict[str, str] = {}
    for path in sorted(_DIR.glob("*.yaml")):
        with path.open(encoding="utf-8") as fh:
            params = yaml.safe_load(fh)
        if not isinstance(params, dict) or params.get("kind") not in _DEFAULTS:
            raise ValueError(f"{path.name}: not a material file (needs kind: electrolyte|cathode)")
        name = str(params["name"])
        by_name[name] = params
        for alias in [name, path.stem, *params.get("aliases", [])]:
            other = index.setdefault(_key(str(alias)), name)
            if other != name:
                raise ValueError(f"{path.name}: name {alias!r} is also used by {other}")
    return by_name, index


def known_materials(kind: MaterialKind | None = None) -> list[str]:
    """Canonical names of the materials that have a parameter file, optionally of one kind."""
    by_name, _ = _catalogue()
    return sorted(n for n, p in by_name.items() if kind is None or p["kind"] == kind)


def is_known(name: str) -> bool:
    return _key(name) in _catalogue()[1]


def load_material(name: str, kind: MaterialKind | None = None) -> dict[str, Any]:
    """Parameters of ``name`` (a fresh copy the caller may change).

    ``kind`` checks a known material's kind and picks the fallback for an unknown one (electrolyte
    when not given). An unknown name gets the default of its kind, logged as a warning.
    """
    by_name, index = _catalogue()
    canonical = index.get(_key(name))
    if canonical is not None:
        params = copy.deepcopy(by_name[canonical])
        if kind is not None and params["kind"] != kind:
            raise ValueError(f"material {name!r} is a {params['kind']}, not a {kind}")
        return params
    fallback = _DEFAULTS[kind or "electrolyte"]
    _log.warning("no parameters for material %r; using %s's (the default %s)", name, fallback,
                 kind or "electrolyte")
    params = copy.deepcopy(by_name[fallback])
    params.update(name=name, aliases=[], default_of=fallback,
                  description=f"{name}: unknown material, simulated with {fallback}'s parameters")
    return params


__all__ = ["DEFAULT_CATHODE", "DEFAULT_ELECTROLYTE", "MaterialKind", "is_known", "known_materials",
           "load_material"]
