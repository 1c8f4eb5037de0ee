"""Where a dry run's simulated cells start, said before the run: a cell resting outside its
safety window faults at its very first reading, whatever the protocol asks.

A simulated full cell starts as assembled (unformed and discharged: a graphite or silicon
anode with no lithium rests the cell near 0-1 V) unless the protocol states its
``initial_state`` (formed, at a state of charge). A formed commercial cell with its
datasheet's ``min_voltage`` of 2.7 V would fault at once as an unformed one; the plan of a dry
run warns of it, naming the field that says otherwise. On hardware the cell is what it is: a
stated ``initial_state`` is not used, and the plan notes that it is not.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocols import Campaign
from protocols.cells import Cell, CellKind

#: The temperature the starting open-circuit voltage is taken at (degC): the simulators'
#: ambient; an open-circuit voltage moves by millivolts over a chamber's range.
_AT_C = 25.0


@dataclass(frozen=True)
class StartWarning:
    """A simulated cell whose starting open-circuit voltage lies beyond one of its limits."""

    cell: str
    start: str            # how the dry run starts it: "unformed" or "formed at 50 % SOC"
    ocv_V: float
    limit: str            # "max_voltage" or "min_voltage"
    limit_V: float

    def __str__(self) -> str:
        side = "above" if self.limit == "max_voltage" else "below"
        head = (f"cell {self.cell}: a dry run starts it {self.start}, at rest at"
                f" {self.ocv_V:.3g} V, {side} its {self.limit} of {self.limit_V:g} V: it"
                " faults at its first reading")
        if self.start == "unformed":
            return (f"{head}. A simulated cell starts as assembled, discharged, its anode (if"
                    " graphite or silicon) holding no lithium until its first charge; for a"
                    " cell that is already formed, say where the dry run starts it:"
                    " initial_state: {formed: true, soc: 50 %}")
        return f"{head}; choose an initial_state soc inside the window"


def start_warnings(campaign: Campaign, cells: list[str]) -> tuple[StartWarning, ...]:
    """The dry run's full cells among ``cells`` that would start beyond a voltage limit (the
    other kinds rest near 0 V, as their limits expect): those with an intercalation anode or
    a stated ``initial_state``."""
    from sequencer.instruments import cell_model

    found = []
    for cell_id in cells:
        cell = campaign.cell(cell_id)
        hi, lo = cell.limits.max_voltage, cell.limits.min_voltage
        if cell.kind is not CellKind.FULL_CELL or (hi is None and lo is None) or \
                (cell.initial_state is None and _lithium_metal(cell)):
            continue
        ocv = cell_model(cell).ocv_V(_AT_C)
        start = _start(cell)
        if lo is not None and ocv < lo:
            found.append(StartWarning(cell_id, start, ocv, "min_voltage", lo))
        elif hi is not None and ocv > hi:
            found.append(StartWarning(cell_id, start, ocv, "max_voltage", hi))
    return tuple(found)


def hardware_notes(campaign: Campaign, cells: list[str]) -> tuple[str, ...]:
    """What a run on hardware leaves aside: a stated ``initial_state`` describes the cell for
    a dry run only, and is neither set nor taken as measured."""
    return tuple(f"cell {c}: initial_state ({_start(campaign.cell(c))}) describes the cell for"
                 " the simulators only: on instruments the cell is what it is, and nothing is"
                 " set or measured from it" for c in cells
                 if campaign.cell(c).initial_state is not None)


def _lithium_metal(cell: Cell) -> bool:
    """Whether the cell's anode is Li metal: then a fresh cell rests at its pristine cathode's
    open-circuit voltage, at the low end of the cathode's window the limits are written
    around, and no model is built to check it (validate and plan stay free of numpy)."""
    from materials import builtin

    library = cell.material_library or builtin()
    return library.resolve(cell.anode, "anode").doc.lithium_metal


def _start(cell: Cell) -> str:
    state = cell.initial_state
    return "unformed" if state is None else f"formed at {state.soc * 100:g} % SOC"


__all__ = ["StartWarning", "hardware_notes", "start_warnings"]
