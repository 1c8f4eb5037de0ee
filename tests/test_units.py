import math

import pytest

from protocols.units import CRate, UnitError, parse_c_rate, parse_quantity


@pytest.mark.parametrize(("text", "dimension", "expected"), [
    ("300 um", "length", 300e-6),
    ("300 µm", "length", 300e-6),
    ("16 mm", "length", 0.016),
    ("2.01 cm2", "area", 2.01e-4),
    ("2.01 cm^2", "area", 2.01e-4),
    ("3 MHz", "frequency", 3e6),
    ("0.1 Hz", "frequency", 0.1),
    ("10 mV", "voltage", 0.010),
    ("30 min", "time", 1800.0),
    ("1200 h", "time", 1200 * 3600.0),
    ("0.35 mA/cm^2", "current_density", 3.5),
    ("-20 degC", "temperature", 253.15),
    ("25 °C", "temperature", 298.15),
    ("0.5 K", "temperature_difference", 0.5),
    ("0.5 degC", "temperature_difference", 0.5),
    ("1.9 mg/cm^2", "areal_mass", 0.019),
    ("200 mAh/g", "specific_capacity", 720000.0),
    ("10 Ohm", "resistance", 10.0),
    ("1.5 kOhm", "resistance", 1500.0),
    ("1e-3 A", "current", 1e-3),
])
def test_values_resolve_to_si(text, dimension, expected):
    assert parse_quantity(text, dimension) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(("text", "dimension", "match"), [
    ("10 mA", "voltage", r"^expected a voltage, got '10 mA' \(a current\)$"),
    ("nan mV", "voltage", r"not a finite number"),
    ("inf s", "time", r"not a finite number"),
    ("10", "voltage", r"written with its unit"),
    ("10 parsecs per fortnight", "frequency", r"expected a frequency"),
    ("10 blorbs", "time", r"unknown unit 'blorbs'"),
    ("0.1C", "time", r"got the C-rate"),
])
def test_bad_values_are_refused_with_the_rule(text, dimension, match):
    with pytest.raises(UnitError, match=match):
        parse_quantity(text, dimension)


def test_numbers_without_units_are_refused():
    with pytest.raises(UnitError, match="written with its unit"):
        parse_quantity(10.0, "time")


@pytest.mark.parametrize(("text", "rate"), [("0.1C", 0.1), ("2 C", 2.0), ("C/10", 0.1),
                                            ("C / 50", 0.02), ("40C", 40.0)])
def test_c_rates_are_their_own_kind(text, rate):
    parsed = parse_c_rate(text)
    assert isinstance(parsed, CRate)
    assert math.isclose(parsed.rate, rate)


def test_coulombs_are_not_c_rates():
    assert parse_c_rate("10 mC") is None
