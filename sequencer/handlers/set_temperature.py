"""Set the chamber and wait until it is stable, as labs do it: |PV - SV| within the tolerance
for the hold time, the timer restarting on any excursion, and a hard timeout."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from drivers.interfaces import Chamber, ChamberReading
from protocols.steps import SetTemperature
from protocols.units import kelvin_to_celsius

if TYPE_CHECKING:
    from drivers.clock import Clock

#: How often the chamber is read while soaking.
SOAK_POLL_S = 30.0


class SoakTimeout(Exception):
    """The chamber did not settle within the step's timeout."""


@dataclass(frozen=True)
class SoakResult:
    settled_after_s: float
    last: ChamberReading


Call = Callable[[Callable[[], Any]], Awaitable[Any]]


@dataclass(frozen=True)
class SoakProgress:
    """Where a soak stands after a reading: what a resumed run carries on from."""

    started_t: float
    inside_since: float | None
    last_read_t: float
    next_read_t: float


async def soak(chamber: Chamber, step: SetTemperature, clock: Clock, call: Call,
               carried: SoakProgress | None = None,
               checkpoint: Callable[[SoakProgress], None] | None = None) -> SoakResult:
    """``call`` runs a chamber method (in a worker thread for blocking drivers); ``carried``
    continues a soak a resumed run found under way; ``checkpoint`` is told the progress after
    every reading."""
    target = kelvin_to_celsius(step.target)
    await call(lambda: chamber.set_temperature_C(target))
    if carried is None:
        start, inside_since = clock.now(), None
    else:
        start, inside_since = carried.started_t, carried.inside_since
        await clock.sleep_until(carried.next_read_t)
    while True:
        reading: ChamberReading = await call(chamber.read)
        now = clock.now()
        if abs(reading.temperature_C - target) <= step.tolerance:
            inside_since = now if inside_since is None else inside_since
            if now - inside_since >= step.hold:
                return SoakResult(now - start, reading)
        else:
            inside_since = None
        if now - start >= step.timeout:
            raise SoakTimeout(
                f"chamber did not hold {target:g} +- {step.tolerance:g} degC for"
                f" {step.hold / 60:g} min within {step.timeout / 3600:g} h"
                f" (last reading {reading.temperature_C:g} degC)")
        if checkpoint is not None:
            checkpoint(SoakProgress(start, inside_since, now, now + SOAK_POLL_S))
        await clock.sleep_until(now + SOAK_POLL_S)
