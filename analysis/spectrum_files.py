"""Impedance spectra from the text files instruments and people actually write.

``read_spectrum(path)`` returns a :class:`Spectrum` (frequency, Re Z, Im Z with Z = Re + j Im, so a
capacitive arc has Im Z < 0) from:

- EC-Lab (BioLogic) text exports: ``freq/Hz``, ``Re(Z)/Ohm``, ``-Im(Z)/Ohm`` plus any other columns,
  tab-, semicolon- or comma-separated; ``.mpt`` files with their ``EC-Lab ASCII FILE`` /
  ``Nb header lines : N`` preamble; Windows (cp1252/latin-1) or UTF-8 encoding; decimal commas;
- ZView / ZPlot style columns ``Freq(Hz)``, ``Z'(a)``, ``Z''(b)`` (also ``Z"``, ``-Z''``);
- plain ``frequency,z_real,z_imag`` (this project's export) and the usual variants
  (``Frequency (Hz)``, ``Zreal``, ``Zimag``, ``Re``, ``Im`` ...), with unit suffixes such as
  ``/Ohm``, ``(kOhm)``, ``[Hz]``, ``(kHz)`` (scaled to Ohm and Hz);
- impedance.py's headerless CSV: exactly three numeric columns f, Re, Im (with more columns,
  which is which cannot be known, so a header is required).

The imaginary column's sign: a name with a leading minus (``-Im(Z)``, ``-Z''``, ``-Zimag``) holds
-Im Z and is negated; an explicit ``Im(Z)``, ``Zimag`` or ``z_imag`` is taken as Im Z. A column with
no name (headerless files) or an ambiguous one (``Z''`` and bare ``Im``/``Zim``, which exporters
write with either sign) is decided by the data: the spectrum of an electrochemical cell is mostly
capacitive, so if most non-zero values are positive the column holds -Im Z. ``imag_convention``
overrides both rules. How the sign was decided is recorded in ``Spectrum.notes``.

A file may hold several spectra (an EC-Lab loop of PEIS, an aging series, cellseq's own
``<cell>-eis.csv`` export): :func:`read_spectra` cuts it where the file's own counters change
(EC-Lab's ``cycle number``, ``z cycle``, ``Ns``; BDF's ``Step Count / 1`` and
``Cycle Count / 1``) and, inside one loop, where a sweep starts again at a high frequency.
Rows with frequency 0 and no impedance are the rest EC-Lab records before each sweep: they are
left out, with a note. EC-Lab's binary ``.mpr`` is read through galvani
(:mod:`analysis.readers.eclab_mpr`). A galvanostatic spectrum (GEIS) has its high-frequency
artefacts left out, with a note (:mod:`analysis.eis_artefacts`).

Everything that is wrong with a file is an :class:`~analysis.errors.AnalysisError` naming the file
and the problem (no recognisable columns, non-numeric or missing values, NaN, subnormal numbers,
every impedance zero, fewer than three points, non-positive frequencies); a pandas or decoding
traceback never escapes. The file is read through :func:`core.input_files.read_input_file`
(a regular file of at most :data:`MAX_FILE_BYTES`), and a spectrum has at most
:data:`MAX_POINTS` points.

Lines end at ``\\n``, ``\\r\\n`` or ``\\r`` only (a latin-1 byte 0x85 or a form feed in a comment is
not a line break). The ``Nb header lines`` of an .mpt preamble is a hint: when the line it points
at does not name the columns (a preamble edited by hand, blank lines doubled by a converter), the
column names are looked for in the line that names frequency, Re Z and Im Z and is followed by
numbers, and a note says so.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from analysis.errors import AnalysisError
from analysis.readers.recording import Recording
from core.input_files import UnreadableFile, read_input_file

__all__ = ["MAX_FILE_BYTES", "MAX_POINTS", "MIN_POINTS", "Spectrum", "SpectrumFile",
           "SpectrumPart", "read_spectra", "read_spectrum"]

#: A spectrum needs at least this many points to say anything (an intercept, a fit).
MIN_POINTS = 3
#: One spectrum file (an EC-Lab .mpt of a 1000-point spectrum with every column is ~0.3 MB).
MAX_FILE_BYTES = 32 * 1024 * 1024
#: Points of one spectrum file (100 spectra of 1000 points); a spectrum of 100 points per decade
#: over 12 decades has 1200.
MAX_POINTS = 100_000

ImagConvention = Literal["auto", "im", "minus_im"]

_FloatArray = npt.NDArray[np.float64]

# Column names are compared after _normalise: lower case, no spaces, unicode primes and minus
# signs folded to ASCII, a double-quote character read as two primes (Z" is Z'').
_FREQUENCY_NAMES = frozenset({"freq", "frequency", "frequencies", "f", "freq.", "fre"})
_REAL_NAMES = frozenset(
    {
        "re(z)",
        "re",
        "real",
        "real(z)",
        "z'",
        "zre",
        "z_re",
        "zreal",
        "z_real",
        "re_z",
        "rez",
        "zr",
        "z_r",
        "re[z]",
        "realz",
        "z.real",
    }
)
# Im Z by name: trusted as is.
_IMAG_NAMES = frozenset(
    {"im(z)", "imag(z)", "im_z", "z_im", "zimag", "z_imag", "im[z]", "imagz", "z.imag"}
)
# Written with either sign by different exporters: decided by the data.
_AMBIGUOUS_IMAG_NAMES = frozenset({"z''", "zim", "im", "imag", "imz", "zi", "z_i", "zimg"})
_MINUS = ("-", "neg_", "minus_", "minus")

_NB_HEADER_LINES = re.compile(r"nb\s+header\s+lines\s*:\s*([-+]?[0-9]+)", re.IGNORECASE)
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_NUMBER = re.compile(r"^[+-]?(\d+([.,]\d*)?|[.,]\d+)([eE][+-]?\d+)?$")
_DECIMAL_COMMA_NUMBER = re.compile(r"^[+-]?\d*,\d+([eE][+-]?\d+)?$")
_UNDERSCORE_UNIT = re.compile(r"^(.+)_([kMmu\u00b5]?(?:hz|Hz|HZ|ohm|Ohm|OHM|\u03a9|\u2126))$")
_HEADER_SCAN_LINES = 500


@dataclass(frozen=True, eq=False)
class Spectrum:
    """One impedance spectrum, Z = z_real_ohm + j z_imag_ohm, in the file's point order.

    ``source`` names where it came from (the file path) and ``notes`` says how it was read (which
    columns, which sign convention and why), for a report or a log.
    """

    frequency_Hz: _FloatArray
    z_real_ohm: _FloatArray
    z_imag_ohm: _FloatArray
    source: str = ""
    notes: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        where = f"{self.source}: " if self.source else ""
        arrays = {}
        for name in ("frequency_Hz", "z_real_ohm", "z_imag_ohm"):
            try:
                array = np.array(getattr(self, name), dtype=np.float64)
            except (TypeError, ValueError) as exc:
                raise AnalysisError(f"{where}{name} must be numbers: {exc}") from exc
            if array.ndim != 1:
                raise AnalysisError(f"{where}{name} must be one-dimensional, got {array.shape}")
            if not np.all(np.isfinite(array)):
                first = int(np.flatnonzero(~np.isfinite(array))[0])
                raise AnalysisError(f"{where}{name} contains NaN or inf, first at index {first}")
            if np.any(_subnormal(array)):
                first = int(np.flatnonzero(_subnormal(array))[0])
                raise AnalysisError(
                    f"{where}{name} holds a subnormal number (below 2.2e-308), first at index "
                    f"{first}; not a measured value"
                )
            array.setflags(write=False)
            arrays[name] = array
        sizes = {array.size for array in arrays.values()}
        if len(sizes) != 1:
            raise AnalysisError(
                f"{where}frequency_Hz, z_real_ohm and z_imag_ohm differ in length "
                f"({', '.join(str(a.size) for a in arrays.values())})"
            )
        if arrays["frequency_Hz"].size < MIN_POINTS:
            raise AnalysisError(
                f"{where}a spectrum needs at least {MIN_POINTS} points, "
                f"got {arrays['frequency_Hz'].size}"
            )
        if np.any(arrays["frequency_Hz"] <= 0):
            raise AnalysisError(f"{where}frequencies must be positive")
        if not (np.any(arrays["z_real_ohm"]) or np.any(arrays["z_imag_ohm"])):
            raise AnalysisError(f"{where}every impedance is zero; nothing was measured")
        for name, array in arrays.items():
            object.__setattr__(self, name, array)
        object.__setattr__(self, "notes", tuple(self.notes))

    @property
    def impedance_ohm(self) -> npt.NDArray[np.complex128]:
        """Z as complex numbers."""
        return self.z_real_ohm + 1j * self.z_imag_ohm

    def __len__(self) -> int:
        return int(self.frequency_Hz.size)


def read_spectrum(path: str | Path, *, imag_convention: ImagConvention = "auto") -> Spectrum:
    """Read the one impedance spectrum of a CSV or text file (formats: see the module
    docstring); a file holding several is refused (read it with :func:`read_spectra`).

    ``imag_convention``: ``"auto"`` (the column's name, else the data, decides), ``"im"`` (the
    imaginary column holds Im Z) or ``"minus_im"`` (it holds -Im Z).
    """
    series = read_spectra(path, imag_convention=imag_convention)
    if len(series.spectra) != 1:
        raise AnalysisError(f"{series.source}: holds {len(series.spectra)} spectra; read them"
                            " with read_spectra")
    return series.spectra[0].spectrum


@dataclass(frozen=True, eq=False)
class SpectrumPart:
    """One spectrum of a file: ``index`` counts from 1 in file order; ``time_s`` is when it
    started on the file's clock (None when the file has no time column); ``rows`` the first
    and last line (text) or record (.mpr) it came from; ``left_out`` what was not used."""

    index: int
    spectrum: Spectrum
    time_s: float | None
    rows: tuple[int, int]
    left_out: str = ""


@dataclass(frozen=True, eq=False)
class SpectrumFile:
    """Every spectrum of one file, in file order, with how the file was read and cut."""

    source: str
    spectra: tuple[SpectrumPart, ...]
    notes: tuple[str, ...]
    galvanostatic: bool


def read_spectra(path: str | Path, *, imag_convention: ImagConvention = "auto",
                 galvanostatic: bool | None = None) -> SpectrumFile:
    """Read every impedance spectrum of a file (text formats: see the module docstring;
    EC-Lab ``.mpr`` through galvani). ``galvanostatic``: whether the spectra were measured
    under current control (their high-frequency artefacts are then left out); None: as the
    file says (EC-Lab GEIS)."""
    if imag_convention not in ("auto", "im", "minus_im"):
        raise AnalysisError(
            f"imag_convention must be 'auto', 'im' or 'minus_im', got {imag_convention!r}"
        )
    name = str(path)
    try:
        raw = read_input_file(path, MAX_FILE_BYTES)
    except UnreadableFile as exc:
        raise AnalysisError(f"{name}: {exc.reason}") from None
    if raw.startswith(b"BIO-LOGIC MODULAR FILE"):
        from analysis.readers.eclab_mpr import read_mpr

        recording = read_mpr(raw, name)
        if not recording.has_impedance:
            raise AnalysisError(f"{name}: an EC-Lab .mpr of {recording.technique or 'a technique'}"
                                " without impedance (no frequency, Re Z and Im Z columns)")
        rows = np.arange(1, len(recording) + 1)
        has_time = True
        notes = [f"EC-Lab .mpr ({recording.technique}) read by galvani", *recording.notes]
        if recording.truncated:
            notes.append(recording.truncated)
        where = "record"
    else:
        text = _decode(raw, name)
        lines = _LINE_BREAK.split(text)
        if lines and lines[-1] == "":
            lines.pop()
        table = _locate_table(lines, name)
        frame, line_numbers = _parse_table(table, name)
        recording, notes, has_time = _recording_from_frame(frame, line_numbers, table, name,
                                                           lines, imag_convention)
        rows = np.asarray(line_numbers)
        where = "line"
    if galvanostatic is None:
        galvanostatic = recording.galvanostatic_eis
    return _cut(recording, rows, where, name, notes, galvanostatic, has_time)


def _cut(recording: Recording, rows: npt.NDArray[np.int64], where: str, name: str,
         notes: list[str], galvanostatic: bool, has_time: bool) -> SpectrumFile:
    """The recording's impedance rows, one spectrum per segment (:mod:`analysis.readers.steps`
    cuts on the counters and on restarting sweeps)."""
    from analysis.eis_artefacts import high_frequency_artefacts
    from analysis.readers.steps import segments

    columns = recording.columns
    f, re_z, im_z = columns["frequency_Hz"], columns["z_real_ohm"], columns["z_imag_ohm"]
    rest = (f == 0) & (re_z == 0) & (im_z == 0)
    if rest.any():
        notes.append(f"{int(rest.sum())} rows with frequency 0 and no impedance (the rest an"
                     " EC-Lab file records before each sweep) left out")
    bad = np.flatnonzero((f <= 0) & ~rest)
    if bad.size:
        k = int(bad[0])
        raise AnalysisError(f"{name}: {where} {rows[k]}: frequency must be positive, got"
                            f" {f[k]!r}")
    parts: list[SpectrumPart] = []
    skipped = []
    time = columns["time_s"] if has_time else None
    amplitude = columns.get("current_amplitude_A")
    for segment in segments(recording):
        if not segment.spectrum:
            continue
        sl = slice(segment.start, segment.stop)
        if segment.stop - segment.start < MIN_POINTS:
            skipped.append(f"{where}s {rows[segment.start]}-{rows[segment.stop - 1]}"
                           f" ({segment.stop - segment.start} points)")
            continue
        keep = np.ones(segment.stop - segment.start, dtype=bool)
        left_out = ""
        if galvanostatic:
            keep, left_out = high_frequency_artefacts(
                f[sl], re_z[sl], amplitude[sl] if amplitude is not None else None)
        spectrum = Spectrum(f[sl][keep], re_z[sl][keep], im_z[sl][keep], source=name,
                            notes=tuple(notes))
        start_time = float(time[segment.start]) if time is not None else None
        parts.append(SpectrumPart(len(parts) + 1, spectrum, start_time,
                                  (int(rows[segment.start]), int(rows[segment.stop - 1])),
                                  left_out))
    if not parts:
        raise AnalysisError(
            f"{name}: a spectrum needs at least {MIN_POINTS} points, the file has "
            + (", ".join(skipped) if skipped else "none with a positive frequency"))
    if skipped:
        notes.append(f"left out, too short for a spectrum: {', '.join(skipped)}")
    if len(parts) > 1:
        counters = list(recording.counters)
        notes.append(f"{len(parts)} spectra, cut where "
                     + (f"the file's {'/'.join(_COUNTER_LABELS.get(c, c) for c in counters)}"
                        " changes and " if counters else "")
                     + "where a sweep starts again at a high frequency")
    return SpectrumFile(name, tuple(parts), tuple(notes), galvanostatic)


# --- decoding and locating the table -------------------------------------------------------------


def _decode(raw: bytes, name: str) -> str:
    """Text from bytes: UTF-16 by its BOM, else UTF-8, else Windows cp1252, else latin-1."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise AnalysisError(f"{name}: has a UTF-16 mark but is not UTF-16 text") from exc
    if b"\x00" in raw[:4096]:
        raise AnalysisError(
            f"{name}: is a binary file, not text (an EC-Lab .mpr must be exported as text, .mpt)"
        )
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    return raw.decode("latin-1")  # maps every byte, never fails


@dataclass(frozen=True)
class _Table:
    """Where the data is: header tokens (None when headerless) and the numbered data lines."""

    header: list[str] | None
    header_line: int  # 1-based; 0 when headerless
    lines: list[tuple[int, str]]  # (1-based line number, text), blank lines dropped
    sep: str  # a single character, or "whitespace"
    decimal_comma: bool
    note: str = ""  # how the header was found, when not where the file said


def _locate_table(lines: list[str], name: str) -> _Table:
    header_index, note = _ec_lab_header_index(lines, name)
    if header_index is None:
        first = next((i for i, line in enumerate(lines) if line.strip()), None)
        if first is None:
            raise AnalysisError(f"{name}: the file is empty")
        if _looks_numeric(lines[first]):
            return _headerless_table(lines, first, name)
        header_index = _find_header(lines, first)
        if header_index is None:
            raise AnalysisError(
                f"{name}: no recognisable columns (need frequency, real and imaginary impedance, "
                f"e.g. 'freq/Hz, Re(Z)/Ohm, -Im(Z)/Ohm' or 'frequency, z_real, z_imag'); "
                f"the first line reads {_shorten(lines[first])!r}"
            )
    header_text = lines[header_index]
    data = [(i + 1, line) for i, line in enumerate(lines[header_index + 1 :], header_index + 1)]
    data = [(number, line) for number, line in data if line.strip()]
    if len(data) > MAX_POINTS:
        raise AnalysisError(
            f"{name}: {len(data):,} data lines; a spectrum file has at most {MAX_POINTS:,}"
            " points"
        )
    sep = _separator(header_text, data[0][1] if data else header_text)
    header = _split(header_text, sep)
    if sep == "whitespace" and data:
        # names with spaces ("Frequency (Hz)") split apart: try columns separated by 2+ blanks
        width = len(_split(data[0][1], sep))
        if len(header) != width:
            wide = [token for token in re.split(r"\s{2,}", header_text.strip()) if token]
            if len(wide) != width:
                raise AnalysisError(
                    f"{name}: the header on line {header_index + 1} names {len(header)} "
                    f"columns but line {data[0][0]} has {width} values; separate the columns "
                    "with tabs or commas"
                )
            header = wide
    decimal_comma = sep != "," and any(
        _DECIMAL_COMMA_NUMBER.match(token.strip().strip('"'))
        for _, line in data[:20]
        for token in _split(line, sep)
    )
    return _Table(header, header_index + 1, data, sep, decimal_comma, note)


def _ec_lab_header_index(lines: list[str], name: str) -> tuple[int | None, str]:
    """Index of the column header of an EC-Lab .mpt ("Nb header lines : N" counts it), and a
    note when it is not on line N; (None, "") for a file without the preamble."""
    for line in lines[:5]:
        match = _NB_HEADER_LINES.search(line)
        if match:
            count = int(match.group(1))
            if count < 1:
                raise AnalysisError(
                    f"{name}: the EC-Lab preamble says {count} header lines; it must be at least 1"
                )
            if count > len(lines):
                raise AnalysisError(
                    f"{name}: the EC-Lab preamble says {count} header lines but the file has "
                    f"{len(lines)} lines (truncated export?)"
                )
            if _names_columns(lines[count - 1]):
                return count - 1, ""
            found = _find_header(lines, 0, followed_by_data=True)
            if found is None:
                raise AnalysisError(
                    f"{name}: the EC-Lab preamble says {count} header lines, but line {count} "
                    "does not name the frequency, Re Z and Im Z columns, and no other line "
                    "followed by numbers does"
                )
            return found, (
                f"the preamble says {count} header lines; the column names are on line {found + 1}"
            )
    return None, ""


def _names_columns(line: str) -> bool:
    """The line names a frequency, a real and an imaginary column."""
    if not line.strip():
        return False
    roles = _column_roles(_split(line, _separator(line, line)))
    return {"frequency", "real", "imag"} <= set(roles.values())


def _find_header(lines: list[str], start: int, followed_by_data: bool = False) -> int | None:
    """The first line (of the first few hundred) naming frequency, real and imaginary columns;
    with ``followed_by_data``, the first such line whose next non-blank line is numbers."""
    for index in range(start, min(len(lines), start + _HEADER_SCAN_LINES)):
        if not _names_columns(lines[index]):
            continue
        if not followed_by_data:
            return index
        after = next((line for line in lines[index + 1 :] if line.strip()), "")
        if _looks_numeric(after):
            return index
    return None


def _headerless_table(lines: list[str], first: int, name: str) -> _Table:
    data = [(i + 1, line) for i, line in enumerate(lines[first:], first) if line.strip()]
    sample = data[0][1]
    if "\t" in sample:
        sep = "\t"
    elif ";" in sample:
        sep = ";"
    elif "," in sample:
        # "1,5 2,25 -0,5": whitespace-separated with decimal commas; otherwise commas separate.
        tokens = sample.split()
        if len(tokens) >= 3 and all(_DECIMAL_COMMA_NUMBER.match(t) for t in tokens):
            sep = "whitespace"
        else:
            sep = ","
    else:
        sep = "whitespace"
    decimal_comma = sep != "," and any(
        _DECIMAL_COMMA_NUMBER.match(token.strip().strip('"'))
        for _, line in data[:20]
        for token in _split(line, sep)
    )
    width = len(_split(sample, sep))
    if width != 3:
        raise AnalysisError(
            f"{name}: a file without a header must have exactly three columns (frequency, Re Z, "
            f"Im Z), line {data[0][0]} has {width}; add a header line naming the columns"
        )
    return _Table(None, 0, data, sep, decimal_comma)


def _separator(header: str, data_line: str) -> str:
    for candidate in ("\t", ";"):
        if candidate in header or candidate in data_line:
            return candidate
    if "," in header:
        return ","
    return "whitespace"


def _split(line: str, sep: str) -> list[str]:
    tokens = line.strip().split() if sep == "whitespace" else line.rstrip("\r\n").split(sep)
    while tokens and not tokens[-1].strip():  # EC-Lab ends every line with a tab
        tokens.pop()
    return tokens


def _looks_numeric(line: str) -> bool:
    tokens = [t.strip().strip('"') for t in re.split(r"[\t;,\s]+", line.strip()) if t.strip()]
    return bool(tokens) and all(_NUMBER.match(token) for token in tokens)


def _shorten(text: str, limit: int = 80) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --- parsing -------------------------------------------------------------------------------------


def _parse_table(table: _Table, name: str) -> tuple[pd.DataFrame, list[int]]:
    """All cells as stripped strings, one row per data line; columns numbered from 0."""
    if not table.lines:
        raise AnalysisError(
            f"{name}: no data after the header on line {table.header_line} "
            f"(a spectrum needs at least {MIN_POINTS} points)"
        )
    if table.sep == "whitespace":
        body = "\n".join(line.strip() for _, line in table.lines)
        width = max(len(line.split()) for _, line in table.lines)
    else:  # count raw fields: EC-Lab's trailing tab makes one more, empty, field
        body = "\n".join(line.rstrip("\r\n") for _, line in table.lines)
        width = max(len(line.rstrip("\r\n").split(table.sep)) for _, line in table.lines)
    if table.header is not None:
        width = max(width, len(table.header))
        for number, line in table.lines:
            fields = len(_split(line, table.sep))
            if fields > len(table.header):
                hint = " (decimal commas in a comma-separated file?)" if table.sep == "," else ""
                raise AnalysisError(
                    f"{name}: line {number} has {fields} fields but the header on line "
                    f"{table.header_line} names {len(table.header)}{hint}"
                )
    try:
        frame = pd.read_csv(
            io.StringIO(body),
            sep=r"\s+" if table.sep == "whitespace" else table.sep,
            header=None,
            names=list(range(width)),
            dtype=str,
            keep_default_na=False,
            quoting=csv.QUOTE_NONE,
            skip_blank_lines=False,
            engine="python",
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise AnalysisError(f"{name}: cannot split the data into columns: {exc}") from exc
    if len(frame) != len(table.lines):  # pandas dropped or merged lines: refuse rather than guess
        raise AnalysisError(
            f"{name}: read {len(frame)} rows from {len(table.lines)} data lines; "
            "the file's layout is not a plain table"
        )
    return frame, [number for number, _ in table.lines]


#: Counter columns of a spectrum file (normalised base names) and what they count.
_COUNTER_NAMES = {"cyclenumber": "cycle", "cycle": "cycle", "cyclecount": "cycle",
                  "zcycle": "loop", "loop": "loop", "ns": "sequence", "stepcount": "step",
                  "step": "step"}
_COUNTER_LABELS = {"cycle": "cycle number", "loop": "z cycle", "sequence": "Ns",
                   "step": "step count"}
_TIME_NAMES = frozenset({"time", "testtime", "t", "time_s", "test_time_s", "elapsedtime"})
_AMPLITUDE_NAMES = frozenset({"|i|"})
_GALVANOSTATIC = re.compile(r"^\s*galvano electrochemical impedance", re.IGNORECASE)


def _recording_from_frame(
    frame: pd.DataFrame,
    line_numbers: list[int],
    table: _Table,
    name: str,
    lines: list[str],
    imag_convention: ImagConvention,
) -> tuple[Recording, list[str], bool]:
    """The table's impedance, time, counters and current amplitude as a recording, with how
    it was read, and whether the file has a time column."""
    notes: list[str] = []
    if table.header is None:
        columns = {"frequency": 0, "real": 1, "imag": 2}
        labels = {"frequency": "column 1", "real": "column 2", "imag": "column 3"}
        factors = {"frequency": 1.0, "real": 1.0, "imag": 1.0}
        imag_kind = "unnamed"
        notes.append("no header: columns read as frequency/Hz, Re(Z)/Ohm, Im(Z)/Ohm")
    else:
        columns, labels, factors, imag_kind = _select_columns(table.header, table, name)
        notes.append(
            "columns " + ", ".join(repr(labels[role]) for role in ("frequency", "real", "imag"))
        )
    if table.decimal_comma:
        notes.append("decimal commas")
    if table.note:
        notes.append(table.note)

    values = {
        role: _numeric_column(frame[index], labels[role], line_numbers, table, name) * factors[role]
        for role, index in columns.items()
    }
    imag = values["imag"]
    negate, reason = _imag_sign(imag, imag_kind, labels["imag"], imag_convention)
    notes.append(reason)
    if negate:
        imag = -imag
    frequency = values["frequency"]
    if frequency.size < MIN_POINTS:
        raise AnalysisError(
            f"{name}: a spectrum needs at least {MIN_POINTS} points, the file has {frequency.size}"
        )
    extra: dict[str, npt.NDArray[np.float64]] = {}
    counters: dict[str, npt.NDArray[np.int64]] = {}
    for index, token in enumerate(table.header or []):
        key = re.sub(r"[(\[][^()\[\]]*[)\]]$", "", _normalise(token).split("/")[0]).lower()
        label = token.strip()
        if key in _COUNTER_NAMES and _COUNTER_NAMES[key] not in counters:
            numbers = _numeric_column(frame[index], label, line_numbers, table, name)
            counters[_COUNTER_NAMES[key]] = numbers.astype(np.int64)
        elif key in _TIME_NAMES and "time_s" not in extra:
            extra["time_s"] = _numeric_column(frame[index], label, line_numbers, table, name)
        elif key in _AMPLITUDE_NAMES and "current_amplitude_A" not in extra:
            extra["current_amplitude_A"] = _numeric_column(frame[index], label, line_numbers,
                                                           table, name)
    has_time = "time_s" in extra
    if not has_time:
        extra["time_s"] = np.zeros(frequency.size)
    preamble = lines[:table.header_line - 1] if table.header is not None else []
    galvanostatic = any(_GALVANOSTATIC.match(line) for line in preamble[:12])
    recording = Recording(name, "text", "GEIS" if galvanostatic else "",
                          {"frequency_Hz": frequency, "z_real_ohm": values["real"],
                           "z_imag_ohm": imag, **extra}, counters,
                          galvanostatic_eis=galvanostatic)
    return recording, notes, has_time


def _select_columns(
    header: list[str], table: _Table, name: str
) -> tuple[dict[str, int], dict[str, str], dict[str, float], str]:
    roles = _column_roles(header)
    columns: dict[str, int] = {}
    for index, role in roles.items():
        columns.setdefault(role, index)
    missing = [role for role in ("frequency", "real", "imag") if role not in columns]
    if missing:
        described = {"frequency": "frequency", "real": "real part", "imag": "imaginary part"}
        shown = ", ".join(repr(h.strip()) for h in header[:12]) or "nothing"
        raise AnalysisError(
            f"{name}: no recognisable {' or '.join(described[m] for m in missing)} column in the "
            f"header on line {table.header_line} (found {shown}); expected e.g. 'freq/Hz', "
            "'Re(Z)/Ohm', '-Im(Z)/Ohm' or 'frequency', 'z_real', 'z_imag'"
        )
    labels = {role: header[index].strip() for role, index in columns.items()}
    factors = {}
    for role, index in columns.items():
        unit = _parse_name(header[index])[1]
        kind = "Hz" if role == "frequency" else "Ohm"
        factors[role] = _unit_factor(unit, kind, labels[role], name)
    imag_kind = _parse_name(header[columns["imag"]])[2]
    return columns, labels, factors, imag_kind


def _column_roles(header: list[str]) -> dict[int, str]:
    roles = {}
    for index, token in enumerate(header):
        kind = _parse_name(token)[2]
        if kind in ("frequency", "real"):
            roles[index] = kind
        elif kind in ("imag", "minus_imag", "ambiguous_imag"):
            roles[index] = "imag"
    return roles


def _normalise(token: str) -> str:
    text = token.strip()
    if len(text) > 1 and text[0] == text[-1] == '"':  # a quoted CSV header; Z" keeps its quote
        text = text[1:-1].strip()
    for old, new in (
        ("\u2212", "-"),
        ("\u2013", "-"),
        ("\u2032", "'"),
        ("\u2033", "''"),
        ("\u2019", "'"),
        ("\u00b4", "'"),
        ('"', "''"),
    ):
        text = text.replace(old, new)
    return re.sub(r"\s+", "", text)


def _parse_name(token: str) -> tuple[str, str, str]:
    """(base name, unit text, kind); kind is "" for a column of no interest."""
    text = _normalise(token)
    candidates = [(text, "")]
    if "/" in text:
        base, unit = text.split("/", 1)
        candidates.append((base, unit))
    for base, unit in list(candidates):
        match = re.match(r"^(.*?)[(\[]([^()\[\]]*)[)\]]$", base)
        if match and match.group(1):
            candidates.append((match.group(1), unit or match.group(2)))
    match = _UNDERSCORE_UNIT.match(text)  # frequency_Hz, z_real_ohm
    if match:
        candidates.append((match.group(1), match.group(2)))
    for base, unit in candidates:
        kind = _kind(base.lower())
        if kind:
            return base, unit, kind
    return text, "", ""


def _kind(base: str) -> str:
    if base in _FREQUENCY_NAMES:
        return "frequency"
    if base in _REAL_NAMES:
        return "real"
    if base in _IMAG_NAMES:
        return "imag"
    if base in _AMBIGUOUS_IMAG_NAMES:
        return "ambiguous_imag"
    for prefix in _MINUS:
        if base.startswith(prefix):
            rest = base[len(prefix) :]
            if rest in _IMAG_NAMES or rest in _AMBIGUOUS_IMAG_NAMES:
                return "minus_imag"
    return ""


_PREFIXES = {"": 1.0, "k": 1e3, "M": 1e6, "G": 1e9, "m": 1e-3, "u": 1e-6, "\u00b5": 1e-6}


def _unit_factor(unit: str, kind: str, label: str, name: str) -> float:
    """Scale to Ohm or Hz. Area-normalised impedance is refused; unknown labels mean no unit."""
    unit = unit.strip()
    if not unit:
        return 1.0
    if "cm" in unit.lower() or "m2" in unit.lower() or "m^2" in unit.lower():
        raise AnalysisError(
            f"{name}: column {label!r} is area-normalised ({unit}); export the impedance in Ohm"
        )
    if kind == "Hz":
        stem, targets = unit, ("Hz", "hz", "HZ")
    else:
        stem, targets = unit, ("Ohm", "ohm", "OHM", "Ohms", "ohms", "\u03a9", "\u2126")
    for target in targets:
        if stem.endswith(target):
            prefix = stem[: -len(target)]
            if prefix in _PREFIXES:
                return _PREFIXES[prefix]
    return 1.0


def _numeric_column(
    cells: pd.Series, label: str, line_numbers: list[int], table: _Table, name: str
) -> _FloatArray:
    text = cells.fillna("").astype(str).str.strip().str.strip('"').str.strip()
    empty = np.flatnonzero((text == "").to_numpy())
    if empty.size:
        row = int(empty[0])
        raise AnalysisError(f"{name}: line {line_numbers[row]}: no value in column {label!r}")
    if table.decimal_comma:
        text = text.str.replace(",", ".", regex=False)
    numbers = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64)
    spelled_nan = text.str.lower().isin(["nan", "-nan", "+nan", "na", "n/a"]).to_numpy()
    bad = np.flatnonzero(np.isnan(numbers) & ~spelled_nan)
    if bad.size:
        row = int(bad[0])
        raise AnalysisError(
            f"{name}: line {line_numbers[row]}: non-numeric value {cells.iloc[row]!r} "
            f"in column {label!r}"
        )
    not_finite = np.flatnonzero(~np.isfinite(numbers))
    if not_finite.size:
        row = int(not_finite[0])
        raise AnalysisError(
            f"{name}: line {line_numbers[row]}: {cells.iloc[row]!r} (NaN or infinite) "
            f"in column {label!r}"
        )
    subnormal = np.flatnonzero(_subnormal(numbers))
    if subnormal.size:
        row = int(subnormal[0])
        raise AnalysisError(
            f"{name}: line {line_numbers[row]}: {cells.iloc[row]!r} in column {label!r} is too "
            "small to be a measured value (a subnormal number, below 2.2e-308)"
        )
    return numbers


def _subnormal(values: _FloatArray) -> npt.NDArray[np.bool_]:
    return (values != 0) & (np.abs(values) < np.finfo(np.float64).tiny)


def _imag_sign(
    imag: _FloatArray, kind: str, label: str, convention: ImagConvention
) -> tuple[bool, str]:
    """(negate?, why) for the imaginary column."""
    if convention == "im":
        return False, f"{label!r} read as Im Z (imag_convention='im')"
    if convention == "minus_im":
        return True, f"{label!r} read as -Im Z (imag_convention='minus_im')"
    if kind == "minus_imag":
        return True, f"{label!r} holds -Im Z by its name"
    if kind == "imag":
        return False, f"{label!r} holds Im Z by its name"
    nonzero = imag[imag != 0]
    positive = int(np.count_nonzero(nonzero > 0))
    negate = positive > nonzero.size / 2
    return negate, (
        f"{label!r} has {positive} of {nonzero.size} non-zero values positive: read as "
        + ("-Im Z (a cell's spectrum is mostly capacitive)" if negate else "Im Z")
    )
