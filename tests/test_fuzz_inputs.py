"""Property tests over what users hand cellseq: the value parser, protocol files with includes,
and the spectrum files of `analyze eis`. Whatever the input, the answer is a value or the one
error type of that input (UnitError, ProtocolError naming the place, AnalysisError naming the
file), in bounded time; never another exception.

Fast enough for the default suite; ``benchmarks/fuzz_inputs.py`` runs the same strategies for
a long time.
"""

from __future__ import annotations

import math
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analysis.eis import bulk_resistance, conductivity_S_per_m
from analysis.errors import AnalysisError
from analysis.spectrum_files import read_spectrum
from protocols import ProtocolError, load_campaign
from protocols.steps import parse_pybamm
from protocols.types import _current_setpoint
from protocols.units import DIMENSIONS, UnitError, parse_c_rate, parse_quantity

FAST = settings(max_examples=150, deadline=2000, database=None,
                suppress_health_check=[HealthCheck.too_slow])

# --- the value parser ----------------------------------------------------------------------------

NUMBERS = ["1", "0", "-0", "10", ".5", "1.", "-20", "1e3", "1e999", "1e-320", "9" * 30,
           "\uff11", "\u0661", "nan", "inf", "1_0", "0x1", "+-1", "", "C/", "C/0", "0.1C"]
TOKENS = ["mA", "cm", "s", "h", "hour", "min", "degC", "\u00b0C", "K", "%", "Ohm", "\u03a9", "C",
          "V", "Hz", "g", "mAh", "um", "\u00b5m", "nan", "inf", "pi", "e", "per", "foo", "cm2",
          "\u00b2", " ", "*", "**", "/", "^", "^-1", "^2", "^9", "**9", "(", ")", "0", "1", "-",
          ".", ",", "\u00a0", "\t", "\n", "\x00", "'", "\\"]

UNITS = ["mA", "uA/cm^2", "mA/cm2", "s", "min", "h", "day", "degC", "K", "mV", "V/s", "mV/s",
         "MHz", "Hz", "um", "mm", "cm^2", "mg/cm^2", "mAh/g", "Ohm", "kOhm", "%", "K/min", "C"]
values = st.one_of(
    st.text(max_size=40),
    st.builds(lambda n, ts: n + "".join(ts), st.sampled_from(NUMBERS),
              st.lists(st.sampled_from(TOKENS), max_size=12)),
    st.builds(lambda x, sep, u: f"{x!r}{sep}{u}", st.floats(allow_nan=True),
              st.sampled_from(["", " ", "  ", "\t"]), st.sampled_from(UNITS)),
)
pybamm_strings = st.one_of(
    st.text(max_size=60),
    st.builds(lambda v, cs: v + "".join(cs), st.sampled_from(["Charge", "Discharge", "Rest",
                                                               "Hold", "charge", "jump", ""]),
              st.lists(st.sampled_from([" at ", " for ", " until ", " or ", " (", " period)",
                                        "C/0", "C/10", "1 hour", "4.2 V", "0.5 mA", "2 W",
                                        "1 (s", "1e999 s", ")", "(", "  "]), max_size=10)),
)


@FAST
@given(text=values, dimension=st.sampled_from(sorted(DIMENSIONS)))
def test_a_value_is_a_finite_si_float_or_a_unit_error(text, dimension):
    try:
        value = parse_quantity(text, dimension)
    except UnitError as exc:
        assert str(exc)
        return
    assert math.isfinite(value)
    assert value == 0 or abs(value) >= sys.float_info.min
    assert text.isascii() or not any(c.isdecimal() and not c.isascii() for c in text)


@FAST
@given(text=values)
def test_a_current_is_a_setpoint_or_a_unit_error(text):
    try:
        setpoint = _current_setpoint(text)
    except UnitError:
        return
    assert math.isfinite(setpoint.value) and setpoint.value > 0
    rate = parse_c_rate(text) if setpoint.kind == "c_rate" else None
    assert setpoint.kind != "c_rate" or (rate is not None and rate.rate == setpoint.value)


@FAST
@given(text=pybamm_strings)
def test_a_pybamm_string_is_a_step_mapping_or_a_value_error(text):
    try:
        step = parse_pybamm(text)
    except ValueError as exc:
        assert str(exc)
        return
    assert step["kind"] in ("rest", "constant_current", "constant_voltage")


# --- protocol files with includes ----------------------------------------------------------------

CELL = ("  - {{id: {id}, kind: blocking, electrolyte: AIOSE, thickness: 300 um,"
        " diameter: 16 mm}}\n")
EXPERIMENT = "  - name: {name}\n    cells: [b1]\n    steps: ['Rest for 1 minute']\n"
#: The sentinel outside the protocol's folder: its cell must never join a campaign.
OUTSIDE = "campaign: o\ncells:\n" + CELL.format(id="stolen")
NAMES = ["a.yaml", "sub/b.yaml", "sub/deep/c.yaml", "a.yaml", "sub/b.yaml", "missing.yaml",
         "sub", "../outside.yaml", "sub/../a.yaml", "{outside}", "a.yaml/", "", "\x00",
         "top.yaml", "./a.yaml", "sub//b.yaml"]
JUNK = st.one_of(st.sampled_from(["", "{", "[1, 2]", "campaign: [\n", "campaign: x\nbogus: 1\n",
                                  "campaign: x\ncells: [{id: b1}]\n"]), st.text(max_size=60))


@st.composite
def trees(draw) -> dict[str, str]:
    """Four files, the top one a valid campaign of its own that includes others; each other
    file holds a cell, an experiment, more includes, or junk."""
    files: dict[str, str] = {}
    for name in ("top.yaml", "a.yaml", "sub/b.yaml", "sub/deep/c.yaml"):
        tag = name.replace("/", "-").removesuffix(".yaml")
        includes = draw(st.lists(st.sampled_from(NAMES), max_size=3))
        listed = "include: [" + ", ".join(f'"{ref}"' for ref in includes) + "]\n"
        if name == "top.yaml":
            files[name] = (f"campaign: top\n{listed}cells:\n{CELL.format(id='b1')}"
                           f"experiments:\n{EXPERIMENT.format(name='e-top')}")
            continue
        kind = draw(st.sampled_from(["cell", "experiment", "includes", "junk"]))
        if kind == "junk":
            files[name] = draw(JUNK)
        else:
            body = f"campaign: {tag}\n" + (listed if kind == "includes" else "")
            if kind == "cell":
                body += "cells:\n" + CELL.format(id=f"b-{tag}")
            elif kind == "experiment":
                body += "experiments:\n" + EXPERIMENT.format(name=f"e-{tag}")
            files[name] = body
    return files


def _placed(problem, top: str) -> bool:
    if problem.file == top:
        return not problem.via
    return bool(problem.via) and problem.via[0].startswith(f"{top}:")


@settings(max_examples=100, deadline=5000, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(files=trees(), allow=st.booleans())
def test_a_campaign_with_includes_loads_or_names_every_problem_from_the_top_file(files, allow):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "outside.yaml").write_text(OUTSIDE, encoding="utf-8")
        folder = root / "protocol"
        for name, body in files.items():
            body = body.replace("{outside}", str(root / "outside.yaml"))
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(body, encoding="utf-8")
        try:
            campaign = load_campaign(folder / "top.yaml", allow_outside_includes=allow)
        except ProtocolError as exc:
            assert exc.problems
            for problem in exc.problems:
                assert problem.message and _placed(problem, "top.yaml"), problem
            return
        assert allow or "stolen" not in {c.id for c in campaign.cells}
        assert [f.name for f in campaign.files] == campaign.sources


# --- spectrum files ------------------------------------------------------------------------------

HEADERS = ["freq/Hz", "Re(Z)/Ohm", "-Im(Z)/Ohm", "|Z|/Ohm", "frequency", "z_real", "z_imag",
           "Z'", "Z''", "Im", "Freq(kHz)", "Re(Z)/Ohm.cm2", "", "x"]
HOSTILE = ["0", "1,5", "-2,25E+03", "1e-320", "5e-324", "1e308", "-1e308", "nan", "inf", "",
           "abc", '"3"', "1.5.5", "\uff11"]
SEPARATORS = ["\t", ",", ";", " ", "  "]
numbers = st.one_of(st.floats(1e-3, 1e7).map(repr), st.floats(1e-3, 1e7).map(repr),
                    st.floats(-1e6, 1e6).map(repr))


@st.composite
def spectrum_texts(draw) -> bytes:
    """A table of three to six columns under a header naming frequency, Re Z and Im Z among
    others (or no header), mostly numbers with a hostile cell here and there, behind an optional
    EC-Lab preamble whose header-line count may be wrong."""
    sep = draw(st.sampled_from(SEPARATORS))
    width = draw(st.integers(3, 6))
    lines = []
    if draw(st.booleans()):
        lines += ["EC-Lab ASCII FILE", "Nb header lines : {count}"]
        lines += draw(st.lists(st.text(alphabet="abc :\t\u00b5\u00b0", max_size=20), max_size=4))
    if draw(st.integers(0, 4)):
        names = draw(st.permutations(["freq/Hz", "Re(Z)/Ohm", "-Im(Z)/Ohm"]))
        extra = draw(st.lists(st.sampled_from(HEADERS), min_size=width - 3, max_size=width - 3))
        lines.append(sep.join([*names, *extra]))
    header_line = len(lines)   # the header's line number, counted from 1
    for _ in range(draw(st.one_of(st.integers(3, 12), st.integers(0, 3)))):
        row = [draw(numbers) if draw(st.integers(0, 30)) else draw(st.sampled_from(HOSTILE))
               for _ in range(width)]
        lines.append(sep.join(row))
    count = header_line + draw(st.sampled_from([0] * 6 + [-1, 1, -header_line - 2, 50]))
    lines = [line.replace("{count}", str(count)) for line in lines]
    newline = draw(st.sampled_from(["\n", "\r\n", "\r", "\r\r\n", "\x85"]))
    encoding = draw(st.sampled_from(["utf-8", "latin-1", "utf-16"]))
    return newline.join(lines).encode(encoding, errors="replace")


@settings(max_examples=150, deadline=5000, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(raw=st.one_of(spectrum_texts(), st.binary(max_size=400)))
def test_a_spectrum_file_reads_or_is_refused_naming_the_file(tmp_path, raw):
    path = tmp_path / "s.mpt"
    path.write_bytes(raw)
    try:
        spectrum = read_spectrum(path)
        r_b = bulk_resistance(spectrum.frequency_Hz, spectrum.z_real_ohm, spectrum.z_imag_ohm)
        sigma = conductivity_S_per_m(r_b, 300e-6, 2e-4) if r_b > 0 else None
    except AnalysisError as exc:
        assert str(exc)
        return
    assert math.isfinite(r_b)
    assert sigma is None or (math.isfinite(sigma) and sigma > 0)


@pytest.mark.parametrize("text", ["1 s" + "**9" * 50, "C/" + "0" * 90, "1 " + "(" * 90])
def test_long_hostile_values_answer_at_once(text):
    with pytest.raises(UnitError):
        parse_quantity(text, "time")
