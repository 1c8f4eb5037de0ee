"""pint's own results for the units labs write, so that checking a protocol whose values all
use them does not import pint (with numpy, a tenth of a second at every start of the command).

For each unit expression (as :func:`protocols.units.expression_of` gives it to pint) and each
dimension of :data:`protocols.units.DIMENSIONS` pint accepts it as, ``si_table.json`` holds how
pint computes the SI float: ``[factor]`` for ``value * factor``, or, for an offset unit such as
degC, ``[scale, offset]`` for ``value * scale + offset`` (what pint's converter does). pint
stays the authority: the numbers are pint's, taken by running :func:`protocols.units.si_by_pint`
on the unit (:func:`write` makes the table), and a recipe is kept only if it
gives pint's float bit for bit on values spanning the whole float range. The table names the
pint version and the ``units.txt`` it was made from; with any other, it is not used at all and
every value goes through pint. A unit or dimension the table does not hold, and every error,
goes through pint too, so messages are pint's. ``tests/test_si_table.py`` makes the table again
and checks that it equals the stored one.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import random
import sys
from pathlib import Path
from typing import Any

TABLE = Path(__file__).with_name("si_table.json")
UNITS_TXT = Path(__file__).with_name("units.txt")

#: Unit symbols written with SI prefixes (every prefix of units.txt) in the table.
PREFIXED = ("s", "m", "g", "A", "V", "Hz", "Ohm", "ohm", "W", "Wh", "J", "C", "Ah", "S", "F",
            "K", "mol", "M", "eV", "L", "l", "Pa", "N")
#: Compound units labs write: every numerator over every denominator of a pair.
COMPOUNDS = (
    (("A", "mA", "uA", "nA"), ("m^2", "cm^2", "mm^2")),
    (("kg", "g", "mg", "ug"), ("m^2", "cm^2", "mm^2")),
    (("Ah", "mAh", "uAh", "C", "mC", "mA h"), ("kg", "g", "mg")),
    (("V", "mV", "uV"), ("s", "min", "h")),
    (("K", "mK"), ("s", "min", "h")),
    (("A", "mA", "uA", "nA"), ("s", "min", "h")),
)
AREAS = ("m^2", "cm^2", "mm^2", "um^2")
#: Durations as labs write them in words ("2 hours", "5 minutes"), which pint reads by
#: dropping the "s": without them in the table, one "hours" imports pint (and numpy) for the
#: whole command. (Not every name: pint reads "kilograms" as kilo-gram and then loops.)
PLURALS = ("seconds", "secs", "minutes", "mins", "hours", "hrs", "days", "weeks")


def resolve(expression: str, dimension: str, number: float) -> float | None:
    """``number`` in the unit ``expression`` as the SI float of ``dimension`` pint gives, or
    None when the table does not hold that unit as that dimension."""
    recipe = _recipes().get(expression, {}).get(dimension)
    if recipe is None:
        return None
    return apply(recipe, number)


def apply(recipe: list[float], number: float) -> float:
    """The arithmetic pint does: a factor, or an offset unit's scale and offset."""
    if len(recipe) == 1:
        return number * recipe[0]
    scale, offset = recipe
    return number * scale + offset


@functools.cache
def _recipes() -> dict[str, dict[str, list[float]]]:
    """The stored recipes, or none when the table was made with another pint or units.txt."""
    try:
        data = json.loads(TABLE.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if data.get("pint") != pint_version() or data.get("units.txt") != units_hash():
        return {}
    return data["recipes"]


def pint_version() -> str | None:
    """The installed pint's version, read from its metadata (importing pint is what the table
    saves)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pint")
    except PackageNotFoundError:
        return None


def units_hash() -> str:
    return hashlib.sha256(UNITS_TXT.read_bytes()).hexdigest()


def _samples() -> list[float]:
    """Values a recipe must convert exactly as pint does: signs, zeros, the extremes of the
    float range, and random values across it."""
    rng = random.Random(18)
    fixed = [0.0, -0.0, 1.0, -1.0, 0.1, 0.35, 2.5, 25.0, -20.0, 300.0, 1e-300, -1e-300, 1e300,
             sys.float_info.max, sys.float_info.min, 5e-324]
    return fixed + [rng.choice((-1, 1)) * rng.random() * 10.0 ** rng.randint(-310, 308)
                    for _ in range(48)]


def _same(a: float, b: float) -> bool:
    return repr(a) == repr(b)   # -0.0 apart from 0.0; inf equals inf


def _candidates(prefixes: list[str], names: list[str]) -> list[str]:
    units = [*names, *PLURALS, *(p + u for p in prefixes for u in PREFIXED), *AREAS]
    units += [f"{n}/{d}" for numerators, denominators in COMPOUNDS
              for n in numerators for d in denominators]
    return list(dict.fromkeys(units))


def build() -> dict[str, Any]:
    """The table, made by running pint on every candidate unit (slow: pint, every dimension)."""
    import pint

    from protocols.units import (
        DEFINITIONS,
        DIMENSIONS,
        UnitError,
        expression_of,
        registry,
        si_by_pint,
    )

    reg = registry()
    # names as units.txt defines them (the shared registry adds every unit it has parsed)
    fresh = pint.UnitRegistry(str(DEFINITIONS))
    prefixes = sorted({p.symbol for p in fresh._prefixes.values() if p.symbol})
    names = sorted(n for n in fresh._units if n.isascii())
    samples = _samples()
    recipes: dict[str, dict[str, list[float]]] = {}
    for unit in _candidates(prefixes, names):
        try:
            expression = expression_of(unit)
        except UnitError:
            continue
        for dimension in DIMENSIONS:
            try:
                factor = si_by_pint(1.0, unit, unit, dimension)
            except UnitError:
                continue
            for recipe in ([factor], _offset_recipe(reg, expression)):
                if recipe is not None and all(
                        _same(apply(recipe, v), _pint_or_nan(v, unit, dimension))
                        for v in samples):
                    recipes.setdefault(expression, {})[dimension] = recipe
                    break
    return {"pint": pint_version(), "units.txt": units_hash(), "recipes": recipes}


def _offset_recipe(reg: Any, expression: str) -> list[float] | None:
    """[scale, offset] of a lone offset unit (degC), as its pint converter holds them."""
    try:
        converter = reg._units[reg.get_name(expression)].converter
    except (KeyError, AttributeError, ValueError):
        return None
    offset = getattr(converter, "offset", None)
    if not offset:
        return None
    return [converter.scale, offset]


def _pint_or_nan(value: float, unit: str, dimension: str) -> float:
    from protocols.units import UnitError, si_by_pint

    try:
        return si_by_pint(value, unit, unit, dimension)
    except UnitError:
        return math.nan


def dumps(table: dict[str, Any]) -> str:
    """The table as JSON, one unit a line (readable diffs when pint or units.txt change)."""
    lines = [f"{json.dumps(k)}: {json.dumps(v, sort_keys=True)}"
             for k, v in sorted(table["recipes"].items())]
    return ("{" + f'"pint": {json.dumps(table["pint"])}, "units.txt": '
            f'{json.dumps(table["units.txt"])},\n"recipes": {{\n' + ",\n".join(lines) + "\n}}\n")


def write() -> int:
    """Make ``si_table.json`` again (after pint or units.txt changed); the number of units.

        python -c "from protocols.si_table import write; print(write())"
    """
    made = build()
    TABLE.write_text(dumps(made), encoding="utf-8")
    return len(made["recipes"])
