"""Physical values written as strings with units, resolved once to SI floats.

pint does the unit arithmetic, but its default parser gets several things a lab writes wrong, so
every string passes through :func:`parse_quantity` first:

- ``cm2`` (read as ``cm^2``), ``Ohm`` (pint only knows ``ohm``), ``um`` and ``µm``;
- ``-20 degC``, which pint refuses as one string (offset unit), is split into number and unit;
- ``0.1C`` and ``C/10`` would parse as coulombs: a C-rate is its own kind of value (:class:`CRate`);
- ``nan mV`` and ``inf s`` are accepted by pint and refused here.

Temperatures resolve to kelvin, like every other SI value.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache

import pint

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_VALUE_UNIT = re.compile(rf"^\s*(?P<num>{_NUMBER})\s*(?P<unit>.*?)\s*$")
_C_RATE = re.compile(rf"^\s*(?:(?P<rate>{_NUMBER})\s*C|C\s*/\s*(?P<div>{_NUMBER}))\s*$")
_NON_FINITE = re.compile(r"^\s*[-+]?(nan|inf|infinity)\b", re.IGNORECASE)
_SQUARED = re.compile(r"\b(m|cm|mm|um|µm|nm)([23])\b")

#: Dimension name -> pint dimensionality string, with a human word for error messages.
DIMENSIONS: dict[str, tuple[str, str]] = {
    "time": ("[time]", "a duration"),
    "frequency": ("1/[time]", "a frequency"),
    "voltage": ("[mass]*[length]**2/[time]**3/[current]", "a voltage"),
    "current": ("[current]", "a current"),
    "current_density": ("[current]/[length]**2", "a current density"),
    "length": ("[length]", "a length"),
    "area": ("[length]**2", "an area"),
    "temperature": ("[temperature]", "a temperature"),
    "temperature_difference": ("[temperature]", "a temperature difference"),
    "areal_mass": ("[mass]/[length]**2", "a mass per area"),
    "specific_capacity": ("[current]*[time]/[mass]", "a specific capacity"),
    "resistance": ("[mass]*[length]**2/[time]**3/[current]**2", "a resistance"),
    "scan_rate": ("[mass]*[length]**2/[time]**4/[current]", "a scan rate"),
    "temperature_rate": ("[temperature]/[time]", "a temperature rate"),
    "fraction": ("[]", "a percentage"),
}


class UnitError(ValueError):
    """A value that is not a number with a unit of the expected dimension."""


@dataclass(frozen=True)
class CRate:
    """A current given as a multiple of the cell's 1C current; resolved in the plan."""

    rate: float

    def __str__(self) -> str:
        return f"{self.rate:g}C"


@lru_cache(maxsize=1)
def registry() -> pint.UnitRegistry:
    reg = pint.UnitRegistry(autoconvert_offset_to_baseunit=True)
    reg.define("Ohm = ohm")
    reg.define("mOhm = milliohm")
    reg.define("kOhm = kiloohm")
    reg.define("MOhm = megaohm")
    return reg


def _dimension_of(q: pint.Quantity) -> str:
    for name, (dims, _) in DIMENSIONS.items():
        if name.startswith("temperature_"):
            continue
        if q.dimensionality == registry().get_dimensionality(dims):
            return DIMENSIONS[name][1]
    return f"a value in {q.units:~}" if str(q.units) else "a plain number"


def _normalise_unit(unit: str) -> str:
    unit = unit.replace("µ", "u").replace("μ", "u").replace("°C", "degC").replace("°", "deg")
    unit = _SQUARED.sub(r"\1^\2", unit)
    if unit == "%":
        unit = "percent"
    return unit


def parse_c_rate(text: str) -> CRate | None:
    """Return the C-rate in ``text`` ("0.1C", "2 C", "C/10"), or None if it is not one."""
    m = _C_RATE.match(text)
    if not m:
        return None
    rate = float(m["rate"]) if m["rate"] is not None else 1.0 / float(m["div"])
    if not math.isfinite(rate) or rate <= 0:
        raise UnitError(f"a C-rate must be a positive finite number, got {text!r}")
    return CRate(rate)


def parse_quantity(text: object, dimension: str) -> float:
    """Resolve ``text`` to an SI float of ``dimension`` (a key of :data:`DIMENSIONS`)."""
    dims, word = DIMENSIONS[dimension]
    if isinstance(text, bool) or not isinstance(text, str):
        raise UnitError(f"expected {word} written with its unit (e.g. {_EXAMPLES[dimension]!r}),"
                        f" got {text!r}")
    if parse_c_rate(text) is not None and dimension != "current":
        raise UnitError(f"expected {word}, got the C-rate {text!r}")
    if _NON_FINITE.match(text):
        raise UnitError(f"{text!r} is not a finite number")
    m = _VALUE_UNIT.match(text)
    if not m or not m["unit"]:
        raise UnitError(f"expected {word} written with its unit (e.g. {_EXAMPLES[dimension]!r}),"
                        f" got {text!r}")
    number = float(m["num"])
    if not math.isfinite(number):
        raise UnitError(f"{text!r} is not a finite number")
    unit = _normalise_unit(m["unit"])
    reg = registry()
    try:
        q = reg.Quantity(number, unit)
    except (pint.errors.PintError, AttributeError, TypeError, ValueError, SyntaxError) as exc:
        raise UnitError(f"unknown unit {m['unit']!r} in {text!r}") from exc
    if q.dimensionality != reg.get_dimensionality(dims):
        raise UnitError(f"expected {word}, got {text!r} ({_dimension_of(q)})")
    if dimension == "temperature_difference":
        # "0.5 K", "0.5 degC" and "0.5 delta_degC" all mean a difference of 0.5 K.
        units = str(q.units)
        if units in ("degree_Celsius", "degree_Fahrenheit"):
            q = reg.Quantity(number, "delta_" + units)
        value = float(q.to("kelvin").magnitude)
    else:
        value = float(q.to_base_units().magnitude)
    if not math.isfinite(value):
        raise UnitError(f"{text!r} is not a finite number")
    return value


_EXAMPLES = {
    "time": "30 min",
    "frequency": "3 MHz",
    "voltage": "10 mV",
    "current": "0.43 mA",
    "current_density": "0.35 mA/cm^2",
    "length": "300 um",
    "area": "2.01 cm^2",
    "temperature": "25 degC",
    "temperature_difference": "0.5 K",
    "areal_mass": "1.9 mg/cm^2",
    "specific_capacity": "200 mAh/g",
    "resistance": "10 Ohm",
    "scan_rate": "1 mV/s",
    "temperature_rate": "1 K/min",
    "fraction": "80 %",
}


def kelvin_to_celsius(value_K: float) -> float:
    return value_K - 273.15



def convert(value: float, from_unit: str, to_unit: str) -> float:
    """``value`` in ``from_unit`` expressed in ``to_unit``, both written as in protocol files
    (``cm2/s`` and ``cm^2/s`` alike, ``Ohm``, ``%``, ``1`` for a plain number). Raises
    :class:`UnitError` for an unknown unit or two units of different dimensions."""
    reg = registry()
    quantities = []
    for unit in (from_unit, to_unit):
        try:
            quantities.append(reg.Quantity(1.0, _normalise_unit(unit.strip())))
        except (pint.errors.PintError, AttributeError, TypeError, ValueError,
                SyntaxError) as exc:
            raise UnitError(f"unknown unit {unit!r}") from exc
    source, target = quantities
    if source.dimensionality != target.dimensionality:
        raise UnitError(f"{from_unit!r} ({_dimension_of(source)}) cannot be expressed in"
                        f" {to_unit!r} ({_dimension_of(target)})")
    return float((value * source).to(target.units).magnitude)
