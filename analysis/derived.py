"""What the analyses of one run produce together, and what they share while they run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from analysis.results import Result
from analysis.run_data import CellExperiment

if TYPE_CHECKING:   # matplotlib once a figure is drawn: not for the numbers alone
    from matplotlib.figure import Figure


@dataclass
class Derived:
    results: list[Result] = field(default_factory=list)
    #: (section, caption, figure): a Figure, or its PNG where a worker drew it already
    figures: list[tuple[str, str, Figure | bytes]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    damage: list[str] = field(default_factory=list)   # what of a damaged store was not read
    #: mean and standard deviation of replicate cells (:mod:`analysis.replicates`)
    replicates: list[dict[str, Any]] = field(default_factory=list)
    #: the cells whose analysis was kept from before, not made again (:mod:`analysis.cell_cache`)
    reused: list[str] = field(default_factory=list)


@dataclass
class Shared:
    """What one analysis leaves for a later one: conductivities per (experiment, cell) for the
    Arrhenius figures, and the cycles each cell has had in its earlier experiments (cycles are
    numbered over a cell's whole run, as the run store numbers them)."""

    sigma_by_exp: dict[tuple[str, str], list[tuple[float, float]]] = field(default_factory=dict)
    cycles_before: dict[str, int] = field(default_factory=dict)
    #: each (experiment, cell)'s cycles, made once (:func:`analysis.derive_cycling.cell_cycles`)
    cycles: dict[tuple[str, str], list[Any]] = field(default_factory=dict)


def result(ce: CellExperiment, quantity: str, value: float | None, unit: str,
           material: str = "", note: str = "", **conditions: float | int | str) -> Result:
    return Result(ce.experiment, ce.cell, material or ce.material, quantity, value, unit,
                  conditions, note)


def note_once(out: Derived, note: str) -> None:
    if note not in out.notes:
        out.notes.append(note)
