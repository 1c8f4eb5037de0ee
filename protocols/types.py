"""Annotated field types: a string with a unit in the file, an SI float in the model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, ConfigDict, Field, Strict, WithJsonSchema

from protocols.units import _EXAMPLES, CRate, UnitError, parse_c_rate, parse_quantity

HOUR_S = 3600.0
DAY_S = 86400.0
#: The longest time any one step, soak or time-out may be given (two years): longer is a typo
#: ("1e12 h"), and the simulators and the store work in float seconds from the run's start.
MAX_DURATION_S = 2 * 365.25 * DAY_S
#: The shortest duration a protocol may give (1 us): below it no instrument records.
MIN_DURATION_S = 1e-6

#: What a JSON Schema pattern can check of a value with a unit: it starts with a number (the
#: grammar of :mod:`protocols.units` decides the rest).
QUANTITY_PATTERN = r"^\s*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?\s*\S"
#: ... or, for a current, a C-rate written "C/10".
CURRENT_PATTERN = r"^\s*([-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?\s*\S|C\s*/)"

#: A count (loop iterations, cycles, pulses): a YAML integer, never a boolean or a float.
Count = Annotated[int, Strict()]


@dataclass(frozen=True)
class Bounds:
    """Where a value must lie (SI, inclusive), and how a message says it."""

    low: float
    high: float
    what: str


def _quantity(dimension: str, *, positive: bool = False, nonnegative: bool = False,
              bounds: Bounds | None = None) -> Any:
    def validate(value: object) -> float:
        si = parse_quantity(value, dimension)
        if positive and si <= 0:
            raise UnitError(f"must be greater than zero, got {value!r}")
        if nonnegative and si < 0:
            raise UnitError(f"must not be negative, got {value!r}")
        if bounds is not None and not bounds.low <= si <= bounds.high:
            raise UnitError(f"{value!r} is outside {bounds.what}")
        return si

    schema = {"type": "string", "examples": [_EXAMPLES[dimension]],
              "pattern": QUANTITY_PATTERN,
              "description": f"{dimension.replace('_', ' ')} with its unit"}
    return Annotated[float, BeforeValidator(validate), WithJsonSchema(schema)]


#: Geometry and loading of a cell: far beyond any real cell, and small or large enough that
#: areas, masses and capacities computed from them stay finite floats.
LENGTH_BOUNDS = Bounds(1e-9, 10.0, "the lengths of a cell, 1 nm to 10 m")
AREA_BOUNDS = Bounds(1e-12, 100.0, "the areas of a cell, 1 um^2 to 100 m^2")
AREAL_MASS_BOUNDS = Bounds(1e-9, 1e3, "the loadings of an electrode, 1e-7 to 1e5 mg/cm^2")
SPECIFIC_CAPACITY_BOUNDS = Bounds(3.6, 7.2e7, "the specific capacities of an electrode,"
                                  " 0.001 to 20 000 mAh/g")

Duration = _quantity("time", positive=True, bounds=Bounds(
    MIN_DURATION_S, MAX_DURATION_S,
    f"the durations cellseq runs, 1 us to {MAX_DURATION_S / DAY_S:g} days (2 years)"))
Frequency = _quantity("frequency", positive=True)
Voltage = _quantity("voltage")
PositiveVoltage = _quantity("voltage", positive=True)
Length = _quantity("length", positive=True, bounds=LENGTH_BOUNDS)
Area = _quantity("area", positive=True, bounds=AREA_BOUNDS)
Temperature = _quantity("temperature", positive=True)  # kelvin, so > 0 K
TemperatureDifference = _quantity("temperature_difference", positive=True)
ArealMass = _quantity("areal_mass", positive=True, bounds=AREAL_MASS_BOUNDS)
SpecificCapacity = _quantity("specific_capacity", positive=True,
                             bounds=SPECIFIC_CAPACITY_BOUNDS)
PositiveCurrent = _quantity("current", positive=True)
PositiveCurrentDensity = _quantity("current_density", positive=True)
ScanRate = _quantity("scan_rate", positive=True)
Fraction = _quantity("fraction", positive=True)
#: A state of charge: a share of the cell's capacity, 0 % (empty) to 100 % (full).
StateOfCharge = _quantity("fraction", bounds=Bounds(0.0, 1.0, "0 % to 100 %"))
PositiveCharge = _quantity("charge", positive=True)
Charge = PositiveCharge
PositivePower = _quantity("power", positive=True)
PositiveResistance = _quantity("resistance", positive=True)
CurrentRate = _quantity("current_rate", positive=True)


@dataclass(frozen=True)
class CurrentSetpoint:
    """A current as written: absolute (A), per area (A/m^2) or a C-rate, resolved per cell."""

    kind: Literal["current", "density", "c_rate"]
    value: float  # A, A/m^2 or multiples of 1C

    def to_amps(self, area_m2: float, capacity_Ah: float | None) -> float:
        if self.kind == "current":
            return self.value
        if self.kind == "density":
            return self.value * area_m2
        if capacity_Ah is None:
            raise ValueError("a C-rate needs a cell with a cathode capacity")
        return self.value * capacity_Ah

    def __str__(self) -> str:
        if self.kind == "c_rate":
            return str(CRate(self.value))
        if self.kind == "density":
            return f"{self.value / 10:g} mA/cm^2"
        return f"{self.value * 1e3:g} mA"


def _current_setpoint(value: object) -> CurrentSetpoint:
    if isinstance(value, CurrentSetpoint):
        return value
    if isinstance(value, str):
        rate = parse_c_rate(value)
        if rate is not None:
            return CurrentSetpoint("c_rate", rate.rate)
        try:
            density = parse_quantity(value, "current_density")
        except UnitError:
            density = None
        if density is not None:
            if density <= 0:
                raise UnitError(f"must be greater than zero, got {value!r}")
            return CurrentSetpoint("density", density)
    try:
        amps = parse_quantity(value, "current")
    except UnitError as exc:
        raise UnitError(
            f"expected a current ('0.43 mA'), a current density ('0.35 mA/cm^2') or a C-rate"
            f" ('0.1C', 'C/10'), got {value!r}"
        ) from exc
    if amps <= 0:
        raise UnitError(f"must be greater than zero (the step's direction gives the sign),"
                        f" got {value!r}")
    return CurrentSetpoint("current", amps)


CurrentLike = Annotated[
    CurrentSetpoint,
    BeforeValidator(_current_setpoint),
    WithJsonSchema({"type": "string", "examples": ["0.43 mA", "0.35 mA/cm^2", "0.1C", "C/10"],
                    "pattern": CURRENT_PATTERN,
                    "description": "a current, a current density or a C-rate"}),
]

Identifier = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")]

#: Protocol models: no extra keys, immutable. Their validators are built when first used
#: (``defer_build``): a campaign's is built once with every step type in it, where building
#: each model's own at import cost every command that imports protocols about 0.03 s of CPU.
FROZEN = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True, defer_build=True)
