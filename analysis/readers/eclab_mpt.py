"""EC-Lab ``.mpt`` text exports of any technique, read fast.

An ``.mpt`` starts with ``EC-Lab ASCII FILE`` and ``Nb header lines : N``; the preamble names
the technique and when the acquisition started; line N names the tab-separated columns (with
units: ``time/s``, ``Ewe/V``, ``<I>/mA``, ``dq/mA.h``, ``freq/Hz`` ...), and the points follow,
with decimal points or commas as the PC's locale wrote them. The table is parsed by pyarrow's
CSV reader (hundreds of MB/s); a cell that is not a number is located afterwards, by line, for
the message. A file cut off mid-line is read up to its last whole line, and
:attr:`Recording.truncated` says where it ends.

``cellseq analyze eis`` reads ``.mpt`` spectra through :mod:`analysis.spectrum_files` (which also
reads hand-edited and other-software exports); this reader serves ``cellseq import``.
"""

from __future__ import annotations

import datetime as dt
import io
import re

import numpy as np

from analysis.errors import AnalysisError
from analysis.readers.recording import CLOCK_NOTE, Recording, cumulative_counters, utc_of

MAGICS = (b"EC-Lab ASCII FILE", b"BT-Lab ASCII FILE")
_NB_HEADER = re.compile(rb"Nb header lines\s*:\s*(\d+)")
_STARTED = re.compile(r"Acquisition started on\s*:\s*(\d\d/\d\d/\d{4} \d\d:\d\d:\d\d(?:\.\d+)?)")
#: Technique names as the preamble spells them, and their short names.
TECHNIQUE_NAMES = (("potentio electrochemical impedance", "PEIS"),
                   ("galvano electrochemical impedance", "GEIS"),
                   ("galvanostatic cycling with potential limitation", "GCPL"),
                   ("modulo bat", "MB"), ("chronoamperometry", "CA"),
                   ("chronopotentiometry", "CP"), ("cyclic voltammetry", "CV"),
                   ("linear sweep voltammetry", "LSV"), ("open circuit voltage", "OCV"),
                   ("wait", "WAIT"), ("constant voltage", "coV"), ("constant current", "coC"))
#: column -> (quantity, scale to SI); the first name present of each quantity is used.
_COLUMNS = (("time/s", "time_s", 1.0),
            ("Ewe/V", "voltage_V", 1.0), ("<Ewe>/V", "voltage_V", 1.0),
            ("Ecell/V", "voltage_V", 1.0),
            ("I/mA", "current_A", 1e-3), ("<I>/mA", "current_A", 1e-3),
            ("Temperature/°C", "temperature_C", 1.0),
            ("freq/Hz", "frequency_Hz", 1.0), ("Re(Z)/Ohm", "z_real_ohm", 1.0),
            ("-Im(Z)/Ohm", "z_imag_ohm", -1.0), ("|I|/A", "current_amplitude_A", 1.0),
            ("dq/mA.h", "dq", 1e-3), ("dQ/mA.h", "dq", 1e-3), ("dQ/C", "dq", 1 / 3600.0),
            ("(Q-Qo)/mA.h", "q", 1e-3), ("(Q-Qo)/C", "q", 1 / 3600.0))
_COUNTERS = (("cycle number", "cycle"), ("z cycle", "loop"), ("Ns", "sequence"),
             ("half cycle", "half_cycle"), ("mode", "mode"))


def read_mpt(raw: bytes, name: str) -> Recording:
    """The recording in an ``.mpt`` file's bytes; :class:`AnalysisError` naming the file, the
    line and what is wrong."""
    if not raw.lstrip(b"\xef\xbb\xbf").startswith(MAGICS):
        first = raw.split(b"\n", 1)[0][:60].decode("latin-1", "replace").strip()
        raise AnalysisError(f"{name}: not an EC-Lab .mpt file (its first line is {first!r},"
                            " not 'EC-Lab ASCII FILE')")
    match = _NB_HEADER.search(raw[:400])
    if match is None:
        raise AnalysisError(f"{name}: the EC-Lab preamble lacks 'Nb header lines : N' on its"
                            " second line")
    count = int(match.group(1))
    starts = _line_starts(raw, count + 1)
    if count < 3 or len(starts) < count:
        raise AnalysisError(f"{name}: the preamble says {count} header lines, but the file has"
                            f" {len(starts)} lines" + (" (truncated?)" if count >= 3 else ""))
    preamble = raw[:starts[count - 1]].decode("cp1252", "replace")
    header_end = starts[count] if len(starts) > count else len(raw)
    header = raw[starts[count - 1]:header_end].decode("cp1252", "replace").rstrip("\r\n")
    names = header.split("\t")
    while names and not names[-1].strip():
        names.pop()
    body = raw[header_end:]
    notes: list[str] = []
    truncated = None
    lines_before = count
    cut = body.rstrip(b"\r\n").rfind(b"\n") + 1
    last = body[cut:].rstrip(b"\r\n")
    first = body.split(b"\n", 1)[0].rstrip(b"\r")
    if cut and last.strip() and last.count(b"\t") < first.count(b"\t"):
        # EC-Lab ends its last line without a line break: only a line with fewer fields than
        # the others is known to be cut
        whole = body[:cut].count(b"\n")
        fields, expected = last.count(b"\t") + 1, first.count(b"\t") + 1
        truncated = (f"the file is cut off in line {lines_before + whole + 1} (it has"
                     f" {fields} of {expected} fields); its {whole:,} whole lines of points"
                     " are read")
        body = body[:cut]
    table = _parse(body, names, name, lines_before)
    return _recording(table, names, preamble, name, notes, truncated)


def _line_starts(raw: bytes, wanted: int) -> list[int]:
    starts, at = [0], 0
    while len(starts) < wanted:
        at = raw.find(b"\n", at) + 1
        if at == 0 or at >= len(raw):
            break
        starts.append(at)
    return starts


def _parse(body: bytes, names: list[str], name: str, lines_before: int) -> dict[str, np.ndarray]:
    """The numeric columns cellseq uses, by name; pyarrow's reader, with the line of a bad
    value found afterwards."""
    import pyarrow as pa
    from pyarrow import csv

    wanted = [n for n in dict.fromkeys([c for c, _, _ in _COLUMNS] + [c for c, _ in _COUNTERS])
              if n in names]
    first = body.split(b"\n", 1)[0].rstrip(b"\r")
    if not first.strip():
        return {n: np.empty(0) for n in wanted}
    width = len(first.split(b"\t"))
    padded = names + [f"_extra_{k}" for k in range(width - len(names))]
    comma = b"," in first and b"." not in first
    try:
        table = csv.read_csv(
            io.BytesIO(body),
            read_options=csv.ReadOptions(column_names=padded, block_size=16 << 20,
                                         encoding="latin-1"),
            parse_options=csv.ParseOptions(delimiter="\t", quote_char=False),
            convert_options=csv.ConvertOptions(
                include_columns=wanted, column_types={n: pa.float64() for n in wanted},
                decimal_point="," if comma else ".", strings_can_be_null=False))
    except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError) as exc:
        raise AnalysisError(_locate(body, padded, wanted, comma, name, lines_before, exc)
                            ) from None
    return {n: table.column(n).to_numpy(zero_copy_only=False).astype(np.float64)
            for n in wanted}


def _locate(body: bytes, names: list[str], wanted: list[str], comma: bool, name: str,
            lines_before: int, exc: Exception) -> str:
    """The first line whose fields do not fit the header or whose value is not a number."""
    index = {n: names.index(n) for n in wanted}
    for k, line in enumerate(body.decode("latin-1").splitlines(), lines_before + 1):
        if not line.strip():
            return f"{name}: line {k} is empty, inside the table"
        fields = line.rstrip("\r").split("\t")
        if len(fields) > len(names):
            return (f"{name}: line {k} has {len(fields)} fields; the header names"
                    f" {len(names)}")
        for column, at in index.items():
            text = fields[at] if at < len(fields) else ""
            try:
                float(text.replace(",", ".") if comma else text)
            except ValueError:
                return f"{name}: line {k}: {text!r} in column {column!r} is not a number"
    return f"{name}: the table cannot be read: {' '.join(str(exc).split())[:200]}"


def technique_of(preamble: str) -> str:
    """EC-Lab's short technique name from the preamble's long one ("" if none is named)."""
    lines = [line.strip().lower() for line in preamble.splitlines()[2:12]]
    for line in lines:
        for long_name, short in TECHNIQUE_NAMES:
            if line.startswith(long_name):
                return short
    return ""


def _recording(table: dict[str, np.ndarray], names: list[str], preamble: str, name: str,
               notes: list[str], truncated: str | None) -> Recording:
    if "time/s" not in table:
        raise AnalysisError(f"{name}: no 'time/s' column in the header (found"
                            f" {', '.join(repr(n) for n in names[:12])})")
    columns: dict[str, np.ndarray] = {}
    dq = None
    total = None
    for column, quantity, scale in _COLUMNS:
        if column not in table:
            continue
        if quantity == "dq":
            dq = table[column] * scale if dq is None else dq
        elif quantity == "q":
            total = table[column] * scale if total is None else total
        elif quantity not in columns:
            columns[quantity] = table[column] * scale
    if dq is None and total is not None:
        dq = np.diff(np.nan_to_num(total), prepend=0.0)
    if "frequency_Hz" in columns and not {"z_real_ohm", "z_imag_ohm"} <= set(columns):
        for key in ("frequency_Hz", "z_real_ohm", "z_imag_ohm"):
            columns.pop(key, None)
        notes.append("the file has frequencies but no Re(Z)/Ohm and -Im(Z)/Ohm columns; its"
                     " impedance is not read")
    counters = {}
    for column, key in _COUNTERS:
        if column in table:
            counters[key] = np.nan_to_num(table[column]).astype(np.int64)
    if "current_A" in columns:
        cumulative, how = cumulative_counters(name, columns["time_s"], columns["current_A"],
                                              columns.get("voltage_V"), dq)
        columns.update(cumulative)
        notes.append(how)
    technique = technique_of(preamble)
    start = None
    match = _STARTED.search(preamble)
    if match:
        text = match.group(1)
        fmt = "%m/%d/%Y %H:%M:%S.%f" if "." in text else "%m/%d/%Y %H:%M:%S"
        try:
            start = utc_of(dt.datetime.strptime(text, fmt))
            notes.append(CLOCK_NOTE)
        except ValueError:
            notes.append(f"the acquisition start {text!r} is not a date (month/day/year)")
    else:
        notes.append("the preamble does not say when the acquisition started")
    return Recording(name, "EC-Lab .mpt", technique, columns, counters, start_utc=start,
                     galvanostatic_eis=technique == "GEIS", truncated=truncated, notes=notes)
