"""Neware ``.nda`` and ``.ndax`` files through NewareNDA.

NewareNDA returns one row per point with the cycle, the step number and its status
(``Rest``, ``CC_Chg``, ``CC_DChg``, ``CV_Chg``, ``CCCV_Chg`` ...), the step time, voltage,
current in mA, the capacity and energy counted within each step (they start again at every
step), an absolute timestamp and auxiliary temperatures (``T1``). cellseq keeps the counters
as they are and turns the per-step capacities into counters over the whole file, as its run
store counts them.

NewareNDA is optional (``pip install 'cellseq[neware]'``) and imported only when a Neware file
is read.
"""

from __future__ import annotations

import io
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.errors import AnalysisError
from analysis.readers.neware_cut import (
    CutArchive,
    describe,
    looks_like_cut_zip,
    nda_end,
    nda_has_end_mark,
    needs_split_members,
    salvage_ndax,
)
from analysis.readers.recording import CLOCK_NOTE, ReaderMissing, Recording, utc_of

NDA_MAGIC = b"NEWARE"


def read_neware(raw: bytes, name: str, suffix: str) -> Recording:
    """The recording in a Neware file's bytes (``suffix`` ``.nda`` or ``.ndax``)."""
    cut: CutArchive | None = None
    if suffix == ".ndax" and not zipfile.is_zipfile(io.BytesIO(raw)):
        if not looks_like_cut_zip(raw):
            raise AnalysisError(f"{name}: not a Neware .ndax file (an .ndax is a zip archive;"
                                " this file is not one)")
        cut = salvage_ndax(raw, name)
        lost = needs_split_members(cut.archive)
        if lost:
            raise AnalysisError(
                f"{name}: the .ndax is cut off at byte {len(raw):,} (inside"
                f" {cut.cut_member or 'a member header'}) and cannot be read: its"
                f" {' and '.join(lost)}, which hold the points' times, cycles and steps, are"
                " lost with the end of the file, so no point can be placed in time")
        raw = cut.archive
    if suffix == ".nda" and not raw.startswith(NDA_MAGIC):
        raise AnalysisError(f"{name}: not a Neware .nda file (it does not start with"
                            f" {NDA_MAGIC.decode()!r})")
    try:
        import NewareNDA
    except ImportError:
        raise ReaderMissing(f"{name}: reading Neware files needs NewareNDA: pip install"
                            " 'cellseq[neware]'") from None
    # NewareNDA reads a path; the bytes already read (and bounded) go to a private copy
    with tempfile.TemporaryDirectory(prefix="cellseq-neware-") as folder:
        copy = Path(folder) / f"data{suffix}"
        copy.write_bytes(raw)
        try:
            with warnings.catch_warnings():   # its pandas deprecations are not the user's
                warnings.simplefilter("ignore", DeprecationWarning)
                warnings.simplefilter("ignore", FutureWarning)
                frame = NewareNDA.read(str(copy))
        except Exception as exc:   # a foreign reader: whatever it raises is about the file
            said = " ".join(str(exc).split())[:300] or type(exc).__name__
            raise AnalysisError(f"{name}: NewareNDA cannot read this file: {said}"
                                + (f" ({describe(cut, 0, None)})" if cut else "")) from None
        last_timed = _last_timed(copy.parent, raw) if cut is not None and \
            cut.cut_member == "data_runInfo.ndc" else None
    if last_timed is not None:
        # NewareNDA gives the points after the last one the run information times a time,
        # step and capacity by carrying the last ones on: made up, so left out
        frame = frame[frame["Index"] <= last_timed]
    recording = _recording(frame, name, suffix)
    if cut is not None:
        recording.truncated = describe(cut, len(recording), last_timed)
    elif suffix == ".nda":
        recording.truncated = nda_end(raw)
        if not nda_has_end_mark(raw):
            recording.notes.append("a version 29 .nda has no end mark: whether the file is"
                                   " whole cannot be told from its bytes")
    return recording


def _last_timed(folder: Path, archive: bytes) -> int:
    """The last point the run information member of a cut-off .ndax times."""
    from NewareNDA.NewareNDAx import read_ndc

    part = folder / "runinfo.ndc"
    with zipfile.ZipFile(io.BytesIO(archive)) as z:
        part.write_bytes(z.read("data_runInfo.ndc"))
    return int(read_ndc(str(part))["Index"].max())


def _recording(frame: pd.DataFrame, name: str, suffix: str) -> Recording:
    missing = [c for c in ("Cycle", "Step", "Status", "Voltage", "Current(mA)", "Timestamp",
                           "Charge_Capacity(mAh)", "Discharge_Capacity(mAh)")
               if c not in frame.columns]
    if missing:
        raise AnalysisError(f"{name}: the Neware data lacks the columns {missing}")
    notes = [CLOCK_NOTE]
    stamps = pd.to_datetime(frame["Timestamp"])
    if stamps.isna().any():
        raise AnalysisError(f"{name}: {int(stamps.isna().sum())} points have no timestamp")
    epoch = stamps.to_numpy(dtype="datetime64[ns]").astype(np.int64) / 1e9
    start = utc_of(stamps.iloc[0].to_pydatetime().replace(tzinfo=None)) if len(frame) else None
    step = frame["Step"].to_numpy(dtype=np.int64)
    new_step = np.r_[True, step[1:] != step[:-1]] if len(step) else np.zeros(0, bool)
    time_s = _elapsed(frame, new_step, epoch)
    if len(frame) and abs((epoch[-1] - epoch[0]) - time_s[-1]) > 60.0:
        notes.append(f"the file's clock and its step times disagree by"
                     f" {abs((epoch[-1] - epoch[0]) - time_s[-1]):.0f} s over the file (the"
                     " clock was set during the test?); times are counted from the step times")
    columns = {"time_s": time_s.astype(np.float64),
               "voltage_V": frame["Voltage"].to_numpy(dtype=np.float64),
               "current_A": frame["Current(mA)"].to_numpy(dtype=np.float64) * 1e-3}
    for total, per_step, scale in (("charge_Ah", "Charge_Capacity(mAh)", 1e-3),
                                   ("discharge_Ah", "Discharge_Capacity(mAh)", 1e-3),
                                   ("charge_Wh", "Charge_Energy(mWh)", 1e-3),
                                   ("discharge_Wh", "Discharge_Energy(mWh)", 1e-3)):
        if per_step in frame.columns:
            columns[total] = _over_the_file(frame[per_step].to_numpy(dtype=np.float64) * scale,
                                            new_step)
    if "T1" in frame.columns:
        columns["temperature_C"] = frame["T1"].to_numpy(dtype=np.float64)
    status = frame["Status"].astype(str)
    labels = tuple(sorted(status.unique()))
    codes = status.map({label: k for k, label in enumerate(labels)}).to_numpy(dtype=np.int64)
    counters = {"cycle": frame["Cycle"].to_numpy(dtype=np.int64), "step": step,
                "status": codes}
    notes.append("capacities and energies counted over the file from Neware's per-step ones")
    return Recording(name, f"Neware {suffix}", "cycling", columns, counters,
                     {"status": labels}, start_utc=start, notes=notes)


def _elapsed(frame: pd.DataFrame, new_step: np.ndarray, epoch: np.ndarray) -> np.ndarray:
    """Seconds from the file's first point, counted by the cycler's step clock (``Time``
    starts again at every step): each step starts where the one before ended. The wall-clock
    timestamps can jump (a PC clock set during a test) and are used for the start alone."""
    if "Time" not in frame.columns or not len(frame):
        return (epoch - epoch[0]) if len(frame) else epoch
    step_time = frame["Time"].to_numpy(dtype=np.float64)
    starts = np.flatnonzero(new_step)
    ends = np.r_[starts[1:], len(step_time)] - 1
    offsets = np.r_[0.0, np.cumsum(step_time[ends])[:-1]]
    elapsed = np.repeat(offsets, ends - starts + 1) + step_time
    return elapsed - elapsed[0]


def _over_the_file(per_step: np.ndarray, new_step: np.ndarray) -> np.ndarray:
    """A capacity that starts again at every step, as one counted from the file's start: each
    point adds what the step's count grew by since the point before (the step's first point
    adds its whole count)."""
    values = np.nan_to_num(per_step)
    growth = np.diff(values, prepend=0.0)
    growth[new_step] = values[new_step]
    return np.cumsum(np.clip(growth, 0.0, None))
