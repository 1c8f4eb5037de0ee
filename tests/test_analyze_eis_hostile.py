"""`cellseq analyze eis` on hostile numbers and awkward files: a clear refusal (exit 2) or a
correct reading with a note, never a traceback, a silent wrong number or an exhausted machine."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from analysis import eis_fit
from analysis.eis import bulk_resistance, conductivity_S_per_m
from analysis.errors import AnalysisError
from analysis.spectrum_files import MAX_POINTS, Spectrum, read_spectrum
from sequencer.cli import app

from .test_analysis_spectrum_files import FREQ, Z, assert_round_trip, mpt_lines

runner = CliRunner()


def analyze(*args: object):
    return runner.invoke(app, ["analyze", "eis", *(str(a) for a in args)])


def csv(tmp_path, rows: list[tuple[float, float, float]], name: str = "s.csv"):
    path = tmp_path / name
    path.write_text("frequency,z_real,z_imag\n" + "".join(f"{f!r},{r!r},{i!r}\n"
                                                          for f, r, i in rows))
    return path


GOOD = [(float(f), float(z.real), float(z.imag)) for f, z in zip(FREQ, Z, strict=True)]


@pytest.mark.parametrize(("rows", "message"), [
    ([(1e5, 0.0, 0.0), (1e4, 0.0, 0.0), (1e3, 0.0, 0.0)],
     "every impedance is zero; nothing was measured"),
    ([(1e5, 1e-320, -1e-320), (1e4, 1e-320, -1e-320), (1e3, 1e-320, -1e-320)],
     "line 2: '1e-320' in column 'z_real' is too small to be a measured value"),
    ([(1e5, 100.0, -5e-324), (1e4, 100.0, -1.0), (1e3, 100.0, -2.0)],
     "line 2: '-5e-324' in column 'z_imag' is too small to be a measured value"),
    ([(1e-320, 100.0, -1.0), (2e-320, 100.0, -1.0), (3e-320, 100.0, -1.0)],
     "line 2: '1e-320' in column 'frequency' is too small"),
])
def test_zero_and_subnormal_spectra_are_refused(tmp_path, rows, message):
    path = csv(tmp_path, rows)
    result = analyze(path, "--thickness", "300um", "--diameter", "16mm")
    assert result.exit_code == 2, result.output
    assert f"{path}: {message}" in result.output
    assert "Traceback" not in result.output


def test_a_spectrum_whose_intercept_is_not_positive_gives_no_conductivity(tmp_path):
    path = csv(tmp_path, [(1e5, -5.0, -1.0), (1e4, -4.0, -2.0), (1e3, -3.0, -3.0)])
    result = analyze(path, "--thickness", "300um", "--diameter", "16mm", "--no-fit")
    assert result.exit_code == 2
    assert "the high-frequency intercept is -5 Ohm; a conductivity needs a positive" in \
        result.output


def test_arrays_with_subnormal_numbers_are_refused():
    with pytest.raises(AnalysisError, match="subnormal"):
        Spectrum(FREQ[:3], [1.0, 2.0, 5e-324], [-1.0, -1.0, -1.0])


def test_conductivity_refuses_what_underflows_or_overflows():
    with pytest.raises(AnalysisError, match="is not a finite positive conductivity"):
        conductivity_S_per_m(1e-320, 300e-6, 2e-4)
    with pytest.raises(AnalysisError, match="is not a finite positive conductivity"):
        conductivity_S_per_m(1e-300, 1e300, 1e-300)


def test_an_intercept_that_overflows_is_refused():
    with pytest.raises(AnalysisError, match="intercept is not a finite number"):
        bulk_resistance([3.0, 2.0, 1.0], [1e308, -1e308, 1e308], [1e308, -1e308, -1e308])


def test_more_rows_than_a_spectrum_has_are_refused_before_parsing(tmp_path):
    path = tmp_path / "long.csv"
    lines = "".join(f"{1e6 / (k + 1)!r},100.0,-1.0\n" for k in range(MAX_POINTS + 1))
    path.write_text("frequency,z_real,z_imag\n" + lines)
    message = f"{path}: 100,001 data lines; a spectrum file has at most 100,000 points"
    with pytest.raises(AnalysisError, match=r"100,001 data lines"):
        read_spectrum(path)
    assert message in analyze(path, "--thickness", "300um", "--diameter", "16mm").output


def test_a_million_points_are_thinned_for_the_fit_in_log_frequency():
    freq = np.logspace(7, -2, 1_000_000)
    z = (100.0 - 1j / freq).astype(np.complex128)
    thin_f, thin_z, note = eis_fit._thin(freq, z)
    assert thin_f.size <= eis_fit.MAX_FIT_POINTS and thin_f[0] == freq[0]
    assert thin_f[-1] == freq[-1]
    steps = np.diff(np.log10(thin_f))
    assert np.allclose(steps, steps[0], rtol=0.01)       # evenly spread in log f
    assert note == (f"the fit used {thin_f.size} of the 1000000 points, spread evenly in log"
                    " frequency (a fit takes at most 300); the intercept used every point")
    assert np.array_equal(thin_z, z[np.searchsorted(-freq, -thin_f)])


def test_a_thinned_fit_says_so_in_its_notes(monkeypatch):
    monkeypatch.setattr(eis_fit, "MAX_FIT_POINTS", 10)
    freq = np.logspace(6, 0, 40)
    z = 100 + 1 / (1e-6 * (2j * np.pi * freq) ** 0.9)
    result = eis_fit.fit_bulk_resistance(Spectrum(freq, z.real, z.imag), "R0-CPE1")
    assert result.notes[0].startswith("the fit used 10 of the 40 points")
    assert result.r_bulk_ohm == pytest.approx(100, rel=1e-6)


@pytest.mark.parametrize(("flag", "value", "message"), [
    ("--thickness", "3(00um", "--thickness: unknown unit '(00um' in '3 (00um': '(' cannot"),
    ("--thickness", "C/0", "--thickness: expected a length, got the C-rate 'C/0'"),
    ("--thickness", "300um)", "--thickness: unknown unit 'um)'"),
    ("--thickness", "-300um", "--thickness must be positive, got '-300um'"),
    ("--diameter", "-16mm", "--diameter must be positive, got '-16mm'"),
    ("--diameter", "0mm", "--diameter must be positive, got '0mm'"),
    ("--area", "-2cm2", "--area must be positive, got '-2cm2'"),
    ("--f-min", "1/0 Hz", "--f-min: "),
])
def test_bad_geometry_and_window_arguments_exit_2(tmp_path, flag, value, message):
    path = csv(tmp_path, GOOD)
    geometry = {"--thickness": "300um", "--diameter": "16mm"}
    if flag == "--area":
        geometry.pop("--diameter")
    geometry[flag] = value
    result = analyze(path, *(x for kv in geometry.items() for x in kv), "--no-fit"
                     if flag != "--f-min" else "--fit")
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


# --- EC-Lab .mpt: decimal commas, latin-1, preambles that do not say where the header is -------

def write(tmp_path, lines: list[str], newline: str = "\n", name: str = "eis.mpt"):
    path = tmp_path / name
    path.write_bytes((newline.join(lines) + newline).encode("latin-1"))
    return path


def edited(index: int, text: str, insert: bool = False) -> list[str]:
    lines = mpt_lines(comma=True)
    if insert:
        lines.insert(index, text)
    else:
        lines[index] = text
    return lines


@pytest.mark.parametrize(("lines", "newline", "note"), [
    (mpt_lines(comma=True), "\r\r\n", "the column names are on line 17"),   # doubled line ends
    (edited(1, "Nb header lines : 10"), "\n", "the column names are on line 9"),
    (edited(1, "Nb header lines : 8"), "\n", "the column names are on line 9"),
    (edited(2, "Nb header lines (edited) : 10", insert=True), "\n",
     "the column names are on line 10"),
    (edited(6, "Comments : \x8d\x85 r\x0cunning"), "\n", None),   # NEL and form feed in a comment
])
def test_a_decimal_comma_latin1_mpt_with_an_unusual_header_is_read(tmp_path, lines, newline,
                                                                    note):
    spectrum = read_spectrum(write(tmp_path, lines, newline))
    assert_round_trip(spectrum)
    assert "decimal commas" in spectrum.notes
    preamble = [n for n in spectrum.notes if n.startswith("the preamble says")]
    assert [note in n for n in preamble] == ([True] if note else [])


@pytest.mark.parametrize("count", ["-3", "0", "+0"])
def test_a_preamble_with_no_header_lines_is_refused(tmp_path, count):
    path = write(tmp_path, edited(1, f"Nb header lines : {count}"))
    with pytest.raises(AnalysisError, match=rf"says {int(count)} header lines; it must be at"
                                            " least 1"):
        read_spectrum(path)


def test_a_preamble_pointing_nowhere_is_refused_naming_both(tmp_path):
    lines = [line for line in mpt_lines(comma=True) if not line.startswith("freq/Hz\t")]
    with pytest.raises(AnalysisError, match=r"says 9 header lines, but line 9 does not name the"
                                            r" frequency, Re Z and Im Z columns"):
        read_spectrum(write(tmp_path, lines))


def test_the_conductivity_of_a_good_file_is_what_the_functions_give(tmp_path):
    result = analyze(csv(tmp_path, GOOD), "--thickness", "300um", "--diameter", "16mm",
                     "--no-fit")
    assert result.exit_code == 0, result.output
    [out] = json.loads(result.output)["spectra"]
    r_b = bulk_resistance(FREQ, Z.real, Z.imag)
    area = math.pi * 0.008**2
    assert out["bulk_resistance_ohm"] == pytest.approx(r_b, rel=1e-12)
    assert out["ionic_conductivity_mS_cm"] == pytest.approx(
        10 * conductivity_S_per_m(r_b, 300e-6, area), rel=1e-12)
