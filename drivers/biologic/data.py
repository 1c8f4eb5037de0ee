"""Decoding what ``get_data`` returns: a buffer of 32-bit words, read by the technique's layout.

A get_data call returns one block: ``DataInfo`` names the technique (``TechniqueID``) and its
process (``ProcessIndex``: PEIS and GEIS record the DC hold as process 0 and the spectrum as
process 1) and the shape (``NbRows`` x ``NbCols`` words). Time-series rows start with
``t_high, t_low``: t = StartTime + TimeBase * ((t_high << 32) + t_low), in s from the start of
the technique (``TimeBase`` comes with the block's ``CurrentValues``). Every other column is an
IEEE-754 single stored in the word, which is what ``BL_ConvertNumericIntoSingle`` returns on
VMP-300 boards (the "P" boards with kernel5 need the per-channel conversion and are not
supported), except counters such as ``cycle``.

Layouts follow easy-biologic 0.4's ``SP300_Fields``. The guide's VSCAN table lists Ec, <I> and
Ewe without an order for the VMP-300; both layouts in use are accepted, told apart by width.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from drivers.errors import DriverError
from drivers.points import Points

if TYPE_CHECKING:   # numpy where points are handled: not to check a station or plan a run
    import numpy as np

TECHNIQUE_NAMES = {100: "OCV", 101: "CA", 102: "CP", 104: "PEIS", 107: "GEIS", 124: "VSCAN",
                   155: "CPLIMIT", 157: "CALIMIT", 158: "VSCANLIMIT"}

_STEPS = ("t_high", "t_low", "Ewe", "I", "cycle")
_SCANS = (("t_high", "t_low", "I", "Ewe", "cycle"), ("t_high", "t_low", "Ec", "I", "Ewe", "cycle"))
_SPECTRUM = ("freq", "abs_Ewe", "abs_I", "Phase_Zwe", "Ewe", "I", "-", "abs_Ece", "abs_Ice",
             "Phase_Zce", "Ece", "-", "-", "t")
#: (technique id, process) -> the layouts it may have, told apart by their number of columns
LAYOUTS: dict[tuple[int, int], tuple[tuple[str, ...], ...]] = {
    (100, 0): (("t_high", "t_low", "Ewe"),),
    (101, 0): (_STEPS,), (102, 0): (_STEPS,), (155, 0): (_STEPS,), (157, 0): (_STEPS,),
    (124, 0): _SCANS, (158, 0): _SCANS,
    (104, 0): (("t_high", "t_low", "Ewe", "I"),), (107, 0): (("t_high", "t_low", "Ewe", "I"),),
    (104, 1): (_SPECTRUM,), (107, 1): (_SPECTRUM,),
}
_WORDS = {"t_high", "t_low", "cycle", "-"}   # columns that are not singles


@dataclass(frozen=True)
class Block:
    """One get_data block, decoded: its technique, process and columns (SI floats)."""

    technique_id: int
    technique_index: int
    process: int
    columns: dict[str, np.ndarray]

    @property
    def is_spectrum(self) -> bool:
        return "freq" in self.columns

    def points(self) -> Points:
        """Time-series rows as points, or spectrum rows with Z = |Ewe| / |I| exp(j Phase_Zwe):
        the phase of Z, negative on a capacitive arc, as our Points want."""
        import numpy as np

        c = self.columns
        n = len(c["time_s"])
        current = c.get("I", np.zeros(n))
        if not self.is_spectrum:
            return Points(time_s=c["time_s"], voltage_V=c["Ewe"], current_A=current)
        z = c["abs_Ewe"] / c["abs_I"] * np.exp(1j * c["Phase_Zwe"])
        return Points(time_s=c["time_s"], voltage_V=c["Ewe"], current_A=current,
                      frequency_Hz=c["freq"], z_real_ohm=z.real, z_imag_ohm=z.imag)


def decode(words: Sequence[int], info: Any, timebase_s: float) -> Block:
    """A block from the raw buffer, its ``DataInfo`` and the ``CurrentValues.TimeBase``."""
    import numpy as np

    rows, cols = int(info.NbRows), int(info.NbCols)
    tid, process = int(info.TechniqueID), int(info.ProcessIndex)
    name = TECHNIQUE_NAMES.get(tid, f"technique id {tid}")
    layouts = LAYOUTS.get((tid, process))
    if layouts is None:
        raise DriverError(f"get_data returned {name} process {process}, which this driver"
                          " does not decode")
    layout = next((lay for lay in layouts if len(lay) == cols), None)
    if layout is None:
        widths = " or ".join(str(len(lay)) for lay in layouts)
        raise DriverError(f"get_data returned {name} process {process} rows of {cols} columns;"
                          f" expected {widths}")
    raw = np.asarray(words[: rows * cols], dtype=np.uint32).reshape(rows, cols)
    columns: dict[str, np.ndarray] = {}
    for k, col in enumerate(layout):
        if col == "-":
            continue
        word = np.ascontiguousarray(raw[:, k])
        columns[col] = word.astype(np.int64) if col in _WORDS \
            else word.view(np.float32).astype(np.float64)
    if "t_high" in columns:
        start = float(info.StartTime)
        ticks = (columns.pop("t_high").astype(np.uint64) << np.uint64(32)) \
            + columns.pop("t_low").astype(np.uint64)
        columns["time_s"] = (0.0 if np.isnan(start) else start) + timebase_s * ticks
    else:
        columns["time_s"] = columns.pop("t")
    return Block(tid, int(info.TechniqueIndex), process, columns)


def concat(points: Sequence[Points]) -> Points:
    """One Points from several of the same kind (all series, or all spectrum)."""
    import numpy as np

    if not points:
        return Points.empty()
    if len(points) == 1:
        return points[0]
    names = points[0].columns().keys()
    return Points(**{k: np.concatenate([p.columns()[k] for p in points]) for k in names})
