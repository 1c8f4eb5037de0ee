"""Physical values written as strings with units, resolved once to SI floats.

pint does the unit arithmetic, but its own parser evaluates whatever expression it is given
(``1/0`` divides by zero, a tower of powers runs for ever, an unbalanced parenthesis raises a
tokenizer error), and its defaults get several things a lab writes wrong. So every value passes
through one small grammar here first, and pint only ever sees unit names joined by ``*`` and
small integer powers:

    value   := number unit            number: ASCII digits, sign, point, exponent
    unit    := factor (op factor)*    op: "*", "/", "per" or a space (multiplies); at most 6
                                      factors
    factor  := name [power]           power: "^" or "**" and an integer from -4 to 4
    name    := a letter or "%", then letters or "_" (no digits, no brackets, no numbers)

and, before parsing:

- ``cm2`` read as ``cm^2``, ``²``/``³`` as ``^2``/``^3``, ``Ohm`` and ``Ω`` as ohm, ``um`` and
  ``µm`` as micrometre, ``°C`` as ``degC``, a no-break space as a space;
- ``-20 degC``, which pint refuses as one string (offset unit), is split into number and unit;
- ``0.1C`` and ``C/10`` would parse as coulombs: a C-rate is its own kind of value (:class:`CRate`);
- ``nan mV``, ``inf s``, values that overflow to infinity or are too small to compute with
  (subnormal floats), and full-width or other non-ASCII digits are refused.

Temperatures resolve to kelvin, like every other SI value.

pint is imported only when a value needs it: a value whose unit is in :mod:`protocols.si_table`
(pint's own results for the units labs write, stored with the pint version and ``units.txt``
they came from) resolves without it, to the same float; any other value, and every error, goes
through pint.
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from protocols import si_table

if TYPE_CHECKING:
    import pint

#: A value longer than this is not something a lab writes; refused before any parsing.
MAX_VALUE_CHARS = 100
#: Unit factors in one value ("mA h / g" has three).
MAX_FACTORS = 6
#: Largest power of one unit factor ("cm^2", "s^-1").
MAX_POWER = 4
#: The largest C-rate (a 36 ms discharge); the smallest is bounded by the plan's time limits.
MAX_C_RATE = 1e5

_NUMBER = r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
_VALUE_UNIT = re.compile(rf"^[ \t]*(?P<num>{_NUMBER})[ \t]*(?P<unit>.*?)[ \t]*$", re.ASCII)
_C_RATE = re.compile(
    rf"^[ \t]*(?:(?P<rate>{_NUMBER})[ \t]*C|C[ \t]*/[ \t]*(?P<div>{_NUMBER}))[ \t]*$", re.ASCII)
_NON_FINITE = re.compile(r"^\s*[-+]?(nan|inf|infinity)\b", re.IGNORECASE)
_SQUARED = re.compile(r"\b(m|cm|mm|um|nm)([23])\b", re.ASCII)
#: One token of a unit expression.
_UNIT_TOKEN = re.compile(r"(?P<name>[A-Za-z%][A-Za-z_]*)|(?P<power>(?:\^|\*\*)[ \t]*[-+]?[0-9]*)"
                         r"|(?P<op>[*/])|(?P<space>[ \t]+)", re.ASCII)
_SPELLINGS = (("\u00a0", " "), ("\u202f", " "), ("\u00b5", "u"), ("\u03bc", "u"),
              ("\u00b0C", "degC"), ("\u00b0", "deg"), ("\u03a9", "ohm"), ("\u2126", "ohm"),
              ("\u00b7", "*"), ("\u22c5", "*"), ("\u207b\u00b9", "^-1"), ("\u207b\u00b2", "^-2"),
              ("\u00b2", "^2"), ("\u00b3", "^3"))

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
    "charge": ("[current]*[time]", "a charge"),
    "power": ("[mass]*[length]**2/[time]**3", "a power"),
    "current_rate": ("[current]/[time]", "a current rate"),
}


class UnitError(ValueError):
    """A value that is not a number with a unit of the expected dimension."""


@dataclass(frozen=True)
class CRate:
    """A current given as a multiple of the cell's 1C current; resolved in the plan."""

    rate: float

    def __str__(self) -> str:
        return f"{self.rate:g}C"


#: The units cellseq reads (pint's definitions of them, every SI prefix): parsed in
#: milliseconds where pint's whole file takes a quarter of a second at every start.
DEFINITIONS = Path(__file__).with_name("units.txt")


@lru_cache(maxsize=1)
def registry() -> pint.UnitRegistry:
    import pint  # with numpy a tenth of a second: only for values the table does not hold

    return pint.UnitRegistry(str(DEFINITIONS), autoconvert_offset_to_baseunit=True)


def _dimension_of(q: pint.Quantity) -> str:
    for name, (dims, _) in DIMENSIONS.items():
        if name.startswith("temperature_"):
            continue
        if q.dimensionality == registry().get_dimensionality(dims):
            return DIMENSIONS[name][1]
    return f"a value in {q.units:~}" if str(q.units) else "a plain number"


def _normalise(text: str) -> str:
    for old, new in _SPELLINGS:
        text = text.replace(old, new)
    return text


def unit_factors(unit: str) -> list[tuple[str, int]]:
    """The (name, power) factors of a unit written by the grammar above; UnitError saying
    what is wrong otherwise. ``mA/cm^2`` gives ``[("mA", 1), ("cm", -2)]``."""
    unit = _SQUARED.sub(r"\1^\2", _normalise(unit).strip())
    if unit == "%":
        return [("percent", 1)]
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(unit):
        m = _UNIT_TOKEN.match(unit, pos)
        if m is None:
            hint = " (a number belongs before the unit)" if unit[pos].isdigit() else ""
            raise UnitError(f"{unit[pos]!r} cannot appear in a unit{hint}; a unit is names joined"
                            " by *, / and ^, e.g. 'mA/cm^2'")
        pos = m.end()
        kind = m.lastgroup or ""
        if kind == "name" and m[kind] == "per":    # "mA per cm^2", as pint reads it
            tokens.append(("op", "/"))
        elif kind != "space":
            tokens.append((kind, m[kind]))
    factors: list[tuple[str, int]] = []
    i, sign = 0, 1
    while True:
        if i >= len(tokens):
            raise UnitError("it ends with an operator" if factors else "no unit")
        if tokens[i][0] != "name":
            raise UnitError(f"{tokens[i][1]!r} needs a unit name before it")
        name = tokens[i][1]
        i += 1
        power = 1
        if i < len(tokens) and tokens[i][0] == "power":
            digits = tokens[i][1].lstrip("^*").strip()
            if digits in ("", "-", "+"):
                raise UnitError("a power is an integer ('cm^2', 's^-1')")
            power = int(digits)
            if abs(power) > MAX_POWER:
                raise UnitError(f"powers of a unit go from {-MAX_POWER} to {MAX_POWER}, not"
                                f" {power}")
            i += 1
        factors.append((name, sign * power))
        if len(factors) > MAX_FACTORS:
            raise UnitError(f"a unit has at most {MAX_FACTORS} factors")
        if i == len(tokens):
            return factors
        kind, value = tokens[i]
        if kind == "op":
            sign = -1 if value == "/" else 1
            i += 1
        elif kind == "name":       # "mA h": a space multiplies
            sign = 1
        else:
            raise UnitError("a unit name takes one power ('cm^2', not 'cm^2^3')")


def expression_of(unit: str) -> str:
    """What pint is given for ``unit`` written by the grammar above: its factors joined by
    ``*`` (``mA/cm^2`` gives ``"mA * cm ** -2"``); UnitError saying what is wrong."""
    return " * ".join(name if power == 1 else f"{name} ** {power}"
                      for name, power in unit_factors(unit))


def unit_of(unit: str) -> pint.Unit:
    """The pint unit of ``unit`` written by the grammar above (``"1"`` for a plain number), or
    UnitError saying what is wrong."""
    if unit.strip() == "1":
        return registry().dimensionless
    expression = expression_of(unit)
    import pint

    try:
        return registry().Unit(expression)
    except (pint.errors.PintError, AttributeError, TypeError, ValueError, ArithmeticError
            ) as exc:
        raise UnitError(f"{unit.strip()!r} is not a unit pint knows") from exc


def _unit(unit: str, text: str) -> pint.Unit:
    """The pint unit of the unit part of the value ``text``, or UnitError naming both."""
    try:
        return unit_of(unit)
    except UnitError as exc:
        reason = "" if "is not a unit pint knows" in str(exc) else f": {exc}"
        raise UnitError(f"unknown unit {unit!r} in {text!r}{reason}") from None


def parse_c_rate(text: str) -> CRate | None:
    """Return the C-rate in ``text`` ("0.1C", "2 C", "C/10"), or None if it is not one."""
    if len(text) > MAX_VALUE_CHARS:
        return None
    m = _C_RATE.match(_normalise(text))
    if not m:
        return None
    if m["rate"] is not None:
        rate = float(m["rate"])
    else:
        divisor = float(m["div"])
        if not (math.isfinite(divisor) and divisor > 0):
            raise UnitError(f"a C-rate must be a positive finite number, got {text!r}")
        rate = 1.0 / divisor
    if not math.isfinite(rate) or rate <= 0 or rate < sys.float_info.min:
        raise UnitError(f"a C-rate must be a positive finite number, got {text!r}")
    if rate > MAX_C_RATE:
        raise UnitError(f"a C-rate above {MAX_C_RATE:g}C is not one a cell survives, got"
                        f" {text!r}")
    return CRate(rate)


def parse_quantity(text: object, dimension: str) -> float:
    """Resolve ``text`` to an SI float of ``dimension`` (a key of :data:`DIMENSIONS`)."""
    word = DIMENSIONS[dimension][1]
    if isinstance(text, bool) or not isinstance(text, str):
        raise UnitError(f"expected {word} written with its unit (e.g. {_EXAMPLES[dimension]!r}),"
                        f" got {text!r}")
    if len(text) > MAX_VALUE_CHARS:
        raise UnitError(f"expected {word}; a value of {len(text)} characters is too long (the"
                        f" limit is {MAX_VALUE_CHARS})")
    rate = _C_RATE.match(_normalise(text)) if dimension != "current" else None
    if rate:
        # "25 C" meant as a temperature: pint's C is the coulomb, cellseq's a C-rate
        hint = f" (degrees Celsius are written degC: '{rate['rate']} degC')" \
            if dimension == "temperature" and rate["rate"] else ""
        raise UnitError(f"expected {word}, got the C-rate {text!r}{hint}")
    if _NON_FINITE.match(text):
        raise UnitError(f"{text!r} is not a finite number")
    if any(ch.isdecimal() and not ch.isascii() for ch in text):
        raise UnitError(f"{text!r}: write numbers with the digits 0-9")
    m = _VALUE_UNIT.match(_normalise(text))
    if not m or not m["unit"]:
        raise UnitError(f"expected {word} written with its unit (e.g. {_EXAMPLES[dimension]!r}),"
                        f" got {text!r}")
    number = float(m["num"])
    if not math.isfinite(number):
        raise UnitError(f"{text!r} is not a finite number")
    value = _from_table(m["unit"], number, dimension)
    if value is None:
        value = si_by_pint(number, m["unit"], text, dimension)
    if not math.isfinite(value):
        raise UnitError(f"{text!r} is not a finite number (it overflows in SI units)")
    if value != 0 and abs(value) < sys.float_info.min:
        raise UnitError(f"{text!r} is too small to compute with (below 1e-308 in SI units)")
    return value


def _from_table(unit: str, number: float, dimension: str) -> float | None:
    """``number`` in ``unit`` as the SI float of ``dimension`` that pint gives, from
    :mod:`protocols.si_table`; None when the table does not hold the unit as that dimension
    (then pint decides, and words any error)."""
    if unit.strip() == "1":
        return None
    try:
        expression = expression_of(unit)
    except UnitError:
        return None
    return si_table.resolve(expression, dimension, number)


def si_by_pint(number: float, unit: str, text: str, dimension: str) -> float:
    """``number`` in ``unit`` (the unit part of the value ``text``) as an SI float of
    ``dimension``, computed by pint; UnitError for an unknown unit or another dimension."""
    import pint

    dims, word = DIMENSIONS[dimension]
    unit_ = _unit(unit, text)
    reg = registry()
    try:
        q = reg.Quantity(number, unit_)
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
    except (pint.errors.PintError, ArithmeticError, ValueError, TypeError) as exc:
        if isinstance(exc, UnitError):
            raise
        raise UnitError(f"cannot convert {text!r} to SI units: {exc}") from None
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
    "charge": "0.5 mAh",
    "power": "10 mW",
    "current_rate": "1 uA/min",
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
            quantities.append(reg.Quantity(1.0, unit_of(unit)))
        except UnitError as exc:
            reason = "" if "is not a unit pint knows" in str(exc) else f": {exc}"
            raise UnitError(f"unknown unit {unit!r}{reason}") from None
    source, target = quantities
    if source.dimensionality != target.dimensionality:
        raise UnitError(f"{from_unit!r} ({_dimension_of(source)}) cannot be expressed in"
                        f" {to_unit!r} ({_dimension_of(target)})")
    return float((value * source).to(target.units).magnitude)
