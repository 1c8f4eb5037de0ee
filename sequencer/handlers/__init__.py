"""One handler per step type.

A primitive step becomes a driver technique for one cell (:data:`TECHNIQUES`); a compound step
expands into primitive steps and loops (:data:`EXPANSIONS`); a temperature sweep expands in the
plan into soaks and its body. Both are pure (no I/O), so the
plan runs them before anything is sent to an instrument and every technique is checked against
its channel's capabilities up front. ``set_temperature`` is run by the executor itself, on the
chamber (:mod:`sequencer.handlers.set_temperature`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from drivers.techniques import Technique
from protocols.cells import Cell
from protocols.steps import (
    GEIS,
    GITT,
    PEIS,
    CCCVCharge,
    CCDischarge,
    CCDRamp,
    Chronoamperometry,
    Chronopotentiometry,
    ConstantCurrent,
    ConstantVoltage,
    CyclicVoltammetry,
    LinearSweep,
    PlatingStripping,
    Rest,
    Step,
)
from sequencer.handlers import compound, constant_current, constant_voltage, impedance, rest, sweeps

TECHNIQUES: dict[type, Callable[[Any, Cell], Technique]] = {
    Rest: rest.technique,
    PEIS: impedance.technique,
    GEIS: impedance.galvanostatic,
    ConstantCurrent: constant_current.technique,
    Chronopotentiometry: constant_current.technique,
    ConstantVoltage: constant_voltage.technique,
    Chronoamperometry: constant_voltage.chronoamperometry,
    LinearSweep: sweeps.linear,
    CyclicVoltammetry: sweeps.cyclic,
}

EXPANSIONS: dict[type, Callable[[Any], list[Step]]] = {
    PlatingStripping: compound.plating_stripping,
    CCDRamp: compound.ccd_ramp,
    GITT: compound.gitt,
    CCCVCharge: compound.cccv_charge,
    CCDischarge: compound.cc_discharge,
}


def technique_for(step: Any, cell: Cell) -> Technique:
    """The technique a channel runs for ``step`` on ``cell``; ValueError if it cannot."""
    try:
        build = TECHNIQUES[type(step)]
    except KeyError:
        raise ValueError(f"{step.kind} steps are not run on a channel") from None
    return build(step, cell)
