"""Current and power profiles (drive cycles) read from CSV files.

A profile file has a header line and two columns: the time, from 0 and strictly increasing,
and the current or power (positive charges, as a current's sign). Each column's unit is
written in the header (``time (s),current (mA)`` or ``time [s],power [W]``) or declared by the
step (``time_unit``, ``value_unit``); a unit in both places must agree. pandas reads the file
(from the bytes the loader read through the bounded reader, which the run keeps); every row is
checked, and a problem names the file and its line: a missing or non-numeric value, NaN or
infinity, a time that does not increase, a header without units nothing declares. A blank line
in the middle is refused too, so line numbers are the file's own.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

from protocols.units import UnitError, parse_quantity

#: The largest profile file read (bytes) and the most rows it may hold.
MAX_PROFILE_BYTES = 8 * 1024 * 1024
MAX_PROFILE_ROWS = 200_000
_HEADER = re.compile(r"^\s*(?P<name>[^(\[]*?)\s*(?:[(\[]\s*(?P<unit>[^)\]]+?)\s*[)\]])?\s*$")
DIMENSION = {"current": "current", "power": "power"}


class ProfileFileError(ValueError):
    """A profile file that cannot be used: ``line`` (1-based, None: the whole file) and why."""

    def __init__(self, line: int | None, message: str) -> None:
        self.line, self.message = line, message
        super().__init__(f"line {line}: {message}" if line else message)


@dataclass(frozen=True)
class ProfileData:
    """A profile as read: SI times and values, and the file line of each row."""

    name: str
    times_s: tuple[float, ...]
    values: tuple[float, ...]
    #: the file line of the first data row (the rows follow one a line)
    first_line: int = 2

    def line_of(self, row: int) -> int:
        return self.first_line + row

    def peak_row(self) -> int:
        """The row of the largest |value|."""
        import numpy as np  # only a profile step needs it: not every protocol's load

        return int(np.argmax(np.abs(np.asarray(self.values))))


def _scale(header: str, declared: str | None, dimension: str, what: str) -> float:
    """SI value of one unit of a column, from its header or the step's declaration."""
    m = _HEADER.match(header)
    written = m["unit"] if m else None
    unit = written or declared
    if unit is None:
        raise ProfileFileError(1, f"the {what} column {header.strip()!r} gives no unit: write"
                                  f" it in the header ('{what} (s)') or declare it in the"
                                  f" step ({'time_unit' if what == 'time' else 'value_unit'})")
    try:
        scale = parse_quantity(f"1 {unit}", dimension)
    except UnitError as exc:
        raise ProfileFileError(1, f"the {what} column's unit {unit!r}: {exc}") from None
    if written and declared:
        try:
            other = parse_quantity(f"1 {declared}", dimension)
        except UnitError as exc:
            raise ProfileFileError(1, f"the declared unit {declared!r}: {exc}") from None
        if abs(other - scale) > 1e-12 * abs(scale):
            raise ProfileFileError(1, f"the header gives the {what} in {written!r}, the step"
                                      f" declares {declared!r}")
    return scale


def parse_profile(raw: bytes, name: str, quantity: str, time_unit: str | None = None,
                  value_unit: str | None = None) -> ProfileData:
    """The profile in ``raw`` (a CSV file's bytes); :class:`ProfileFileError` naming the line."""
    import numpy as np
    import pandas as pd  # heavy: only when a profile is read

    if len(raw) > MAX_PROFILE_BYTES:
        raise ProfileFileError(None, f"the file is larger than {MAX_PROFILE_BYTES:,} bytes")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ProfileFileError(raw[: exc.start].count(b"\n") + 1, "not UTF-8 text") from None
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False,
                            skip_blank_lines=False, nrows=MAX_PROFILE_ROWS + 1)
    except pd.errors.EmptyDataError:
        raise ProfileFileError(None, "the file is empty") from None
    except pd.errors.ParserError as exc:
        found = re.search(r"line (\d+)", str(exc))
        raise ProfileFileError(int(found[1]) if found else None,
                               f"not a CSV table of two columns ({exc})") from None
    if frame.shape[1] != 2:
        raise ProfileFileError(1, f"expected two columns (time, {quantity}), found"
                                  f" {frame.shape[1]}")
    if len(frame) > MAX_PROFILE_ROWS:
        raise ProfileFileError(None, f"more than {MAX_PROFILE_ROWS:,} rows (the limit)")
    if len(frame) < 2:
        raise ProfileFileError(None, "a profile needs at least two rows")
    headers = [str(c) for c in frame.columns]
    t_scale = _scale(headers[0], time_unit, "time", "time")
    v_scale = _scale(headers[1], value_unit, DIMENSION[quantity], quantity)
    columns = []
    for k, what in ((0, "time"), (1, quantity)):
        cells = frame.iloc[:, k].str.strip()
        numbers = pd.to_numeric(cells, errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(numbers)
        if bad.any():
            row = int(np.argmax(bad))
            shown = cells.iloc[row]
            why = "is empty" if shown == "" else f"{shown!r} is not a finite number"
            raise ProfileFileError(row + 2, f"the {what} {why}")
        columns.append(numbers)
    times = columns[0] * t_scale
    values = columns[1] * v_scale
    if times[0] != 0:
        raise ProfileFileError(2, f"the profile must start at time 0, not {columns[0][0]:g}")
    steps = np.diff(times)
    if (steps <= 0).any():
        row = int(np.argmax(steps <= 0)) + 1
        raise ProfileFileError(row + 2, f"time {columns[0][row]:g} does not increase (the row"
                                        f" before is at {columns[0][row - 1]:g})")
    return ProfileData(name, tuple(float(t) for t in times), tuple(float(v) for v in values))
