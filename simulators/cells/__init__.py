"""Simulated cells: deterministic physics behind the simulated instruments.

One module per cell kind (``blocking``, ``symmetric``, ``li_cu``, and for full cells
``full_cell``, the reference paper's calibrated cathode|electrolyte|Li model, and
``electrode_pair``, two electrodes from the material library's physics); material parameters
come from :mod:`simulators.materials`. :func:`build_cell` makes a cell from a protocol's cell
description and refuses a material the library does not know.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from materials import Library, builtin
from simulators.cells.base import CellModel, Segment, TimeSeriesTechnique

if TYPE_CHECKING:
    from simulators.cells.blocking import BlockingCell
    from simulators.cells.electrode_pair import ElectrodePairCell
    from simulators.cells.full_cell import FullCell
    from simulators.cells.li_cu import LiCuCell
    from simulators.cells.symmetric import SymmetricLiCell

CELL_KINDS = ("blocking", "symmetric_li", "li_cu", "full_cell")

#: Each model's module, imported when the model is first asked for: a dry run of the paper's
#: full cells imports neither the electrode-pair model nor the Li cells' models.
_MODELS = {"BlockingCell": "simulators.cells.blocking",
           "ElectrodePairCell": "simulators.cells.electrode_pair",
           "FullCell": "simulators.cells.full_cell", "LiCuCell": "simulators.cells.li_cu",
           "SymmetricLiCell": "simulators.cells.symmetric"}


def __getattr__(name: str) -> Any:
    module = _MODELS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def build_cell(kind: str, electrolyte: str, thickness_m: float, area_m2: float,
               cathode: Mapping[str, Any] | None = None, anode: str = "Li",
               np_ratio: float = 1.1, library: Library | None = None) -> CellModel:
    """A fresh simulated cell.

    ``thickness_m`` and ``area_m2`` describe the electrolyte membrane. ``cathode`` (full cells
    only) is ``{"material", "active_mass_kg", "capacity_Ah", "area_m2"}``. A full cell of one of
    the paper's cathodes against Li with one of the paper's electrolytes keeps the paper's
    calibrated model (:class:`FullCell`); every other full cell is an
    :class:`ElectrodePairCell` from the materials' physics. Unknown materials raise
    :class:`materials.UnknownMaterial`.
    """
    kind = kind.strip().lower()
    if kind not in CELL_KINDS:
        raise ValueError(f"unknown cell kind {kind!r}; known: {', '.join(CELL_KINDS)}")
    if (kind == "full_cell") != (cathode is not None):
        raise ValueError("a full_cell needs a cathode, and only a full_cell has one")
    lib = library or builtin()
    el = lib.resolve(electrolyte, "electrolyte")
    params = el.params()
    if kind == "blocking":
        from simulators.cells.blocking import BlockingCell
        return BlockingCell(params, thickness_m, area_m2)
    if kind == "symmetric_li":
        from simulators.cells.symmetric import SymmetricLiCell
        return SymmetricLiCell(params, thickness_m, area_m2)
    if kind == "li_cu":
        from simulators.cells.li_cu import LiCuCell
        return LiCuCell(params, thickness_m, area_m2)
    assert cathode is not None
    cat = lib.resolve(str(cathode["material"]), "cathode")
    an = lib.resolve(anode, "anode")
    if cat.doc.paper and el.doc.paper and an.doc.lithium_metal:
        from simulators.cells.full_cell import FullCell
        return FullCell(cat.params(), params,
                        active_mass_kg=float(cathode["active_mass_kg"]),
                        capacity_Ah=float(cathode["capacity_Ah"]),
                        thickness_m=thickness_m, area_m2=area_m2,
                        cathode_area_m2=cathode.get("area_m2"))
    from simulators.cells.lab_cell import lab_electrode_pair
    return lab_electrode_pair(cat.params(), an.params(), params,
                              active_mass_kg=float(cathode["active_mass_kg"]),
                              cathode_area_m2=float(cathode.get("area_m2") or area_m2),
                              thickness_m=thickness_m, area_m2=area_m2, np_ratio=np_ratio)


__all__ = ["CELL_KINDS", "BlockingCell", "CellModel", "ElectrodePairCell", "FullCell",
           "LiCuCell", "Segment", "SymmetricLiCell", "TimeSeriesTechnique", "build_cell"]
