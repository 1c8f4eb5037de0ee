import math
import subprocess
import sys

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
    ("10 metres per week", "frequency", r"expected a frequency"),
    ("10 blorbs", "time", r"unknown unit 'blorbs'"),
    ("10 parsecs", "length", r"unknown unit 'parsecs'"),   # pint's, not a lab's
    ("0.1C", "time", r"got the C-rate"),
    # a lab's "25 C" for 25 degrees Celsius: the rule, and how to write it
    ("25 C", "temperature", r"^expected a temperature, got the C-rate '25 C' \(degrees Celsius"
     r" are written degC: '25 degC'\)$"),
    ("C/10", "temperature", r"^expected a temperature, got the C-rate 'C/10'$"),
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


# --- the grammar: what cannot divide by zero, recurse or run for ever --------------------------

@pytest.mark.parametrize(("text", "dimension", "expected"), [
    ("1 degC/min", "temperature_rate", 1 / 60),
    ("5 mA h/g", "specific_capacity", 18000.0),
    ("5 mA*h/g", "specific_capacity", 18000.0),
    ("2 cm²", "area", 2e-4),
    ("1 Ω", "resistance", 1.0),
    ("0.35 mA per cm^2", "current_density", 3.5),
    ("0.35 mA/cm**2", "current_density", 3.5),
    ("10\u00a0mV", "voltage", 0.010),
    ("1 hour", "time", 3600.0),
    ("30 second", "time", 30.0),
])
def test_the_grammar_reads_what_labs_write(text, dimension, expected):
    assert parse_quantity(text, dimension) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(("text", "match"), [
    ("1 1/0", r"^unknown unit '1/0' in '1 1/0': '1' cannot appear in a unit \(a number belongs"),
    ("1 mA/0", r"'0' cannot appear in a unit"),
    ("1 0**-1", r"'0' cannot appear in a unit"),
    ("1 mA)", r"'\)' cannot appear in a unit"),
    ("1 (mA", r"'\(' cannot appear in a unit"),
    ("1 m**9**9**9", r"powers of a unit go from -4 to 4, not 9"),
    ("1 m^2^3", r"a unit name takes one power"),
    ("1 m^", r"a power is an integer"),
    ("1 mA/", r"it ends with an operator"),
    ("1 /mA", r"'/' needs a unit name before it"),
    ("1 m m m m m m m", r"at most 6 factors"),
    ("\uff11\uff10 mA", r"write numbers with the digits 0-9"),
    ("\u0661 mA", r"write numbers with the digits 0-9"),
    ("1e400 mA", r"not a finite number"),
    ("1e-320 mA", r"too small to compute with"),
    ("1" * 101 + " mA", r"too long \(the limit is 100\)"),
    ("1 nan", r"^unknown unit 'nan' in '1 nan'$"),
])
def test_hostile_values_are_unit_errors(text, match):
    with pytest.raises(UnitError, match=match):
        parse_quantity(text, "current")


def test_a_tower_of_powers_is_refused_at_once():
    """pint itself would evaluate 9**9**9 (no answer in a minute); the grammar never gets there."""
    with pytest.raises(UnitError, match="powers of a unit"):
        parse_quantity("1 s**9**9**9**9", "time")


@pytest.mark.parametrize("text", ["C/0", "C/-2", "C/0.0", "C/1e-320", "0C", "1e-320C", "C/1e999"])
def test_c_rates_that_divide_by_zero_or_vanish_are_refused(text):
    with pytest.raises(UnitError, match=r"^a C-rate must be a positive finite number"):
        parse_c_rate(text)


def test_a_c_rate_is_not_a_length_even_when_broken():
    with pytest.raises(UnitError, match=r"^expected a length, got the C-rate 'C/0'$"):
        parse_quantity("C/0", "length")


def test_full_width_digits_are_not_a_c_rate():
    assert parse_c_rate("\uff11C") is None


def test_every_unit_cellseq_reads_means_what_it_means_in_pint():
    """cellseq's definitions (protocols/units.txt) are pint's, fewer: each name, with a
    prefix too, has the SI value and the dimension pint's own registry gives it."""
    import pint

    from protocols.units import registry

    ours, theirs = registry(), pint.UnitRegistry(autoconvert_offset_to_baseunit=True)
    theirs.define("Ohm = ohm")
    names = list(ours._units)
    assert {"volt", "ampere_hour", "degree_Celsius", "molar", "electron_volt"} <= set(names)
    for name in [*names, "mV", "uA", "kOhm", "mAh", "mWh", "MHz", "um", "mg", "mM", "meV",
                 "mS", "uF", "kPa", "ms", "ns"]:
        got, expected = ours.Quantity(1.0, name), theirs.Quantity(1.0, name)
        assert got.dimensionality == expected.dimensionality, name
        # offset units compared as temperatures; the others in SI base units
        convert = (lambda q: q.to("kelvin")) if got.dimensionality == {"[temperature]": 1} \
            else (lambda q: q.to_base_units())
        assert convert(got).magnitude == pytest.approx(convert(expected).magnitude,
                                                       rel=1e-12), name


@pytest.mark.parametrize("plural", ["kilograms", "kgs"])
def test_kilograms_written_first_leave_every_later_mass_right(plural):
    """kilogram is a base unit that reads as kilo + gram: pint, finding a plural of it by
    itself, defined kilogram again as 1e3 gram (gram being 1e-3 kilogram) and looped for ever
    on that value and every later one in kg. In a fresh process, since the registry is one per
    process."""
    code = (
        "from protocols.units import parse_quantity\n"
        f"print(parse_quantity('2 {plural}/m^2', 'areal_mass'))\n"
        "print(parse_quantity('2 kg/cm^2', 'areal_mass'))\n"
        "print(parse_quantity('3 mg/cm^2', 'areal_mass'))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert [float(line) for line in done.stdout.split()] == [2.0, 20000.0, 0.03]
    assert "multiple results" not in done.stderr
