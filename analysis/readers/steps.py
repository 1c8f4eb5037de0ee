"""A recording cut into steps, as a cellseq run stores them: kind, cycle, rows.

A step ends where one of the file's own counters changes (EC-Lab's Ns, half cycle, z cycle,
cycle number and mode; Neware's step and status; BDF's step and cycle count), where the points
switch between impedance and not, and where an impedance sweep starts again at a high
frequency inside one loop. Its kind comes from what the file says (EC-Lab's technique and
mode, Neware's step status) and, where it says nothing, from the points (a current that is
zero is a rest). Its cycle is the file's cycle: EC-Lab's half cycles paired into cycles from
1, a cycle number as written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from analysis.readers.recording import Recording

#: A sweep starts again where the frequency jumps up by more than this factor (EC-Lab sweeps
#: high to low; the next loop starts at the top again).
RESTART_FACTOR = 3.0
#: Below this |current| (A) a segment with no other description is a rest.
REST_CURRENT_A = 1e-7
#: The techniques whose points are one kind of step whatever their mode.
_BY_TECHNIQUE = {"CA": "chronoamperometry", "CP": "chronopotentiometry", "CV": "cv",
                 "CVA": "cv", "LSV": "lsv", "OCV": "rest", "WAIT": "rest",
                 "coV": "constant_voltage", "coC": "constant_current"}
_BY_MODE = {1: "constant_current", 2: "constant_voltage", 3: "rest"}
#: Neware step statuses; a CC-CV charge is stored as a constant-current step (its rows hold
#: both parts) with the status kept in its parameters.
_BY_STATUS = {"Rest": "rest", "CC_Chg": "constant_current", "CC_DChg": "constant_current",
              "CCCV_Chg": "constant_current", "CCCV_DChg": "constant_current",
              "CV_Chg": "constant_voltage", "CV_DChg": "constant_voltage",
              "CP_Chg": "constant_current", "CP_DChg": "constant_current"}


@dataclass(frozen=True)
class Segment:
    """Rows ``start:stop`` of a recording, one step."""

    start: int
    stop: int
    kind: str
    cycle: int
    spectrum: bool
    params: dict[str, Any] = field(default_factory=dict)


def impedance_rows(recording: Recording) -> np.ndarray:
    """Rows holding an impedance point: a positive frequency (EC-Lab records the rest before
    each sweep as rows with frequency 0 and no impedance)."""
    if not recording.has_impedance:
        return np.zeros(len(recording), dtype=bool)
    return np.nan_to_num(recording.columns["frequency_Hz"]) > 0


def segments(recording: Recording) -> list[Segment]:
    n = len(recording)
    if n == 0:
        return []
    eis = impedance_rows(recording)
    change = np.zeros(n, dtype=bool)
    change[0] = True
    for values in recording.counters.values():
        change[1:] |= values[1:] != values[:-1]
    change[1:] |= eis[1:] != eis[:-1]
    if eis.any():
        f = recording.columns["frequency_Hz"]
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            restart = (f[1:] > RESTART_FACTOR * f[:-1]) & eis[1:] & eis[:-1]
        change[1:] |= restart
    starts = np.flatnonzero(change)
    stops = np.r_[starts[1:], n]
    cycles = _cycles(recording)
    current = recording.columns.get("current_A")
    out = []
    for start, stop in zip(starts.tolist(), stops.tolist(), strict=True):
        spectrum = bool(eis[start])
        kind, params = _kind(recording, start, stop, spectrum, current)
        if current is not None:
            params["current_A"] = float(np.nan_to_num(np.median(current[start:stop])))
        out.append(Segment(start, stop, kind, int(cycles[start]), spectrum, params))
    return out


def _cycles(recording: Recording) -> np.ndarray:
    counters = recording.counters
    if "half_cycle" in counters:
        return counters["half_cycle"] // 2 + 1
    if "cycle" in counters:
        return counters["cycle"]
    return np.zeros(len(recording), dtype=np.int64)


def _kind(recording: Recording, start: int, stop: int, spectrum: bool,
          current: np.ndarray | None) -> tuple[str, dict[str, Any]]:
    params: dict[str, Any] = {"technique": recording.technique} if recording.technique else {}
    if spectrum:
        return ("geis" if recording.galvanostatic_eis else "peis"), params
    status = recording.counters.get("status")
    if status is not None:
        label = recording.labels["status"][int(status[start])]
        params["vendor_step"] = label
        if label in _BY_STATUS:
            return _BY_STATUS[label], params
    if recording.technique in _BY_TECHNIQUE:
        return _BY_TECHNIQUE[recording.technique], params
    mode = recording.counters.get("mode")
    if mode is not None and int(mode[start]) in _BY_MODE:
        kind = _BY_MODE[int(mode[start])]
        if kind == "constant_current" and current is not None and \
                np.nanmax(np.abs(current[start:stop]), initial=0.0) < REST_CURRENT_A:
            kind = "rest"
        return kind, params
    if current is None or np.nanmax(np.abs(current[start:stop]), initial=0.0) < REST_CURRENT_A:
        return "rest", params
    return _by_shape(recording, start, stop, current), params


def _by_shape(recording: Recording, start: int, stop: int, current: np.ndarray) -> str:
    """A segment the file does not describe: constant current if the current holds within
    5 %, constant voltage if the voltage does, else constant current."""
    i = current[start:stop]
    if np.nanstd(i) <= 0.05 * abs(np.nanmedian(i)):
        return "constant_current"
    v = recording.columns.get("voltage_V")
    if v is not None and np.nanstd(v[start:stop]) <= 1e-3 * max(abs(np.nanmedian(v[start:stop])),
                                                                1e-3):
        return "constant_voltage"
    return "constant_current"
