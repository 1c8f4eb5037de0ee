"""Cumulative charge and energy, integrated from the points themselves (trapezoid rule).

Kept in the sequencer, not in drivers: every instrument gets the same book-keeping, and the
counters are part of a cell's checkpoint so a resumed run continues them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:   # numpy for a run's points: the plan reads only the constants
    import numpy as np


SECONDS_PER_HOUR = 3600.0
_NAMES = ("charge_Ah", "discharge_Ah", "charge_Wh", "discharge_Wh")
#: Polls of at most this many points are summed in plain floats (see ``accumulate_few``).
SMALL_POLL = 16


@dataclass
class Counters:
    charge_Ah: float = 0.0
    discharge_Ah: float = 0.0
    charge_Wh: float = 0.0
    discharge_Wh: float = 0.0

    def accumulate(self, t: np.ndarray, v: np.ndarray, i: np.ndarray,
                   previous: tuple[float, float, float] | None) -> dict[str, np.ndarray]:
        """Counter values at each point; ``previous`` is the step's last (t, V, I) so far."""
        import numpy as np

        if len(t) <= SMALL_POLL:
            few = self.accumulate_few(t.tolist(), v.tolist(), i.tolist(), previous)
            return {name: np.array(row, dtype=np.float64) for name, row in few.items()}
        if previous is not None:   # one array for the three, where concatenating each costs more
            tvi = np.empty((3, len(t) + 1))
            tvi[:, 0] = previous
            tvi[0, 1:], tvi[1, 1:], tvi[2, 1:] = t, v, i
            t, v, i = tvi
        # as np.diff(t), the products of the trapezoids' ends each worked out once
        dt = (t[1:] - t[:-1]) / SECONDS_PER_HOUR
        power = v * i
        # one row per counter: its last value, then its increments; added one point after
        # another from the last value (a cumulative sum runs along each row in order), so
        # however the points were split into polls (a resumed run splits them elsewhere) the
        # sums are the same to the last bit. Each increment is max(+-dq or +-de, 0), worked
        # out in place: one array operation for all four rows, over the whole array (numpy
        # works through a contiguous one several times faster than through a view that skips
        # the first column), before the last values, which may be below 0 (a Wh counter at a
        # negative voltage), go into that first column.
        series = np.zeros((4, len(dt) + 1))
        np.multiply(0.5 * (i[1:] + i[:-1]), dt, out=series[0, 1:])
        np.negative(series[0, 1:], out=series[1, 1:])
        np.multiply(0.5 * (power[1:] + power[:-1]), dt, out=series[2, 1:])
        np.negative(series[2, 1:], out=series[3, 1:])
        np.maximum(series, 0.0, out=series)
        series[:, 0] = (self.charge_Ah, self.discharge_Ah, self.charge_Wh, self.discharge_Wh)
        np.add.accumulate(series, axis=1, out=series)   # np.cumsum's own sum, called directly
        if previous is not None:
            series = series[:, 1:]
        if series.shape[1]:
            (self.charge_Ah, self.discharge_Ah, self.charge_Wh,
             self.discharge_Wh) = series[:, -1].tolist()
        return dict(zip(_NAMES, series, strict=True))

    def accumulate_few(self, t: list[float], v: list[float], i: list[float],
                       previous: tuple[float, float, float] | None) -> dict[str, list[float]]:
        """:meth:`accumulate` for a poll of a few points, in plain floats and giving lists
        (numpy's set-up costs more than the sums): the same operations in the same order, so
        the same bits."""
        q_in, q_out, e_in, e_out = (self.charge_Ah, self.discharge_Ah, self.charge_Wh,
                                    self.discharge_Wh)
        if previous is None:
            col_q_in, col_q_out, col_e_in, col_e_out = [q_in], [q_out], [e_in], [e_out]
            t0, v0, i0 = t[0], v[0], i[0]
            t, v, i = t[1:], v[1:], i[1:]
        else:
            col_q_in, col_q_out, col_e_in, col_e_out = [], [], [], []
            t0, v0, i0 = previous
        p0 = v0 * i0
        for t1, v1, i1 in zip(t, v, i, strict=True):
            dt = (t1 - t0) / SECONDS_PER_HOUR
            p1 = v1 * i1
            dq = 0.5 * (i1 + i0) * dt
            de = 0.5 * (p1 + p0) * dt
            # each increment is np.maximum(+-dq or +-de, 0) of one value, written out (a call
            # per value costs a third more): a NaN stays itself, zero and below add +0.0
            q_in += dq if dq > 0.0 or dq != dq else 0.0
            q_out += -dq if -dq > 0.0 or dq != dq else 0.0
            e_in += de if de > 0.0 or de != de else 0.0
            e_out += -de if -de > 0.0 or de != de else 0.0
            col_q_in.append(q_in)
            col_q_out.append(q_out)
            col_e_in.append(e_in)
            col_e_out.append(e_out)
            t0, i0, p0 = t1, i1, p1
        self.charge_Ah, self.discharge_Ah, self.charge_Wh, self.discharge_Wh = \
            q_in, q_out, e_in, e_out
        return {"charge_Ah": col_q_in, "discharge_Ah": col_q_out, "charge_Wh": col_e_in,
                "discharge_Wh": col_e_out}

    def hold(self, previous: tuple[float, float, float], until_t: float) -> None:
        """Count ``previous``'s current (and power) held from its time to ``until_t``: what a
        channel passed after its last recorded point before its output went off."""
        t, v, i = previous
        dq = i * (until_t - t) / SECONDS_PER_HOUR
        if dq >= 0:
            self.charge_Ah += dq
            self.charge_Wh += v * dq
        else:
            self.discharge_Ah -= dq
            self.discharge_Wh -= v * dq

    def as_dict(self) -> dict[str, float]:
        return {"charge_Ah": self.charge_Ah, "discharge_Ah": self.discharge_Ah,
                "charge_Wh": self.charge_Wh, "discharge_Wh": self.discharge_Wh}
