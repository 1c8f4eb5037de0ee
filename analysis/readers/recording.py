"""What an instrument file holds, in cellseq's quantities: one table of points with its counters.

Every reader (EC-Lab ``.mpr`` and ``.mpt``, Neware ``.nda``/``.ndax``, BDF CSV) turns its file
into a :class:`Recording`: SI columns named with their unit, the file's own counters (cycles,
loops, sequences, steps) as integers, when the file started, and notes on how it was read.
Nothing here knows of the run store; ``cellseq import`` writes recordings into one, and
``cellseq analyze eis`` cuts their impedance points into spectra.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from analysis.errors import AnalysisError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Columns a reader may fill (SI, unit in the name). ``time_s`` is always there: seconds from
#: the file's start (``Recording.start_utc`` when the file says when that was).
COLUMNS = ("time_s", "step_time_s", "voltage_V", "current_A", "temperature_C",
           "charge_Ah", "discharge_Ah", "charge_Wh", "discharge_Wh",
           "frequency_Hz", "z_real_ohm", "z_imag_ohm", "current_amplitude_A")
#: Counters a reader may fill, from the file's own columns: ``cycle`` (the file's cycle or
#: loop number), ``loop`` (EC-Lab's z cycle: loops of a Modulo Bat), ``sequence`` (EC-Lab Ns),
#: ``half_cycle``, ``mode`` (EC-Lab: 1 galvanostatic, 2 potentiostatic, 3 rest), ``step``
#: (Neware's step number, BDF's step count) and ``status`` (a code into ``labels['status']``).
COUNTERS = ("cycle", "loop", "sequence", "half_cycle", "mode", "step", "status")


class ReaderMissing(AnalysisError):
    """The optional package that reads this format is not installed; the message names the
    pip extra that brings it."""


@dataclass
class Recording:
    """One instrument file's points in file order.

    ``technique``: what the file says was run (EC-Lab's technique, e.g. ``PEIS``, ``GCPL``,
    ``MB``; ``cycling`` for a cycler file), "" when it does not say. ``galvanostatic_eis``: its
    impedance points were measured under current control (GEIS). ``truncated``: where a file
    that was cut off ends (its points up to there are here), else None.
    """

    source: str
    format: str
    technique: str
    columns: dict[str, FloatArray]
    counters: dict[str, IntArray] = field(default_factory=dict)
    labels: dict[str, tuple[str, ...]] = field(default_factory=dict)
    start_utc: float | None = None
    galvanostatic_eis: bool = False
    truncated: str | None = None
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if "time_s" not in self.columns:
            raise AnalysisError(f"{self.source}: no time column")
        n = len(self.columns["time_s"])
        for name, values in (*self.columns.items(), *self.counters.items()):
            if name not in COLUMNS and name not in COUNTERS:
                raise AnalysisError(f"{self.source}: unknown quantity {name!r}")
            if len(values) != n:
                raise AnalysisError(f"{self.source}: column {name} has {len(values)} values,"
                                    f" time has {n}")

    def __len__(self) -> int:
        return len(self.columns["time_s"])

    @property
    def has_impedance(self) -> bool:
        return "frequency_Hz" in self.columns and "z_real_ohm" in self.columns

    @property
    def end_utc(self) -> float | None:
        if self.start_utc is None or not len(self):
            return self.start_utc
        return self.start_utc + float(np.nanmax(self.columns["time_s"]))


def cumulative_counters(recording_name: str, time_s: FloatArray, current_A: FloatArray,
                        voltage_V: FloatArray | None, charge_increment_Ah: FloatArray | None
                        ) -> tuple[dict[str, FloatArray], str]:
    """Charge and discharge capacity and energy counted from the file's start, never going
    down (the run store's ``charge_Ah``, ``discharge_Ah``, ``charge_Wh``, ``discharge_Wh``).

    The charge that moved between two points is the instrument's own figure where the file
    has one (EC-Lab's ``dq``), else the current integrated over time (the previous point's
    current over the interval, as a cycler counts). Positive current is charge. Returns the
    columns and a note saying which was used."""
    n = len(time_s)
    if charge_increment_Ah is not None:
        dq = np.nan_to_num(np.asarray(charge_increment_Ah, dtype=np.float64))
        how = "charge counted from the file's own charge increments (dq)"
    else:
        dt_s = np.diff(time_s, prepend=time_s[:1] if n else time_s)
        previous = np.concatenate([current_A[:1], current_A[:-1]]) if n else current_A
        dq = np.nan_to_num(previous * np.clip(dt_s, 0.0, None)) / 3600.0
        how = "charge counted by integrating the current over time"
    volts = np.nan_to_num(voltage_V) if voltage_V is not None else np.zeros(n)
    charge = np.clip(dq, 0.0, None)
    discharge = np.clip(-dq, 0.0, None)
    return {"charge_Ah": np.cumsum(charge), "discharge_Ah": np.cumsum(discharge),
            "charge_Wh": np.cumsum(charge * np.abs(volts)),
            "discharge_Wh": np.cumsum(discharge * np.abs(volts))}, how


def utc_of(naive: dt.datetime) -> float:
    """Seconds since the epoch of a file's clock time, which carries no time zone: read as
    UTC (every reader the same, so the files of one cell join in the right order)."""
    return naive.replace(tzinfo=dt.UTC).timestamp()


#: The note every reader gives when it reads a clock time.
CLOCK_NOTE = "the file's clock time carries no time zone; it is read as UTC"
