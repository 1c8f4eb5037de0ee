"""Reading impedance spectra in the dialects people export: each one round-trips a known spectrum.

The synthetic files are written here in each dialect (EC-Lab text and .mpt, ZView, plain CSV,
impedance.py's headerless CSV) with both sign conventions, decimal commas and latin-1; the vendored
real files in tests/data are read as well. Bad files must raise AnalysisError naming the file.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from analysis.errors import AnalysisError
from analysis.spectrum_files import Spectrum, read_spectrum

DATA = Path(__file__).resolve().parent / "data"

# A blocking cell from physics.md: R_b || C_geo (apex far above the window), then CPE_dl,
# with a cable inductance so that the top points are inductive (Im Z > 0).
R_B, C_GEO, Q_DL, N_DL, L_CABLE = 25.72, 50e-12, 5e-6, 0.85, 0.3e-6
FREQ = np.logspace(math.log10(3e6), -1, 31)


def known_impedance(freq: np.ndarray = FREQ) -> np.ndarray:
    omega = 2 * np.pi * freq
    bulk = R_B / (1 + 1j * omega * R_B * C_GEO)
    return 1j * omega * L_CABLE + bulk + 1 / (Q_DL * (1j * omega) ** N_DL)


Z = known_impedance()


def assert_round_trip(spectrum: Spectrum, scale_f: float = 1.0, scale_z: float = 1.0) -> None:
    assert len(spectrum) == FREQ.size
    np.testing.assert_allclose(spectrum.frequency_Hz * scale_f, FREQ, rtol=1e-6)
    np.testing.assert_allclose(spectrum.z_real_ohm * scale_z, Z.real, rtol=1e-6)
    np.testing.assert_allclose(spectrum.z_imag_ohm * scale_z, Z.imag, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(spectrum.impedance_ohm, Z / scale_z, rtol=1e-6, atol=1e-9)


def rows(*columns: np.ndarray, fmt: str = "{:.9E}", sep: str = ",", end: str = "") -> list[str]:
    return [sep.join(fmt.format(v) for v in values) + end for values in zip(*columns, strict=True)]


def decimal_comma(line: str) -> str:
    return line.replace(".", ",")


@pytest.fixture
def write(tmp_path: Path) -> Callable[..., Path]:
    def write(name: str, lines: list[str], encoding: str = "utf-8", newline: str = "\n") -> Path:
        path = tmp_path / name
        path.write_bytes((newline.join(lines) + newline).encode(encoding))
        return path

    return write


# --- EC-Lab --------------------------------------------------------------------------------------

EC_LAB_COLUMNS = ["freq/Hz", "Re(Z)/Ohm", "-Im(Z)/Ohm", "|Z|/Ohm", "Phase(Z)/deg", "Cs/\u00b5F"]


def ec_lab_rows(sep: str, end: str = "") -> list[str]:
    return rows(
        FREQ,
        Z.real,
        -Z.imag,
        np.abs(Z),
        np.degrees(np.angle(Z)),
        np.full(FREQ.size, 12.5),
        fmt="{:.9E}",
        sep=sep,
        end=end,
    )


def mpt_lines(comma: bool = False) -> list[str]:
    preamble = [
        "EC-Lab ASCII FILE",
        "Nb header lines : 9                          ",
        "",
        "Potentio Electrochemical Impedance Spectroscopy",
        "",
        "Electrode surface area : 2.011 cm\u00b2",
        "Comments : 25 \u00b0C, AIOSE, \u00b5-thick",
        "freq/Hz  Re(Z)/Ohm  (a line that merely looks like a header, inside the preamble)",
    ]
    header = "\t".join(EC_LAB_COLUMNS) + "\t"
    data = ec_lab_rows("\t", end="\t")
    if comma:
        data = [decimal_comma(line) for line in data]
    return [*preamble, header, *data]


def test_ec_lab_tab_export(write):
    lines = ["\t".join(EC_LAB_COLUMNS) + "\t", *ec_lab_rows("\t", end="\t")]
    spectrum = read_spectrum(write("eis.txt", lines))
    assert_round_trip(spectrum)
    assert any("-Im(Z)/Ohm" in note and "by its name" in note for note in spectrum.notes)


def test_ec_lab_comma_export_with_windows_line_ends(write):
    lines = [",".join(EC_LAB_COLUMNS), *ec_lab_rows(",")]
    assert_round_trip(read_spectrum(write("eis.csv", lines, newline="\r\n")))


def test_ec_lab_semicolon_export_with_decimal_commas(write):
    lines = [";".join(EC_LAB_COLUMNS), *(decimal_comma(line) for line in ec_lab_rows(";"))]
    spectrum = read_spectrum(write("eis.csv", lines, encoding="cp1252"))
    assert_round_trip(spectrum)
    assert "decimal commas" in spectrum.notes


@pytest.mark.parametrize("encoding", ["latin-1", "cp1252", "utf-8", "utf-8-sig", "utf-16"])
def test_ec_lab_mpt_with_preamble(write, encoding):
    assert_round_trip(read_spectrum(write("eis.mpt", mpt_lines(), encoding=encoding)))


def test_ec_lab_mpt_latin1_with_decimal_commas(write):
    path = write("eis_de.mpt", mpt_lines(comma=True), encoding="latin-1")
    assert b"\xb5F" in path.read_bytes()  # really latin-1, not UTF-8
    assert_round_trip(read_spectrum(path))


# --- ZView ---------------------------------------------------------------------------------------


def test_zview_columns_with_signed_z_double_prime(write):
    lines = ["Freq(Hz)\tZ'(a)\tZ''(b)", *rows(FREQ, Z.real, Z.imag, sep="\t")]
    spectrum = read_spectrum(write("zview.txt", lines))
    assert_round_trip(spectrum)
    assert any("read as Im Z" in note for note in spectrum.notes)


def test_zview_z_double_prime_holding_minus_im_is_decided_by_the_data(write):
    # "Z''" is written with either sign in the wild; mostly positive values mean -Im Z.
    lines = ["Freq(Hz),Z'(a),Z''(b)", *rows(FREQ, Z.real, -Z.imag)]
    spectrum = read_spectrum(write("zview.csv", lines))
    assert_round_trip(spectrum)
    assert any("read as -Im Z" in note for note in spectrum.notes)


@pytest.mark.parametrize("name", ["-Z''", '-Z"', "-Z'' (Ohm)", "\u2212Z\u2033 / Ohm", "-Zimag"])
def test_minus_signed_names_are_negated(write, name):
    lines = [f"Frequency (Hz),Z' (Ohm),{name}", *rows(FREQ, Z.real, -Z.imag)]
    assert_round_trip(read_spectrum(write("neg.csv", lines)))


def test_whitespace_separated_zview(write):
    lines = ["Freq(Hz)   Z'(a)   Z''(b)", *rows(FREQ, Z.real, Z.imag, sep="   ")]
    assert_round_trip(read_spectrum(write("zview.dat", lines)))


# --- plain CSV -----------------------------------------------------------------------------------


def test_plain_frequency_z_real_z_imag(write):
    lines = ["frequency,z_real,z_imag", *rows(FREQ, Z.real, Z.imag)]
    assert_round_trip(read_spectrum(write("plain.csv", lines)))


def test_explicit_im_name_is_trusted_even_if_mostly_positive(write):
    # An explicit "Im(Z)" / "z_imag" is taken at its word; only ambiguous columns are guessed.
    lines = ["frequency,z_real,z_imag", *rows(FREQ, Z.real, -Z.imag)]
    spectrum = read_spectrum(write("inductive.csv", lines))
    np.testing.assert_allclose(spectrum.z_imag_ohm, -Z.imag, rtol=1e-6, atol=1e-9)


def test_this_projects_own_column_names_with_units(write):
    lines = ["frequency_Hz,z_real_ohm,z_imag_ohm", *rows(FREQ, Z.real, Z.imag)]
    assert_round_trip(read_spectrum(write("export.csv", lines)))


def test_unit_prefixes_are_scaled(write):
    lines = [
        "Frequency (kHz),Z' (kOhm),Im(Z) [kOhm]",
        *rows(FREQ / 1e3, Z.real / 1e3, Z.imag / 1e3),
    ]
    assert_round_trip(read_spectrum(write("kilo.csv", lines)))


def test_header_after_free_text_lines(write):
    lines = ["Cell 7, AIOSE, 25 degC", "operator: someone", "", "Freq/Hz,Re/Ohm,Im/Ohm"]
    lines += rows(FREQ, Z.real, Z.imag)
    assert_round_trip(read_spectrum(write("notes.csv", lines)))


def test_extra_columns_and_column_order_do_not_matter(write):
    lines = ["time/s,-Im(Z)/Ohm,cycle,Re(Z)/Ohm,freq/Hz"]
    lines += rows(np.arange(FREQ.size), -Z.imag, np.ones(FREQ.size), Z.real, FREQ)
    assert_round_trip(read_spectrum(write("shuffled.csv", lines)))


# --- impedance.py headerless CSV -----------------------------------------------------------------


def test_headerless_three_columns_im(write):
    spectrum = read_spectrum(write("headerless.csv", rows(FREQ, Z.real, Z.imag)))
    assert_round_trip(spectrum)
    assert any("no header" in note for note in spectrum.notes)


def test_headerless_three_columns_minus_im_is_negated_by_the_data(write):
    assert_round_trip(read_spectrum(write("headerless.csv", rows(FREQ, Z.real, -Z.imag))))


def test_headerless_whitespace_with_decimal_commas(write):
    lines = [decimal_comma(line) for line in rows(FREQ, Z.real, -Z.imag, sep="\t")]
    assert_round_trip(read_spectrum(write("headerless.txt", lines, encoding="latin-1")))


def test_imag_convention_overrides_the_guess(write):
    path = write("headerless.csv", rows(FREQ, Z.real, -Z.imag))
    spectrum = read_spectrum(path, imag_convention="im")
    np.testing.assert_allclose(spectrum.z_imag_ohm, -Z.imag, rtol=1e-6, atol=1e-9)
    assert_round_trip(read_spectrum(path, imag_convention="minus_im"))


# --- the vendored real spectra -------------------------------------------------------------------


def test_real_impedance_py_example_csv():
    spectrum = read_spectrum(DATA / "impedance_py" / "exampleData.csv")
    assert len(spectrum) == 66
    # 9 inductive points at the top, 57 capacitive: read as Im Z, as impedance.py does
    assert np.count_nonzero(spectrum.z_imag_ohm > 0) == 9
    assert spectrum.frequency_Hz[0] == pytest.approx(3.1623e-3)
    assert spectrum.z_real_ohm[0] == pytest.approx(4.949989776405060160e-02)
    assert spectrum.z_imag_ohm[0] == pytest.approx(-2.043869854441892481e-02)


def test_real_biologic_mpt():
    path = DATA / "impedance_py" / "exampleDataBioLogic.mpt"
    with pytest.raises(UnicodeDecodeError):
        path.read_bytes().decode("utf-8")  # the real thing is Windows-1252
    spectrum = read_spectrum(path)
    assert len(spectrum) == 43
    assert spectrum.frequency_Hz[0] == pytest.approx(1.0003201e3)
    assert spectrum.z_real_ohm[0] == pytest.approx(65.470886)
    assert spectrum.z_imag_ohm[0] == pytest.approx(-0.38998979)  # file: -Im(Z) = +0.38998979
    assert spectrum.frequency_Hz[-1] == pytest.approx(1.6895540e-2)


def test_real_autoeis_csv():
    spectrum = read_spectrum(DATA / "autoeis" / "test_data.csv")
    assert len(spectrum) == 67
    assert spectrum.frequency_Hz[0] == pytest.approx(200019.48)
    assert spectrum.z_imag_ohm[0] == pytest.approx(-34.680012)
    assert np.all(spectrum.z_imag_ohm < 0)


# --- bad files -----------------------------------------------------------------------------------


def read_error(path: Path) -> str:
    with pytest.raises(AnalysisError) as info:
        read_spectrum(path)
    message = str(info.value)
    assert str(path) in message
    return message


def test_missing_file(tmp_path):
    assert read_error(tmp_path / "nowhere.csv").endswith("nowhere.csv: no such file")


def test_empty_file(write):
    assert "empty" in read_error(write("empty.csv", [""]))


def test_header_without_data(write):
    assert "no data" in read_error(write("header_only.csv", ["freq/Hz,Re(Z)/Ohm,-Im(Z)/Ohm"]))


def test_no_recognisable_columns(write):
    message = read_error(write("cols.csv", ["time/s,Ewe/V,I/mA", "1,2,3", "2,3,4", "3,4,5"]))
    assert "no recognisable columns" in message


def test_missing_imaginary_column(write):
    message = read_error(write("two.csv", ["freq/Hz,Re(Z)/Ohm,|Z|/Ohm", "1,2,3", "2,3,4"]))
    assert "imaginary" in message


def test_non_numeric_value_names_line_and_value(write):
    lines = ["frequency,z_real,z_imag", "1000,25.7,-0.1", "100,abc,-1", "10,26,-10"]
    message = read_error(write("text.csv", lines))
    assert "line 3" in message
    assert "'abc'" in message
    assert "z_real" in message


def test_nan_value(write):
    lines = ["frequency,z_real,z_imag", "1000,25.7,-0.1", "100,25.8,NaN", "10,26,-10"]
    message = read_error(write("nan.csv", lines))
    assert "NaN" in message
    assert "line 3" in message


def test_empty_cell(write):
    lines = ["frequency,z_real,z_imag", "1000,25.7,-0.1", "100,,-1", "10,26,-10"]
    assert "no value" in read_error(write("hole.csv", lines))


def test_fewer_than_three_points(write):
    lines = ["frequency,z_real,z_imag", "1000,25.7,-0.1", "100,25.8,-1"]
    assert "at least 3 points" in read_error(write("short.csv", lines))


def test_non_positive_frequency(write):
    lines = ["frequency,z_real,z_imag", "1000,25.7,-0.1", "0,25.8,-1", "10,26,-10"]
    assert "frequency must be positive" in read_error(write("zero.csv", lines))


def test_decimal_commas_in_a_comma_separated_file(write):
    lines = ["frequency,z_real,z_imag", "1000,5,25,7,-0,1", "100,0,25,8,-1,0", "10,0,26,0,-10,0"]
    assert "decimal commas" in read_error(write("ambiguous.csv", lines))


def test_binary_file(tmp_path):
    path = tmp_path / "eis.mpr"
    path.write_bytes(b"BIO-LOGIC MODULAR FILE\x1a\x00\x00\x01\x02" * 10)
    assert "binary" in read_error(path)


def test_truncated_mpt(write):
    lines = mpt_lines()[:6]
    assert "header lines" in read_error(write("cut.mpt", lines, encoding="latin-1"))


def test_area_normalised_impedance_is_refused(write):
    lines = ["Freq (Hz),Z' (Ohm cm2),Z'' (Ohm cm2)", *rows(FREQ, Z.real, Z.imag)]
    assert "area-normalised" in read_error(write("specific.csv", lines))


def test_headerless_with_two_columns(write):
    assert "three columns" in read_error(write("two.csv", rows(FREQ, Z.real)))


def test_headerless_with_four_columns(write):
    # e.g. freq, |Z|, Re, Im: guessing which is which would misread silently
    path = write("four.csv", rows(FREQ, np.abs(Z), Z.real, Z.imag))
    assert "exactly three columns" in read_error(path)


def test_whitespace_header_with_spaces_in_the_names(write):
    lines = ["Frequency (Hz)    Z' (Ohm)    -Z'' (Ohm)", *rows(FREQ, Z.real, -Z.imag, sep="    ")]
    assert_round_trip(read_spectrum(write("spaced.txt", lines)))


def test_whitespace_header_that_does_not_match_the_data(write):
    lines = ["Frequency (Hz) Z' (Ohm) -Z'' (Ohm)", *rows(FREQ, Z.real, -Z.imag, sep=" ")]
    assert "names 6 columns" in read_error(write("spaced.txt", lines))


def test_bad_imag_convention(write):
    with pytest.raises(AnalysisError, match="imag_convention"):
        read_spectrum(write("x.csv", rows(FREQ, Z.real, Z.imag)), imag_convention="up")  # type: ignore[arg-type]


def test_spectrum_validates_arrays():
    with pytest.raises(AnalysisError, match="differ in length"):
        Spectrum(FREQ, Z.real[:-1], Z.imag)
    with pytest.raises(AnalysisError, match="NaN"):
        Spectrum(FREQ, np.where(FREQ > 1e3, np.nan, Z.real), Z.imag)
    spectrum = Spectrum(list(FREQ), list(Z.real), list(Z.imag))
    with pytest.raises(ValueError):
        spectrum.frequency_Hz[0] = 1.0  # read-only


def test_line_numbers_count_the_preamble_and_blank_lines(write):
    lines = mpt_lines()
    lines[9 + 4] = lines[9 + 4].replace("E", "X", 1)  # the 5th data row is on line 14
    lines.insert(11, "")  # a blank line before it pushes it to line 15
    assert "line 15" in read_error(write("bad.mpt", lines, encoding="latin-1"))


def test_headerless_line_numbers(write):
    lines = ["", *rows(FREQ, Z.real, Z.imag)]
    lines[3] = "1e3,oops,-1"
    assert "line 4" in read_error(write("bad.csv", lines))
