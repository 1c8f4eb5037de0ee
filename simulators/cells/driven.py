"""Constant power, constant resistance and current or power profiles on any simulated cell.

A cell model answers constant currents exactly; these techniques drive a current that the
cell's own voltage decides (I = P / V, I = -V / R) or that follows a table. Each becomes a
chain of short constant-current pieces: a piece's current is set from the voltage it produces
(solved by a few fixed-point passes at the piece's middle, so the power or load is met there),
and a profile's piece carries the mean of the linearly interpolated profile over the piece (so
the charge it passes is the profile's integral exactly). The chain is run when the technique
begins, each piece tabulated as it runs, and the cell put back as it was: a running segment
changes nothing until :meth:`Segment.finish`, which runs the pieces again up to the time the
technique ran.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np

from drivers.techniques import (
    ConstantCurrent,
    ConstantPower,
    ConstantResistance,
    DrivenTechnique,
    Profile,
)
from simulators.cells.base import CellModel, Segment

#: The longest piece of a power or load chain (s), and the fewest pieces a step is cut into.
MAX_PIECE_S = 10.0
MIN_PIECES = 50
#: The most pieces one technique is cut into (bounds the work of a long step).
MAX_PIECES = 20_000
#: Points tabulated in each piece (its start, its end and these between).
POINTS_PER_PIECE = 5
#: Fixed-point passes for the current of a power or load piece.
PASSES = 3
#: Below this voltage a power cannot be held (the current would grow without bound).
MIN_HOLD_V = 1e-3


class ChainSegment(Segment):
    """The chain's response: tabulated pieces, sampled by linear interpolation inside each."""

    pointwise = True

    def __init__(self, cell: CellModel, temperature_C: float, starts: np.ndarray,
                 lengths: np.ndarray, currents: np.ndarray, table_V: np.ndarray,
                 end_reason: str) -> None:
        self._cell, self._temperature = cell, temperature_C
        self._starts, self._lengths, self._currents = starts, lengths, currents
        self._table = table_V
        self.duration_s = float(starts[-1] + lengths[-1]) if len(starts) else 0.0
        self.end_reason = end_reason
        self._finished = False

    def sample(self, t_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        t = np.clip(np.asarray(t_s, dtype=float), 0.0, self.duration_s)
        if not len(self._starts):
            return np.full(t.shape, math.nan), np.zeros(t.shape)
        k = np.clip(np.searchsorted(self._starts, t, side="right") - 1, 0, len(self._starts) - 1)
        frac = np.clip((t - self._starts[k]) / np.maximum(self._lengths[k], 1e-300), 0.0, 1.0)
        x = frac * (POINTS_PER_PIECE - 1)
        j = np.minimum(np.floor(x).astype(int), POINTS_PER_PIECE - 2)
        w = x - j
        v = self._table[k, j] * (1 - w) + self._table[k, j + 1] * w
        return v, self._currents[k].astype(float)

    def finish(self, elapsed_s: float) -> None:
        if self._finished:
            raise RuntimeError("this segment has already been finished")
        self._finished = True
        left = min(max(float(elapsed_s), 0.0), self.duration_s)
        for length, current in zip(self._lengths, self._currents, strict=True):
            if left <= 0:
                break
            run = min(float(length), left)
            _piece(self._cell, float(current), run, None, self._temperature).finish(run)
            left -= run


def _piece(cell: CellModel, current_A: float, length_s: float, until_V: float | None,
           temperature_C: float) -> Segment:
    return cell.begin(ConstantCurrent(current_A=current_A, duration_s=length_s,
                                      record_dt_s=length_s, until_voltage_V=until_V),
                      temperature_C)


def _grid(technique: DrivenTechnique) -> np.ndarray:
    """The pieces' boundaries, from 0 to the technique's duration."""
    duration = float(technique.duration_s)
    if isinstance(technique, Profile):
        knots = np.asarray(technique.times_s, dtype=float)
        longest = max(duration / MAX_PIECES, min(MAX_PIECE_S, technique.record_dt_s))
        cuts = [knots]
        gaps = np.diff(knots)
        for a, gap in zip(knots[:-1], gaps, strict=True):
            n = math.ceil(gap / longest - 1e-9)
            if n > 1:
                cuts.append(a + gap * np.arange(1, n) / n)
        return np.unique(np.concatenate(cuts))
    length = min(MAX_PIECE_S, technique.record_dt_s, duration / MIN_PIECES)
    length = max(length, duration / MAX_PIECES)
    n = max(1, math.ceil(duration / length - 1e-9))
    return np.linspace(0.0, duration, n + 1)


def _profile_mean(technique: Profile, a: float, b: float) -> float:
    """Mean of the linearly interpolated profile over [a, b] (exact: trapezoids on its knots)."""
    knots = np.asarray(technique.times_s, dtype=float)
    inner = knots[(knots > a) & (knots < b)]
    t = np.concatenate(([a], inner, [b]))
    y = np.interp(t, knots, np.asarray(technique.values, dtype=float))
    return float(np.trapezoid(y, t) / (b - a))


def _limit(technique: DrivenTechnique, current_A: float) -> float | None:
    """The voltage at which a piece drawing ``current_A`` ends the technique."""
    if isinstance(technique, Profile):
        return technique.max_voltage_V if current_A > 0 else technique.min_voltage_V
    return technique.until_voltage_V


def _current_rule(technique: DrivenTechnique) -> Callable[[float, float, float], float]:
    """(piece start, piece end, voltage) -> the piece's current."""
    if isinstance(technique, ConstantPower):
        return lambda _a, _b, v: technique.power_W / v
    if isinstance(technique, ConstantResistance):
        return lambda _a, _b, v: -v / technique.resistance_ohm
    if technique.quantity == "power":
        return lambda a, b, v: _profile_mean(technique, a, b) / v
    return lambda a, b, _v: _profile_mean(technique, a, b)


def begin_driven(cell: CellModel, technique: DrivenTechnique,
                 temperature_C: float) -> ChainSegment:
    """The chain of pieces for ``technique`` on ``cell``, the cell left as it was."""
    rule = _current_rule(technique)
    voltage_led = not (isinstance(technique, Profile) and technique.quantity == "current")
    edges = _grid(technique)
    saved = cell.state()
    starts: list[float] = []
    lengths: list[float] = []
    currents: list[float] = []
    rows: list[np.ndarray] = []
    reason = "duration"
    v_now = cell.ocv_V(temperature_C)
    fractions = np.linspace(0.0, 1.0, POINTS_PER_PIECE)
    try:
        for a, b in itertools.pairwise(edges):
            length = float(b - a)
            if voltage_led and v_now <= MIN_HOLD_V:
                reason = "compliance"
                break
            current = rule(a, b, v_now)
            if voltage_led:
                for _ in range(PASSES):
                    trial = _piece(cell, current, length, None, temperature_C)
                    v_mid = float(trial.sample(np.array([0.5 * length]))[0][0])
                    if v_mid <= MIN_HOLD_V:
                        break
                    current = rule(a, b, v_mid)
            seg = _piece(cell, current, length, _limit(technique, current), temperature_C)
            ran = float(seg.duration_s)
            table = seg.sample(fractions * ran)[0]
            starts.append(float(a))
            lengths.append(ran)
            currents.append(current)
            rows.append(np.asarray(table, dtype=float))
            seg.finish(ran)
            v_now = float(table[-1])
            if ran < length * (1 - 1e-12) or seg.end_reason == "voltage":
                reason = "voltage"
                break
    finally:
        cell.restore(saved)
    table_V = np.vstack(rows) if rows else np.empty((0, POINTS_PER_PIECE))
    return ChainSegment(cell, temperature_C, np.asarray(starts), np.asarray(lengths),
                        np.asarray(currents), table_V, reason)
