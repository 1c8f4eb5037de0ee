"""EC-Lab ``.mpr`` (BioLogic's binary "modular file") through galvani.

galvani reads the data module of any technique column by column (it knows the columns by
their IDs, not by technique), the loop module and the start time in the log module. cellseq
takes from it the quantities it stores (time, Ewe, I, dq, frequency, Re Z, -Im Z, |I|,
temperature) and the counters (cycle number, z cycle, Ns, half cycle, mode), and the technique
from the first byte of the settings module (the IDs below, as EC-Lab numbers its techniques).

galvani is optional (``pip install 'cellseq[eclab]'``) and imported only here, when an
``.mpr`` is read. A file cut off inside its data module (a copy that stopped, a disk that
filled) is read up to its last whole record, and :attr:`Recording.truncated` says where it
ends; galvani alone refuses such a file.
"""

from __future__ import annotations

import datetime as dt
import io
import warnings
from typing import Any

import numpy as np

from analysis.errors import AnalysisError
from analysis.readers.recording import (
    CLOCK_NOTE,
    ReaderMissing,
    Recording,
    cumulative_counters,
    utc_of,
)

MAGIC = b"BIO-LOGIC MODULAR FILE"
#: EC-Lab's technique IDs (the first byte of the settings module).
TECHNIQUES = {0x04: "GCPL", 0x06: "CV", 0x0B: "OCV", 0x16: "MP", 0x18: "CA", 0x19: "CP",
              0x1C: "WAIT", 0x1D: "PEIS", 0x1E: "GEIS", 0x30: "CV", 0x32: "ZIR", 0x33: "CVA",
              0x6C: "LSV", 0x75: "coV", 0x76: "coC", 0x77: "GCPL", 0x7F: "MB", 0x88: "BCD"}
#: Bytes between the start of the data module and its first record, by module version
#: (version 0 has two layouts, told apart by its sixth byte).
_RECORDS_START = {2: 405, 3: 406}
#: What galvani raises on bytes it cannot read (it checks with assert, among others).
_GALVANI_ERRORS = (OSError, AssertionError, ValueError, NotImplementedError, RuntimeError,
                   KeyError, TypeError, IndexError, OverflowError)
_V0_RECORDS_START = (1007, 100)


def read_mpr(raw: bytes, name: str) -> Recording:
    """The recording in an ``.mpr`` file's bytes; :class:`AnalysisError` naming the file and
    what is wrong when the bytes are not one."""
    if not raw.startswith(MAGIC):
        raise AnalysisError(f"{name}: not an EC-Lab .mpr file (a binary file that does not"
                            f" start with {MAGIC.decode()!r})")
    biologic = _galvani(name)
    notes: list[str] = []
    truncated = None
    try:
        mpr, unknown = _parse(biologic, raw)
    except _GALVANI_ERRORS as exc:
        try:
            salvaged = _salvage(biologic, raw, exc)
        except _GALVANI_ERRORS:
            salvaged = None
        if salvaged is None:
            cut = _where_cut(biologic, raw)
            if cut:
                raise AnalysisError(f"{name}: {cut}; no data point can be read, nothing"
                                    " imported") from None
            raise AnalysisError(f"{name}: not a readable EC-Lab .mpr file (galvani: {_said(exc)})"
                                ) from None
        mpr, unknown, truncated, note = salvaged
        if note:
            notes.append(note)
    if unknown:
        notes.append(f"columns with IDs {', '.join(unknown)} are unknown to galvani; read by"
                     " their size and not used")
    return _recording(mpr, name, notes, truncated)


def _galvani(name: str) -> Any:
    try:
        from galvani import BioLogic
    except ImportError:
        raise ReaderMissing(f"{name}: reading EC-Lab .mpr files needs galvani: pip install"
                            " 'cellseq[eclab]' (or export the file as text, .mpt)") from None
    return BioLogic


def _parse(biologic: Any, raw: bytes) -> tuple[Any, list[str]]:
    """galvani's reading, with the column IDs it had to guess; refused where a guess could
    have shifted a known column (two unknown columns apart from each other)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mpr = biologic.MPRfile(io.BytesIO(raw))
    del caught
    names = list(mpr.data.dtype.names or ())
    unknown = [k for k, n in enumerate(names) if n.startswith("unknown_colID_")]
    if len(unknown) > 1 and unknown[-1] - unknown[0] != len(unknown) - 1:
        raise NotImplementedError(
            f"columns with unknown IDs ({', '.join(names[k][14:] for k in unknown)}) lie apart,"
            " so the columns between them cannot be placed with certainty")
    return mpr, [names[k][14:] for k in unknown]


def _said(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]


def _salvage(biologic: Any, raw: bytes, exc: BaseException
             ) -> tuple[Any, list[str], str | None, str] | None:
    """A file cut off inside (or after) its data module, read up to its last whole record:
    the data module's length and point count are set to what the bytes hold, in a copy. A
    whole data module with a log module galvani cannot read (no start time) is read without
    the log. None: the bytes are not an .mpr that can be read."""
    modules = []
    try:
        stream = io.BytesIO(raw)
        stream.seek(len(biologic.MPR_MAGIC))
        for module in biologic.read_VMP_modules(stream, read_module_data=False):
            modules.append(module)
    except (OSError, ValueError):
        pass   # cut inside a module header: the modules before it are what there is
    data = next((m for m in modules if m["shortname"] == b"VMP data  "), None)
    if data is None or not any(m["shortname"] == b"VMP Set   " for m in modules):
        return None
    start, length = int(data["offset"]), int(data["length"])
    available = len(raw) - start
    if available >= length:   # the data module is whole: the trouble is in a later module
        mpr, unknown = _parse(biologic, raw[:start + length])
        cut = any(int(m["offset"]) + int(m["length"]) > len(raw) for m in modules)
        if cut:
            return mpr, unknown, (f"the file is cut off after its data ({len(raw):,} bytes):"
                                  f" all {len(mpr.data):,} points are there, its start time"
                                  " is not"), ""
        return mpr, unknown, None, f"the start time could not be read: {_said(exc)}"
    length_at = _length_field(raw, start)
    version = int(data["version"])
    if version in _RECORDS_START:
        candidates = (_RECORDS_START[version],)
    elif version == 0 and available > 5:
        candidates = (_V0_RECORDS_START[1],) if raw[start + 5] else (_V0_RECORDS_START[0],)
    else:
        return None
    for header in candidates:
        if available < header:
            continue
        probe = _patched(raw[:start + header], length_at, start, header, 0)
        try:
            itemsize = _parse(biologic, probe)[0].data.dtype.itemsize
        except _GALVANI_ERRORS:
            continue
        whole = (available - header) // itemsize
        said = int(np.frombuffer(raw[start:start + 4], dtype="<u4")[0])
        kept = _patched(raw[:start + header + whole * itemsize], length_at, start,
                        header + whole * itemsize, whole)
        mpr, unknown = _parse(biologic, kept)
        return mpr, unknown, (f"the file is cut off in its data module after {whole:,} of"
                              f" {said:,} points (byte {len(raw):,} of"
                              f" {start + length:,}); those points are read"), ""

    return None


def _where_cut(biologic: Any, raw: bytes) -> str | None:
    """Where a file cut off before any whole data point ends: in which module, at which
    byte (None: the bytes are not cut, they are wrong)."""
    modules = []
    stream = io.BytesIO(raw)
    stream.seek(len(biologic.MPR_MAGIC))
    try:
        for module in biologic.read_VMP_modules(stream, read_module_data=False):
            modules.append(module)
    except (OSError, ValueError):   # cut inside a module's header
        after = f" after its {_module(modules[-1])} module" if modules else ""
        return (f"the .mpr is cut off at byte {len(raw):,}, inside the header of a"
                f" module{after}")
    for m in modules:
        begin, length = int(m["offset"]), int(m["length"])
        if begin + length > len(raw):
            return (f"the .mpr is cut off at byte {len(raw):,}, inside its {_module(m)} module"
                    f" (bytes {begin:,} to {begin + length:,})")
    return None


def _module(m: dict[str, Any]) -> str:
    return bytes(m["shortname"]).decode("ascii", errors="replace").strip()


def _length_field(raw: bytes, data_start: int) -> int:
    """Where the data module's length is written: the module header just before its data
    (EC-Lab 11.50 and later write a longer header, marked by 0xFFFFFFFF)."""
    long_header = 10 + 25 + 4 + 4 + 4 + 4 + 8
    at = data_start - long_header
    if at >= 0 and raw[at + 35:at + 39] == b"\xff\xff\xff\xff":
        return at + 39
    return data_start - (10 + 25 + 4 + 4 + 8) + 35


def _patched(head: bytes, length_at: int, start: int, length: int, points: int) -> bytes:
    out = bytearray(head)
    out[length_at:length_at + 4] = np.uint32(length).tobytes()
    out[start:start + 4] = np.uint32(points).tobytes()
    return bytes(out)


def _recording(mpr: Any, name: str, notes: list[str], truncated: str | None) -> Recording:
    data = mpr.data
    names = set(data.dtype.names or ())
    settings = next((m for m in mpr.modules if m["shortname"] == b"VMP Set   "), None)
    technique_id = settings["data"][0] if settings is not None and len(settings["data"]) else -1
    technique = TECHNIQUES.get(int(technique_id), f"technique 0x{int(technique_id):02x}")

    def column(*candidates: str, scale: float = 1.0) -> np.ndarray | None:
        for candidate in candidates:
            if candidate in names:   # a damaged record may hold NaN bit patterns: kept as NaN
                with np.errstate(all="ignore"):
                    return np.asarray(data[candidate], dtype=np.float64) * scale
        return None

    if "time/s" not in names:
        raise AnalysisError(f"{name}: the .mpr has no time column (columns:"
                            f" {', '.join(sorted(names))})")
    columns: dict[str, np.ndarray] = {"time_s": column("time/s")}
    found = {
        "voltage_V": column("Ewe/V", "<Ewe>/V", "Ecell/V"),
        "current_A": column("I/mA", "<I>/mA", scale=1e-3),
        "temperature_C": column("Temperature/°C"),
        "frequency_Hz": column("freq/Hz"),
        "current_amplitude_A": column("|I|/A"),
    }
    columns.update({k: v for k, v in found.items() if v is not None})
    real, minus_imag = column("Re(Z)/Ohm"), column("-Im(Z)/Ohm")
    modulus, phase = column("|Z|/Ohm"), column("Phase(Z)/deg")
    if "frequency_Hz" in columns:
        if real is not None and minus_imag is not None:
            columns["z_real_ohm"], columns["z_imag_ohm"] = real, -minus_imag
        elif modulus is not None and phase is not None:
            radians = np.deg2rad(phase)
            columns["z_real_ohm"] = modulus * np.cos(radians)
            columns["z_imag_ohm"] = modulus * np.sin(radians)
            notes.append("Re Z and Im Z computed from |Z| and Phase(Z) (the file stores those)")
    counters = {}
    for key, candidates in (("cycle", ("cycle number",)), ("loop", ("z cycle",)),
                            ("sequence", ("Ns",)), ("half_cycle", ("half cycle",))):
        values = column(*candidates)
        if values is not None:
            counters[key] = np.clip(np.nan_to_num(values), -2.0**62, 2.0**62).astype(np.int64)
    if "flags" in names and "mode" in mpr.flags_dict:
        counters["mode"] = np.asarray(mpr.get_flag("mode"), dtype=np.int64)
    dq = column("dq/mA.h", "dQ/mA.h", scale=1e-3)
    if dq is None:
        dq = column("dQ/C", scale=1 / 3600.0)
    if dq is None:
        total = column("(Q-Qo)/mA.h", scale=1e-3)
        if total is None:
            total = column("(Q-Qo)/C", scale=1 / 3600.0)
        if total is not None:
            dq = np.diff(np.nan_to_num(total), prepend=0.0)
    if "current_A" not in columns and dq is not None:
        columns["current_A"] = _current_from_charge(columns["time_s"], dq)
        notes.append("the file stores no current: it is the charge increment over the time"
                     " step (dq/dt), as EC-Lab's <I>")
    if "current_A" in columns:
        cumulative, how = cumulative_counters(name, columns["time_s"], columns["current_A"],
                                              columns.get("voltage_V"), dq)
        columns.update(cumulative)
        notes.append(how)
    start = None
    timestamp = getattr(mpr, "timestamp", None)
    if isinstance(timestamp, dt.datetime):
        start = utc_of(timestamp)
        notes.append(CLOCK_NOTE)
    else:
        notes.append("the file does not say when it started (no log module)")
    return Recording(name, "EC-Lab .mpr", technique, columns, counters, start_utc=start,
                     galvanostatic_eis=technique == "GEIS", truncated=truncated, notes=notes)


def _current_from_charge(time_s: np.ndarray, dq_Ah: np.ndarray) -> np.ndarray:
    """<I> = dq / dt between a point and the one before (0 for the first point and where no
    time passed), as EC-Lab computes it for its text export."""
    dt_s = np.diff(time_s, prepend=time_s[:1] if len(time_s) else time_s)
    with np.errstate(divide="ignore", invalid="ignore"):
        current = np.where(dt_s > 0, dq_Ah * 3600.0 / dt_s, 0.0)
    return np.nan_to_num(current)
