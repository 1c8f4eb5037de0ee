"""Steps that are sequences of simpler ones: they expand, before the plan, into loops of
primitive steps, so the executor needs no special case for them.

Values are already SI floats, so the expanded models are built without re-parsing."""

from __future__ import annotations

from protocols.steps import (
    GITT,
    CCCVCharge,
    CCDischarge,
    CCDRamp,
    ConstantCurrent,
    ConstantVoltage,
    Loop,
    LoopUntil,
    PlatingStripping,
    Rest,
    Step,
)
from protocols.types import CurrentSetpoint

_UNTIL_SHORT = LoopUntil.model_construct(capacity_retention_below=None, short_circuit=True,
                                         voltage_limit=False)
_UNTIL_VOLTAGE = LoopUntil.model_construct(capacity_retention_below=None, short_circuit=False,
                                           voltage_limit=True)


def _cc(**fields: object) -> ConstantCurrent:
    return ConstantCurrent.model_construct(**fields)


def _half_cycles(density: float, half: float, short: float, record: float) -> list[Step]:
    current = CurrentSetpoint("density", density)
    return [_cc(direction=d, current=current, duration=half, short_circuit_below=short,
                record_every=record) for d in ("charge", "discharge")]


def plating_stripping(step: PlatingStripping) -> list[Step]:
    body = _half_cycles(step.current_density, step.half_cycle, step.short_circuit_below,
                        step.record_every)
    return [Loop.model_construct(count=step.cycles, until=_UNTIL_SHORT, steps=body)]


def ccd_ramp(step: CCDRamp) -> list[Step]:
    levels = [Loop.model_construct(count=step.cycles_per_level, until=_UNTIL_SHORT,
                                   steps=_half_cycles(j, step.half_cycle,
                                                      step.short_circuit_below,
                                                      step.record_every))
              for j in step.levels()]
    return [Loop.model_construct(count=1, until=_UNTIL_SHORT, steps=levels)]


def gitt(step: GITT) -> list[Step]:
    # a pulse started again would titrate twice: it continues for the time it has left
    pulse = _cc(direction=step.direction, current=step.current, duration=step.pulse,
                until_voltage=step.until_voltage, record_every=step.record_every,
                on_resume=step.on_resume or "continue")
    rest = Rest.model_construct(duration=step.rest, record_every=step.record_every)
    return [Loop.model_construct(count=step.max_pulses, until=_UNTIL_VOLTAGE,
                                 count_cycles=False, steps=[pulse, rest])]


def cccv_charge(step: CCCVCharge) -> list[Step]:
    return [
        _cc(direction="charge", current=step.current, until_voltage=step.voltage,
            record_every=step.record_every, c_rate_reference=step.c_rate_reference),
        ConstantVoltage.model_construct(voltage=step.voltage, until_current=step.until_current,
                                        duration=step.hold_duration,
                                        record_every=step.record_every,
                                        c_rate_reference=step.c_rate_reference),
    ]


def cc_discharge(step: CCDischarge) -> list[Step]:
    return [_cc(direction="discharge", current=step.current, until_voltage=step.until_voltage,
                record_every=step.record_every, c_rate_reference=step.c_rate_reference)]


EXPANSIONS = {PlatingStripping: plating_stripping, CCDRamp: ccd_ramp, GITT: gitt,
              CCCVCharge: cccv_charge, CCDischarge: cc_discharge}
