"""Chamber suspenders: cells rest while their chamber is not what the protocol asked for.

Bluesky's suspenders pause a plan while a condition holds and resume it once the condition has
cleared; cellseq does the same for chambers. While a chamber holds a setpoint, a watchdog reads
it every ``WATCH_S`` (``SIMULATED_WATCH_S`` in dry runs). An alarm, a mode other than
constant, a temperature more than ``OUT_OF_TOLERANCE`` times the soak's tolerance away from the
setpoint, or no answer at all suspends the chamber: each of its cells polls what it has
recorded, turns its output off and waits. Once the chamber answers again, without an alarm,
the setpoint is set again and the soak runs as at a temperature step (tolerance, hold time,
timeout); then every cell carries on with its interrupted step under the step's resume
policy. A soak that times out faults the cells.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import trio

from drivers.interfaces import ChamberMode, ChamberReading
from protocols.steps import SetTemperature
from protocols.units import kelvin_to_celsius

#: How often a chamber is read between temperature steps (s): every minute on hardware; a dry
#: run's simulated chambers, whose faults are injected on purpose, every half hour of virtual
#: time (reads would otherwise cost a dry run more than its cells do).
WATCH_S = 60.0
SIMULATED_WATCH_S = 1800.0
#: How far outside the soak's tolerance the air may stray before the cells are suspended.
OUT_OF_TOLERANCE = 2.0


@dataclass
class ChamberWatch:
    """What the executor knows of one chamber: the setpoint in force and whether its cells may
    run."""

    name: str
    step: SetTemperature | None = None   # the soak that set the setpoint in force
    soaking: bool = False                # a soak is reading the chamber itself
    reason: str | None = None            # why the cells are suspended
    failed: str | None = None            # the chamber did not come back
    air_C: float = math.nan              # the last reading
    ok: trio.Event = field(default_factory=trio.Event)
    scopes: set[trio.CancelScope] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.ok.set()

    @property
    def suspended(self) -> bool:
        return not self.ok.is_set()

    def problem(self, reading: ChamberReading | None, error: str | None = None) -> str | None:
        """Why the cells should not run, or None."""
        if error is not None:
            return f"not answering ({error})"
        assert reading is not None and self.step is not None
        if reading.alarms:
            return f"alarm: {', '.join(reading.alarms)}"
        if reading.mode is not ChamberMode.CONSTANT:
            return f"mode {reading.mode.value}, not constant"
        target = kelvin_to_celsius(self.step.target)
        band = OUT_OF_TOLERANCE * self.step.tolerance
        if not math.isfinite(reading.temperature_C) or \
                abs(reading.temperature_C - target) > band:
            return (f"{reading.temperature_C:g} degC, more than {band:g} K from the setpoint"
                    f" {target:g} degC")
        return None

    def suspend(self, reason: str) -> None:
        """Stop the cells: every sleeping poll loop of this chamber wakes now."""
        self.reason = reason
        if self.ok.is_set():
            self.ok = trio.Event()
        for scope in list(self.scopes):
            scope.cancel()

    def release(self, failed: str | None = None) -> None:
        self.reason, self.failed = None, failed
        self.ok.set()


def next_watch_time(now: float, every_s: float) -> float:
    """Reads fall on multiples of the interval, so a resumed run reads when the first one
    did."""
    return (math.floor(now / every_s) + 1) * every_s
