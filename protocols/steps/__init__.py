"""Step types, a discriminated union on ``kind``. One module per step family.

A step in a file is a mapping with a ``kind``, or a PyBaMM experiment string
("Discharge at C/10 until 2.8 V") that is parsed into the same models.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from pydantic import BeforeValidator, Field

from protocols.steps.chronoamperometry import Chronoamperometry, Steady
from protocols.steps.chronopotentiometry import Chronopotentiometry
from protocols.steps.constant_current import ConstantCurrent
from protocols.steps.constant_voltage import ConstantVoltage
from protocols.steps.cycling import CCCVCharge, CCDischarge
from protocols.steps.gitt import GITT
from protocols.steps.impedance import GEIS, PEIS
from protocols.steps.loop import Loop, LoopUntil
from protocols.steps.plating_stripping import CCDRamp, PlatingStripping
from protocols.steps.pybamm import ShorthandJsonSchema, expand_shorthand, parse_pybamm
from protocols.steps.rest import Rest
from protocols.steps.sweeps import CyclicVoltammetry, LinearSweep
from protocols.steps.temperature import SetTemperature, TemperatureSweep

STEP_TYPES = (SetTemperature, TemperatureSweep, Rest, PEIS, GEIS, ConstantCurrent,
              ConstantVoltage, Chronoamperometry, Chronopotentiometry, LinearSweep,
              CyclicVoltammetry, PlatingStripping, CCDRamp, GITT, CCCVCharge, CCDischarge, Loop)

Step = Annotated[
    SetTemperature | TemperatureSweep | Rest | PEIS | GEIS | ConstantCurrent | ConstantVoltage
    | Chronoamperometry | Chronopotentiometry | LinearSweep | CyclicVoltammetry
    | PlatingStripping | CCDRamp | GITT | CCCVCharge | CCDischarge | Loop,
    Field(discriminator="kind"),
    BeforeValidator(expand_shorthand),
    ShorthandJsonSchema(),
]
Loop.model_rebuild(_types_namespace={"Step": Step})
TemperatureSweep.model_rebuild(_types_namespace={"Step": Step})

#: Steps with a body of steps of their own.
CONTAINERS = (Loop, TemperatureSweep)
#: Steps that drive the chamber, run once for every cell of an experiment together.
CHAMBER_STEPS = (SetTemperature, TemperatureSweep)


def walk(steps: list[Step]) -> Iterator[Step]:
    """Every step in document order, containers before their bodies."""
    for step in steps:
        yield step
        if isinstance(step, CONTAINERS):
            yield from walk(step.steps)


__all__ = [
    "CHAMBER_STEPS",
    "CONTAINERS",
    "GEIS",
    "GITT",
    "PEIS",
    "STEP_TYPES",
    "CCCVCharge",
    "CCDRamp",
    "CCDischarge",
    "Chronoamperometry",
    "Chronopotentiometry",
    "ConstantCurrent",
    "ConstantVoltage",
    "CyclicVoltammetry",
    "LinearSweep",
    "Loop",
    "LoopUntil",
    "PlatingStripping",
    "Rest",
    "SetTemperature",
    "Steady",
    "Step",
    "TemperatureSweep",
    "parse_pybamm",
    "walk",
]
