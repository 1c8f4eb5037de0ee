"""The table of pint's results that lets a protocol be checked without importing pint: it is
pint's own (made again here, it equals the stored one), it gives pint's float bit for bit, and
with a table made for another pint every value goes through pint."""

from __future__ import annotations

import random

import pytest

from protocols import si_table
from protocols.units import DIMENSIONS, UnitError, parse_quantity, si_by_pint


def test_the_stored_table_is_what_pint_gives_today():
    made = si_table.build()
    assert si_table.dumps(made) == si_table.TABLE.read_text(encoding="utf-8"), (
        "si_table.json is stale: run"
        ' python -c "from protocols.si_table import write; write()"')
    assert {"degC", "mA * cm ** -2", "mAh * g ** -1", "min", "um", "percent"} <= set(
        made["recipes"])


def test_every_recipe_gives_pints_float_bit_for_bit():
    rng = random.Random(2026)
    values = [rng.uniform(-1e3, 1e3) for _ in range(12)] + [
        rng.choice((-1, 1)) * 10.0 ** rng.uniform(-300, 300) for _ in range(12)]
    recipes = si_table._recipes()
    assert recipes, "the table is not used with the installed pint"
    for expression, by_dimension in recipes.items():
        for dimension, recipe in by_dimension.items():
            for v in values:
                expected = si_by_pint(v, expression, expression, dimension)
                assert repr(si_table.apply(recipe, v)) == repr(expected), (expression, v)


@pytest.mark.parametrize(("text", "dimension"), [
    ("-20 degC", "temperature"), ("0.5 degC", "temperature_difference"), ("300 µm", "length"),
    ("0.35 mA/cm2", "current_density"), ("200 mAh/g", "specific_capacity"), ("80 %", "fraction"),
    ("98.6 degF", "temperature"), ("1 mV/s", "scan_rate"), ("1.5 kOhm", "resistance"),
    ("2 hours", "time"), ("5 minutes", "time"), ("3 days", "time"), ("30 seconds", "time")])
def test_a_value_resolves_as_pint_resolves_it(text, dimension):
    number, unit = text.split(" ", 1)
    assert si_table.resolve(si_table_expression(unit), dimension, float(number)) is not None
    assert repr(parse_quantity(text, dimension)) == repr(
        si_by_pint(float(number), unit.replace("µ", "u"), text, dimension))


def si_table_expression(unit: str) -> str:
    from protocols.units import _normalise, expression_of

    return expression_of(_normalise(unit))


def test_another_pint_version_puts_every_value_through_pint(monkeypatch):
    with monkeypatch.context() as patched:
        patched.setattr(si_table, "pint_version", lambda: "0.0-other")
        si_table._recipes.cache_clear()
        try:
            assert si_table.resolve("mA", "current", 1.0) is None
            assert parse_quantity("5 mA", "current") == 0.005
        finally:
            si_table._recipes.cache_clear()
    assert si_table.resolve("mA", "current", 1.0) == 0.001


@pytest.mark.parametrize(("text", "dimension", "message"), [
    ("10 mA", "voltage", "expected a voltage, got '10 mA' (a current)"),
    ("25 degC", "time", "expected a duration, got '25 degC' (a temperature)"),
    ("1e308 kV", "voltage", "'1e308 kV' is not a finite number (it overflows in SI units)"),
    ("1e-310 mV", "voltage", "'1e-310 mV' is too small to compute with (below 1e-308 in SI"
     " units)"),
])
def test_errors_are_worded_as_before(text, dimension, message):
    assert dimension in DIMENSIONS
    with pytest.raises(UnitError) as caught:
        parse_quantity(text, dimension)
    assert str(caught.value) == message
