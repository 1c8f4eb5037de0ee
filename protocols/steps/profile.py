"""A current or power profile from a CSV file (a drive cycle), linearly interpolated.

``file`` is named relative to the protocol file that holds the step, like an included file
(and under the same policy: inside the protocol's folder unless outside includes are
allowed); the loader reads and checks it (:mod:`protocols.profile_files`) and the run keeps a
copy with the protocol, so a resumed run uses the copy. The step lasts as long as the profile
and ends early when the voltage leaves ``min_voltage``..``max_voltage`` (reason ``voltage``)
or at an ``until`` condition. Positive values charge.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Literal

from pydantic import Field, PrivateAttr, model_validator

from protocols.profile_files import ProfileData
from protocols.steps.base import RecordingStep
from protocols.steps.until import StepUntil
from protocols.types import Duration, Voltage

if TYPE_CHECKING:
    from protocols.cells import Cell


class CurrentProfile(RecordingStep):
    kind: Literal["profile"] = "profile"
    file: str = Field(min_length=1, max_length=1000)
    quantity: Literal["current", "power"]
    time_unit: str | None = Field(default=None, max_length=50)
    value_unit: str | None = Field(default=None, max_length=50)
    min_voltage: Voltage | None = None
    max_voltage: Voltage | None = None
    until: StepUntil | None = None
    record_every: Duration = 1.0
    _data: ProfileData | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _window(self) -> CurrentProfile:
        if (self.min_voltage is not None and self.max_voltage is not None
                and self.min_voltage >= self.max_voltage):
            raise ValueError("min_voltage must be below max_voltage")
        return self

    @property
    def data(self) -> ProfileData:
        """The profile the loader read; a step built without a loader has none."""
        if self._data is None:
            raise ValueError(f"profile {self.file!r} has not been read (load the campaign"
                             " from its file)")
        return self._data

    def attach(self, data: ProfileData) -> None:
        """The loader hands the profile it read and checked."""
        self._data = data

    def lowest_voltage(self, cell: Cell) -> float | None:
        """The lowest voltage the cell may reach during the step: what a power draws its
        largest current at."""
        lows = [v for v in (self.min_voltage, cell.limits.min_voltage) if v is not None]
        return max(lows) if lows else None

    def cell_problems(self, cell: Cell) -> Iterator[tuple[tuple[object, ...], str]]:
        """Points of the profile beyond the cell's limits, named by file and line."""
        if self._data is None:
            return
        limits = cell.limits
        for name, v in (("min_voltage", self.min_voltage), ("max_voltage", self.max_voltage)):
            if v is None:
                continue
            if limits.max_voltage is not None and v > limits.max_voltage + 1e-9:
                yield (name,), (f"{v:g} V is above the cell's max_voltage of"
                                f" {limits.max_voltage:g} V")
            if limits.min_voltage is not None and v < limits.min_voltage - 1e-9:
                yield (name,), (f"{v:g} V is below the cell's min_voltage of"
                                f" {limits.min_voltage:g} V")
        if limits.max_current is None:
            return
        row = self._data.peak_row()
        peak = abs(self._data.values[row])
        where = f"{self._data.name}:{self._data.line_of(row)}"
        if self.quantity == "current":
            amps = peak
        else:
            low = self.lowest_voltage(cell)
            if low is None or low <= 0:
                yield ("min_voltage",), ("a power profile needs a positive min_voltage (or the"
                                         " cell's) so that its largest current is known")
                return
            amps = peak / low
        if amps > limits.max_current * (1 + 1e-9):
            yield ("file",), (f"{where}: {peak:.4g} {'A' if self.quantity == 'current' else 'W'}"
                              f" draws {amps * 1e3:.4g} mA, above the cell's max_current of"
                              f" {limits.max_current * 1e3:.4g} mA")


STEPS = (CurrentProfile,)
