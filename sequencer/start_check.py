"""A step whose voltage cut-off is already met when it starts ends at once, as cyclers do.

A fresh half cell rests where its cathode was made: a pristine NMC622 || Li cell near 2.9-3.3 V,
an LFP || Li cell near 3 V. A protocol that starts with a discharge to 3.0 V then asks for a
discharge the cell has, in effect, already done. A Neware or BioLogic ends such a step on its
first reading, records the cut-off as the reason and goes on with the next step; a fault is
for the safety limits. Left to the instrument, the first reading is taken under current, and
a current into a cell at the end of its window drives the terminal voltage past the safety
limit (a pristine cathode's overpotential is large), which faulted the cell at its first point.

So before a step with a voltage cut-off starts, the sequencer reads the cell's voltage at open
circuit (the output is off between steps). Beyond the cell's safety window the cell faults, as
at any point; at or past the cut-off in the step's direction the step ends at once with the
cut-off's end reason (``voltage``), one point at open circuit and no current applied, and its
row in the run store says so (``ended_at_start``), so the analysis never counts it as a
discharge of nothing. A channel that cannot read its voltage on demand leaves it to the
instrument, as before.
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers.techniques import (
    ConstantCurrent,
    ConstantPower,
    ConstantResistance,
    Profile,
    Technique,
)

#: The end reason of a step whose cut-off was met at its start: the cut-off's own, so a loop's
#: ``until: {voltage_limit: true}`` and ``on_end: {voltage_limit: ...}`` see it as ever.
REASON = "voltage"
#: The key of the step's row (its ``params``) that records a step ended at its start.
PARAM = "ended_at_start"


@dataclass(frozen=True)
class CutOff:
    """The voltage level a technique stops at, and the side it stops on (``below``: a
    discharge stops when V falls to it)."""

    level_V: float
    below: bool

    def met(self, voltage_V: float) -> bool:
        return voltage_V <= self.level_V if self.below else voltage_V >= self.level_V

    def describe(self, voltage_V: float) -> str:
        side = "at or below" if self.below else "at or above"
        return f"{voltage_V:.4g} V at open circuit is {side} the cut-off {self.level_V:.4g} V"


def cut_offs(technique: Technique) -> tuple[CutOff, ...]:
    """The voltage cut-offs ``technique`` ends on, in the direction it drives the cell."""
    match technique:
        case ConstantCurrent() | ConstantPower() | ConstantResistance():
            level = technique.until_voltage_V
            drive = (technique.current_A if isinstance(technique, ConstantCurrent) else
                     technique.power_W if isinstance(technique, ConstantPower) else -1.0)
            if level is not None and drive != 0:
                return (CutOff(level, drive < 0),)
        case Profile():
            return tuple(CutOff(level, below) for level, below in (
                (technique.min_voltage_V, True), (technique.max_voltage_V, False))
                if level is not None)
    return ()


def met_at_start(technique: Technique, voltage_V: float,
                 cuts: tuple[CutOff, ...] | None = None) -> str | None:
    """What says the step is over before it begins (``voltage_V``: the cell at open circuit),
    or None when it has a step to run; ``cuts``: the technique's :func:`cut_offs`, when the
    caller has them already."""
    for cut in cut_offs(technique) if cuts is None else cuts:
        if cut.met(voltage_V):
            return cut.describe(voltage_V)
    return None
