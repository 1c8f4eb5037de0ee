"""Simulated cells: deterministic physics behind the simulated instruments.

One module per cell kind (``blocking``, ``symmetric``, ``li_cu``, ``full_cell``), each a
:class:`~simulators.cells.base.CellModel`; material parameters come from
:mod:`simulators.materials`. :func:`build_cell` makes a cell from a protocol's cell description.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from simulators.cells.base import CellModel, Segment, TimeSeriesTechnique
from simulators.cells.blocking import BlockingCell
from simulators.cells.full_cell import FullCell
from simulators.cells.li_cu import LiCuCell
from simulators.cells.symmetric import SymmetricLiCell
from simulators.materials import load_material

CELL_KINDS = ("blocking", "symmetric_li", "li_cu", "full_cell")


def build_cell(kind: str, electrolyte: str, thickness_m: float, area_m2: float,
               cathode: Mapping[str, Any] | None = None) -> CellModel:
    """A fresh simulated cell.

    ``thickness_m`` and ``area_m2`` describe the electrolyte membrane. ``cathode`` (full cells
    only) is ``{"material", "active_mass_kg", "capacity_Ah", "area_m2"}``. Unknown material names
    get the documented defaults (see :mod:`simulators.materials`).
    """
    kind = kind.strip().lower()
    if kind not in CELL_KINDS:
        raise ValueError(f"unknown cell kind {kind!r}; known: {', '.join(CELL_KINDS)}")
    if (kind == "full_cell") != (cathode is not None):
        raise ValueError("a full_cell needs a cathode, and only a full_cell has one")
    params = load_material(electrolyte, "electrolyte")
    if kind == "blocking":
        return BlockingCell(params, thickness_m, area_m2)
    if kind == "symmetric_li":
        return SymmetricLiCell(params, thickness_m, area_m2)
    if kind == "li_cu":
        return LiCuCell(params, thickness_m, area_m2)
    assert cathode is not None
    return FullCell(load_material(str(cathode["material"]), "cathode"), params,
                    active_mass_kg=float(cathode["active_mass_kg"]),
                    capacity_Ah=float(cathode["capacity_Ah"]),
                    thickness_m=thickness_m, area_m2=area_m2,
                    cathode_area_m2=cathode.get("area_m2"))


__all__ = ["CELL_KINDS", "BlockingCell", "CellModel", "FullCell", "LiCuCell", "Segment",
           "SymmetricLiCell", "TimeSeriesTechnique", "build_cell"]
