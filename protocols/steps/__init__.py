"""Step types, a discriminated union on ``kind``. One module per step family.

A step in a file is a mapping with a ``kind``, or a PyBaMM experiment string
("Discharge at C/10 until 2.8 V") that is parsed into the same models.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator
from typing import Annotated, Union

from pydantic import BaseModel, BeforeValidator, Field

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


def _step_types() -> tuple[type[BaseModel], ...]:
    """Every step type, from the ``STEPS`` tuple of each module of this package, in the order
    of their kinds: a new step type is its own module and nothing else."""
    found: list[type[BaseModel]] = []
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        found.extend(getattr(module, "STEPS", ()))
    kinds = [t.model_fields["kind"].default for t in found]
    twice = sorted({k for k in kinds if kinds.count(k) > 1})
    if twice:
        raise TypeError(f"step kinds declared twice: {twice}")
    return tuple(sorted(found, key=lambda t: t.model_fields["kind"].default))


#: The one list of step types; :data:`Step` is their union.
STEP_TYPES = _step_types()

Step = Annotated[
    Union[STEP_TYPES],  # noqa: UP007 -- built from a tuple at import
    Field(discriminator="kind"),
    BeforeValidator(expand_shorthand),
    ShorthandJsonSchema(),
]
for _type in STEP_TYPES:   # containers (loop, temperature_sweep) hold steps of any type
    if not _type.__pydantic_complete__:
        _type.model_rebuild(_types_namespace={"Step": Step})

#: Steps with a body of steps of their own.
CONTAINERS = tuple(t for t in STEP_TYPES if "steps" in t.model_fields)
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
