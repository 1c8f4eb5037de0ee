"""Steps whose voltage cut-off lies at or beyond a cell's safety limit: warned, not refused.

A CC charge to 4.2 V on a cell limited to 3.9 V cannot end on its cut-off: the cell faults at
3.9 V, after however many hours the charge takes. Some labs set the limit at the cut-off on
purpose (and tests fault cells this way), so the plan carries these as warnings that
``validate``, ``plan`` and ``run`` print and a run keeps in run.log and summary.json.

Only what is clearly comparable with the cell's voltage is checked: the cut-off of a constant
current, power or resistance in the direction it drives the cell, a potentiostatic hold (not
one relative to open circuit), a profile's voltage window and a sweep's vertices (cellseq's
cells are two-electrode: the swept voltage is the cell's). One warning per experiment, step,
cell and limit: a loop's body is planned once, so a loop of 500 cycles gives one line.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from drivers.techniques import (
    ConstantCurrent,
    ConstantPower,
    ConstantResistance,
    ConstantVoltage,
    Profile,
    Technique,
    VoltageSweep,
)
from protocols import Campaign
from protocols.cells import Limits

if TYPE_CHECKING:
    from sequencer.plan import PlannedExperiment

#: Voltages this close count as equal (a YAML "3.9 V" and a derived 3.9 V).
_SAME_V = 1e-9


@dataclass(frozen=True)
class LimitWarning:
    """A step setting that the cell's ``limit`` (``max_voltage`` or ``min_voltage``) stops
    before the step can end on it. ``where``: ``file:line`` of the step (and field), as
    protocol errors name places."""

    where: str
    experiment: str
    step: int
    kind: str
    cell: str
    setting: str          # what the step sets: "cut-off", "hold voltage", "vertex", ...
    setting_V: float
    limit: str            # "max_voltage" or "min_voltage"
    limit_V: float

    def __str__(self) -> str:
        side = "above" if self.limit == "max_voltage" else "below"
        head = (f"{self.where}: experiment {self.experiment!r} step {self.step} ({self.kind}),"
                f" cell {self.cell}: {self.setting} {self.setting_V:g} V")
        if abs(self.setting_V - self.limit_V) <= _SAME_V:
            return (f"{head} is at the cell's {self.limit} of {self.limit_V:g} V: the cell"
                    f" faults if the voltage overshoots {self.limit_V:g} V before the step"
                    " ends there")
        return (f"{head} is {side} the cell's {self.limit} of {self.limit_V:g} V: the cell"
                f" will fault at {self.limit_V:g} V before the step's {self.setting_V:g} V"
                f" {self.setting}")


def limit_warnings(campaign: Campaign, experiments: Iterable[PlannedExperiment]
                   ) -> tuple[LimitWarning, ...]:
    """Every step setting at or beyond its cell's voltage limit, once per (experiment, step,
    cell, limit), in plan order. Reads the techniques the plan built (no cycle is expanded)."""
    from sequencer.plan import walk_planned

    found: dict[tuple[int, int, str, str], LimitWarning] = {}
    for exp in experiments:
        for node in walk_planned(exp.steps):
            for cell_id, tech in node.techniques.items():
                for setting, volts, limit, limit_V in _beyond(tech,
                                                              campaign.cell(cell_id).limits):
                    key = (exp.index, node.number, cell_id, limit)
                    if key in found:
                        continue
                    at = campaign.locate_step(exp.index, node.number - 1)
                    where = f"{at.file}:{at.line}" if at.line else at.file
                    found[key] = LimitWarning(where, exp.name, node.number, node.written_kind,
                                              cell_id, setting, volts, limit, limit_V)
    return tuple(found.values())


def _beyond(tech: Technique, limits: Limits) -> Iterator[tuple[str, float, str, float]]:
    """(setting, its voltage, limit, the limit's voltage) for each voltage ``tech`` drives the
    cell towards that lies at or beyond ``limits``."""
    up, down = _towards(tech)
    hi, lo = limits.max_voltage, limits.min_voltage
    for setting, v in up:
        if hi is not None and v >= hi - _SAME_V:
            yield setting, v, "max_voltage", hi
    for setting, v in down:
        if lo is not None and v <= lo + _SAME_V:
            yield setting, v, "min_voltage", lo


def _towards(tech: Technique) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """The voltages the technique drives the cell up to, and down to."""
    match tech:
        case ConstantCurrent() | ConstantPower() | ConstantResistance():
            if tech.until_voltage_V is None:
                return [], []
            cut = [("cut-off", tech.until_voltage_V)]
            drive = (tech.current_A if isinstance(tech, ConstantCurrent) else
                     tech.power_W if isinstance(tech, ConstantPower) else -1.0)
            return (cut, []) if drive > 0 else ([], cut) if drive < 0 else ([], [])
        case ConstantVoltage(vs_ocv=False):
            hold = [("hold voltage", tech.voltage_V)]
            return hold, hold
        case Profile():
            return ([("profile max_voltage", tech.max_voltage_V)]
                    if tech.max_voltage_V is not None else [],
                    [("profile min_voltage", tech.min_voltage_V)]
                    if tech.min_voltage_V is not None else [])
        case VoltageSweep():
            vertices = [("vertex", v) for v in tech.vertices_V]
            return vertices, vertices
    return [], []
