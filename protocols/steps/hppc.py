"""Hybrid pulse power characterisation (HPPC): a table of current pulses at a ladder of states
of charge.

At each of ``levels`` states of charge: ``rest`` at open circuit, then every pulse of the table in
order (each ``current`` for ``duration`` in its ``direction``, then its own ``rest``), then an
SOC step: ``soc_current`` in ``direction`` for ``soc_step``, a share of the nominal capacity
(``10 %``, with a C-rate) or a charge (``0.5 mAh``, with a current), so the step's duration is
known whatever the cell. A discharging HPPC starts from a full cell (charge it first), a charging
one from an empty cell; the analysis counts the state of charge from there.

A pulse or SOC step that reaches ``max_voltage`` (charging) or ``min_voltage`` (discharging) ends
there, as a cycler's pulse does, and the table goes on: a limit that ends a pulse early is no
fault. So those limits must lie within the cell's safety limits, and the pulse currents within its
``max_current``: the campaign check refuses a table that would exceed them, naming the field.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, BeforeValidator, Field, WithJsonSchema, model_validator

from protocols.steps.base import StepBase
from protocols.steps.constant_current import Direction
from protocols.types import FROZEN, HOUR_S, Count, CurrentLike, Duration, Voltage
from protocols.units import UnitError, parse_quantity

if TYPE_CHECKING:
    from protocols.cells import Cell

#: Pulses are recorded this often by default: the 0.1 s resistance needs a point at 0.1 s.
PULSE_RECORD_EVERY_S = 0.1


@dataclass(frozen=True)
class SocStep:
    """How far the state of charge moves between levels: a fraction of the nominal capacity,
    or a charge in coulombs."""

    kind: Literal["fraction", "charge"]
    value: float

    def __str__(self) -> str:
        return f"{100 * self.value:g} %" if self.kind == "fraction" else \
            f"{self.value / 3.6:g} mAh"


def _soc_step(value: object) -> SocStep:
    if isinstance(value, SocStep):
        return value
    try:
        fraction = parse_quantity(value, "fraction")
    except UnitError:
        fraction = None
    if fraction is not None:
        if not 0 < fraction <= 1:
            raise UnitError(f"a share of the capacity between 0 and 100 %, got {value!r}")
        return SocStep("fraction", fraction)
    try:
        charge = parse_quantity(value, "charge")
    except UnitError as exc:
        raise UnitError(f"expected a share of the capacity ('10 %') or a charge ('0.5 mAh'),"
                        f" got {value!r}") from exc
    if charge <= 0:
        raise UnitError(f"must be greater than zero, got {value!r}")
    return SocStep("charge", charge)


SocStepLike = Annotated[SocStep, BeforeValidator(_soc_step), WithJsonSchema(
    {"type": "string", "examples": ["10 %", "0.5 mAh"],
     "description": "a share of the nominal capacity, or a charge"})]


class HPPCPulse(BaseModel):
    """One row of the pulse table."""

    model_config = FROZEN
    direction: Direction
    current: CurrentLike
    duration: Duration
    rest: Duration


class HPPC(StepBase):
    kind: Literal["hppc"] = "hppc"
    pulses: list[HPPCPulse] = Field(min_length=1, max_length=20)
    direction: Direction = "discharge"
    soc_step: SocStepLike
    soc_current: CurrentLike
    levels: Count = Field(ge=1, le=1000)
    rest: Duration
    max_voltage: Voltage
    min_voltage: Voltage
    record_every: Duration = 1.0
    pulse_record_every: Duration = PULSE_RECORD_EVERY_S

    @model_validator(mode="after")
    def _consistent(self) -> HPPC:
        if self.min_voltage >= self.max_voltage:
            raise ValueError("min_voltage must be below max_voltage")
        if self.soc_step.kind == "fraction" and self.soc_current.kind != "c_rate":
            raise ValueError("soc_step as a share of the capacity needs soc_current as a"
                             " C-rate (0.33C), so that the step's duration is known")
        if self.soc_step.kind == "charge" and self.soc_current.kind != "current":
            raise ValueError("soc_step as a charge needs soc_current as a current (1 mA), so"
                             " that the step's duration is known")
        if self.soc_step.kind == "fraction" and self.levels * self.soc_step.value > 1 + 1e-9:
            raise ValueError(f"{self.levels} levels of {self.soc_step} move the state of charge"
                             f" by {100 * self.levels * self.soc_step.value:g} %, more than the"
                             " whole capacity")
        shortest = min(p.duration for p in self.pulses)
        if self.pulse_record_every > shortest:
            raise ValueError("pulse_record_every is longer than the shortest pulse")
        return self

    def soc_step_duration_s(self) -> float:
        """How long each SOC step runs at ``soc_current``."""
        if self.soc_step.kind == "fraction":
            return self.soc_step.value / self.soc_current.value * HOUR_S
        return self.soc_step.value / self.soc_current.value

    def cell_problems(self, cell: Cell) -> Iterator[tuple[tuple[object, ...], str]]:
        """What in the table would exceed ``cell``'s limits, each with its field: checked when
        the campaign is loaded, before anything is planned."""
        limits = cell.limits
        currents: list[tuple[tuple[object, ...], CurrentLike]] = [
            (("pulses", k, "current"), p.current) for k, p in enumerate(self.pulses)]
        currents.append((("soc_current",), self.soc_current))
        for field, setpoint in currents:
            try:
                amps = setpoint.to_amps(cell.electrode_area_m2, cell.capacity_Ah)
            except ValueError as exc:
                yield field, str(exc)
                continue
            if limits.max_current is not None and amps > limits.max_current * (1 + 1e-9):
                yield field, (f"{setpoint} is {amps * 1e3:.4g} mA, above the cell's"
                              f" max_current of {limits.max_current * 1e3:.4g} mA")
        if limits.max_voltage is not None and self.max_voltage > limits.max_voltage + 1e-9:
            yield ("max_voltage",), (f"{self.max_voltage:g} V is above the cell's max_voltage"
                                     f" of {limits.max_voltage:g} V: a pulse would trip the"
                                     " safety limit before it ends on its own")
        if limits.min_voltage is not None and self.min_voltage < limits.min_voltage - 1e-9:
            yield ("min_voltage",), (f"{self.min_voltage:g} V is below the cell's min_voltage"
                                     f" of {limits.min_voltage:g} V: a pulse would trip the"
                                     " safety limit before it ends on its own")
        if self.soc_step.kind == "charge" and cell.capacity_Ah is not None:
            moved = self.levels * self.soc_step.value
            if moved > cell.capacity_Ah * HOUR_S * (1 + 1e-9):
                yield ("soc_step",), (f"{self.levels} levels of {self.soc_step} move"
                                      f" {moved / 3.6:.4g} mAh, more than the cell's capacity"
                                      f" of {cell.capacity_Ah * 1e3:.4g} mAh")


STEPS = (HPPC,)
