"""Min/max per pixel of a cell's time series, for plots of millions of points.

A plot ``width`` pixels wide shows, per pixel column, the lowest and the highest value that
falls in it, at the times they were measured: every spike and every dip is drawn, with at most
two points per pixel. Where a view holds few points (a zoom), every point is returned.

To answer without reading millions of points per view, :class:`Envelope` keeps a summary of
the series in blocks of ``BLOCK`` consecutive points (each block's first and last time, and per
quantity its minimum and maximum with their times), built once from the store and extended as
the run commits more. A wide view is then cut from the blocks (exact: a block's extremes are
its points' extremes, at their own times); a view with fewer blocks than pixels reads the
points of its time range from the store.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

#: Points per summary block: 10 M points make 39 000 blocks (about 5 MB per cell).
BLOCK = 256
#: A view with at most this many points per pixel gets every point.
RAW_POINTS_PER_PIXEL = 2
QUANTITIES = ("voltage_V", "current_A", "temperature_C")
_BLOCK_FIELDS = ("t_first", "t_last", "id_first", "id_last",
                 *(f"{q}_{part}" for q in QUANTITIES for part in ("min", "max", "tmin",
                                                                   "tmax")))

#: Reads a cell's points with chunk ids in [first, last] (all quantities and test_time_s).
RawReader = Callable[[int, int], dict[str, np.ndarray]]


@dataclass(frozen=True)
class Trace:
    """One quantity's points of a view, in time order."""

    t_s: np.ndarray
    y: np.ndarray


@dataclass(frozen=True)
class SeriesView:
    t_first_s: float | None      # the whole series' span (None: no point yet)
    t_last_s: float | None
    t0_s: float                  # the view's span
    t1_s: float
    points_in_view: int
    every_point: bool            # False: min and max per pixel
    traces: dict[str, Trace]
    #: False while the cell's points are still being read for the first time (a long run's
    #: first view): the traces hold the points read so far, ``points_total`` says of how many
    complete: bool = True
    points_total: int | None = None


class Envelope:
    """The block summary of one cell's series (see the module docstring). Not thread-safe:
    its owner serialises calls."""

    def __init__(self) -> None:
        self.last_chunk_id = 0
        self.points = 0
        self._parts: dict[str, list[np.ndarray]] = {f: [] for f in _BLOCK_FIELDS}
        self._blocks: dict[str, np.ndarray] = {f: np.empty(0) for f in _BLOCK_FIELDS}
        self._tail: dict[str, np.ndarray] = {c: np.empty(0) for c in ("id", "test_time_s",
                                                                        *QUANTITIES)}

    def add(self, chunk_ids: np.ndarray, columns: dict[str, np.ndarray]) -> None:
        """Points committed after those added before: ``chunk_ids`` per point, and the columns
        ``test_time_s`` and :data:`QUANTITIES`."""
        if len(chunk_ids) == 0:
            return
        self.last_chunk_id = int(chunk_ids[-1])
        self.points += len(chunk_ids)
        merged = {"id": np.concatenate([self._tail["id"], chunk_ids.astype(float)])}
        for c in ("test_time_s", *QUANTITIES):
            merged[c] = np.concatenate([self._tail[c], columns[c]])
        full = len(merged["id"]) // BLOCK * BLOCK
        self._tail = {c: v[full:].copy() for c, v in merged.items()}
        if full == 0:
            return
        t = merged["test_time_s"][:full].reshape(-1, BLOCK)
        ids = merged["id"][:full].reshape(-1, BLOCK)
        rows = np.arange(len(t))
        add = self._parts
        add["t_first"].append(t[:, 0])
        add["t_last"].append(t[:, -1])
        add["id_first"].append(ids[:, 0])
        add["id_last"].append(ids[:, -1])
        for q in QUANTITIES:
            y = merged[q][:full].reshape(-1, BLOCK)
            blank = np.isnan(y)
            lo = np.where(blank, np.inf, y).argmin(axis=1)
            hi = np.where(blank, -np.inf, y).argmax(axis=1)
            empty = blank.all(axis=1)   # a block with no value (no probe): no extremes
            add[f"{q}_min"].append(np.where(empty, np.nan, y[rows, lo]))
            add[f"{q}_max"].append(np.where(empty, np.nan, y[rows, hi]))
            add[f"{q}_tmin"].append(t[rows, lo])
            add[f"{q}_tmax"].append(t[rows, hi])

    def span(self) -> tuple[float, float] | None:
        b = self._consolidated()
        firsts = [a[0] for a in (b["t_first"], self._tail["test_time_s"]) if len(a)]
        lasts = [a[-1] for a in (b["t_last"], self._tail["test_time_s"]) if len(a)]
        return (float(min(firsts)), float(max(lasts))) if firsts else None

    def view(self, t0: float | None, t1: float | None, width: int,
             read_raw: RawReader, coarse: bool = False) -> SeriesView:
        """The points to draw between ``t0`` and ``t1`` (None: the series' ends) on a plot
        ``width`` pixels wide. ``coarse``: where the view holds fewer blocks than pixels, their
        extremes rather than every point read again (a first, provisional view)."""
        span = self.span()
        if span is None:
            empty = {q: Trace(np.empty(0), np.empty(0)) for q in QUANTITIES}
            return SeriesView(None, None, t0 or 0.0, t1 or 0.0, 0, True, empty)
        t0 = span[0] if t0 is None else t0
        t1 = span[1] if t1 is None else t1
        b = self._consolidated()
        i0 = int(np.searchsorted(b["t_last"], t0, "left"))
        i1 = int(np.searchsorted(b["t_first"], t1, "right"))
        tail = self._tail
        in_tail = (tail["test_time_s"] >= t0) & (tail["test_time_s"] <= t1)
        blocks = max(i1 - i0, 0)
        points = blocks * BLOCK + int(in_tail.sum())
        few = blocks < width and not (coarse and blocks)
        if points <= RAW_POINTS_PER_PIXEL * width or few:
            raw = self._raw(b, [(i0, i1)] if blocks else [], read_raw)
            keep = (raw["test_time_s"] >= t0) & (raw["test_time_s"] <= t1)
            t = raw["test_time_s"][keep]
            every = len(t) <= RAW_POINTS_PER_PIXEL * width
            traces = {}
            for q in QUANTITIES:
                y = raw[q][keep]
                ok = ~np.isnan(y)
                traces[q] = Trace(t[ok], y[ok]) if every else \
                    _min_max_per_pixel(t[ok], y[ok], t0, t1, width)
            return SeriesView(span[0], span[1], t0, t1, len(t), every, traces)
        # A block narrower than a pixel gives its extremes; one wider (sparse sampling, or
        # cut by the view's edges) gives every point it holds.
        pixel_s = (t1 - t0) / width
        wide = (b["t_last"][i0:i1] - b["t_first"][i0:i1]) > pixel_s
        wide[0] |= b["t_first"][i0] < t0
        wide[-1] |= b["t_last"][i1 - 1] > t1
        raw = self._raw(b, _runs(wide, i0), read_raw)
        narrow = np.flatnonzero(~wide) + i0
        traces = {}
        for q in QUANTITIES:
            ct = np.concatenate([b[f"{q}_tmin"][narrow], b[f"{q}_tmax"][narrow],
                                 raw["test_time_s"]])
            cy = np.concatenate([b[f"{q}_min"][narrow], b[f"{q}_max"][narrow], raw[q]])
            ok = ~np.isnan(cy) & (ct >= t0) & (ct <= t1)
            traces[q] = _min_max_per_pixel(ct[ok], cy[ok], t0, t1, width)
        return SeriesView(span[0], span[1], t0, t1, points, False, traces)

    def _raw(self, b: dict[str, np.ndarray], ranges: list[tuple[int, int]],
             read_raw: RawReader) -> dict[str, np.ndarray]:
        """Every point of the blocks in ``ranges`` (``[start, end)`` block indices), from the
        store, then the tail in memory. Each read keeps its blocks' own points: a chunk split
        between two blocks, or between the last block and the tail, is not counted twice."""
        parts = []
        for start, end in ranges:
            got = read_raw(int(b["id_first"][start]), int(b["id_last"][end - 1]))
            t = got["test_time_s"]
            keep = (t >= b["t_first"][start]) & (t <= b["t_last"][end - 1])
            parts.append({c: got[c][keep] for c in ("test_time_s", *QUANTITIES)})
        parts.append({c: self._tail[c] for c in ("test_time_s", *QUANTITIES)})
        return {c: np.concatenate([p[c] for p in parts]) for c in parts[0]}

    def _consolidated(self) -> dict[str, np.ndarray]:
        if self._parts["t_first"]:
            for f in _BLOCK_FIELDS:
                self._blocks[f] = np.concatenate([self._blocks[f], *self._parts[f]])
                self._parts[f] = []
        return self._blocks


def _runs(flags: np.ndarray, offset: int) -> list[tuple[int, int]]:
    """``[start, end)`` index ranges (plus ``offset``) of the consecutive True flags."""
    edges = np.diff(np.r_[0, flags.astype(np.int8), 0])
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [(int(a) + offset, int(e) + offset) for a, e in zip(starts, ends, strict=True)]


def _min_max_per_pixel(t: np.ndarray, y: np.ndarray, t0: float, t1: float,
                       width: int) -> Trace:
    """The lowest and highest point in each of ``width`` equal time bins between ``t0`` and
    ``t1``, each at its own time, in time order (of equal lowest values the first, of equal
    highest the last). Linear in the points once they are in pixel order (a time series'
    points are: they are sorted only when not)."""
    if len(t) == 0:
        return Trace(t, y)
    scale = width / (t1 - t0) if t1 > t0 else 0.0
    pixel = np.clip(((t - t0) * scale).astype(np.int64), 0, width - 1)
    if len(pixel) > 1 and (np.diff(pixel) < 0).any():
        order = np.argsort(pixel, kind="stable")
        t, y, pixel = t[order], y[order], pixel[order]
    starts = np.flatnonzero(np.r_[True, pixel[1:] != pixel[:-1]])
    counts = np.diff(np.r_[starts, len(pixel)])
    index = np.arange(len(pixel))
    lows = np.repeat(np.minimum.reduceat(y, starts), counts)
    highs = np.repeat(np.maximum.reduceat(y, starts), counts)
    lo = np.minimum.reduceat(np.where(y == lows, index, len(pixel)), starts)
    hi = np.maximum.reduceat(np.where(y == highs, index, -1), starts)
    first = np.where(t[lo] <= t[hi], lo, hi)
    second = np.where(t[lo] <= t[hi], hi, lo)
    pick = np.column_stack([first, second]).ravel()
    single = np.repeat(first == second, 2)
    single[::2] = False                    # one point in the pixel: keep it once
    pick = pick[~single]
    return Trace(t[pick], y[pick])
