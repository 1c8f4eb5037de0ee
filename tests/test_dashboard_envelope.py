"""Min/max per pixel (sequencer.dashboard.envelope) against a brute-force reference."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from sequencer.dashboard.envelope import BLOCK, QUANTITIES, Envelope


def series(seed: int, n: int, sparse_from: int | None = None):
    """A noisy cycling voltage with spikes, a current, a temperature without a probe for a
    while (NaN); chunks of random sizes, as polls give them."""
    rng = np.random.default_rng(seed)
    dt = np.ones(n)
    if sparse_from is not None:
        dt[sparse_from:] = 600.0            # a long rest recorded every 10 min
    dt[rng.integers(0, n, 5)] = 5000.0       # soaks: nothing recorded
    t = np.cumsum(dt)
    v = 3.7 + 0.5 * np.sin(t / 3000) + rng.normal(0, 0.002, n)
    v[rng.integers(0, n, 20)] += rng.choice([-1.0, 1.0], 20)   # spikes a plot must show
    i = np.where(np.sin(t / 3000) > 0, 1e-3, -1e-3) + rng.normal(0, 1e-6, n)
    temp = 25 + rng.normal(0, 0.01, n)
    temp[n // 3: n // 2] = np.nan
    cuts = np.sort(rng.choice(np.arange(1, n), size=max(n // 700, 1), replace=False))
    ids = np.zeros(n)
    ids[cuts] = 1
    ids = np.cumsum(ids) + 1
    return ids, {"test_time_s": t, "voltage_V": v, "current_A": i, "temperature_C": temp}


def envelope_of(ids, cols, pieces: int = 7):
    env = Envelope()
    bounds = np.linspace(0, len(ids), pieces + 1).astype(int)
    for a, b in itertools.pairwise(bounds):   # as commits arrive
        # a poll's chunk is read whole: cut at chunk boundaries
        while 0 < a < len(ids) and ids[a] == ids[a - 1]:
            a += 1
        while 0 < b < len(ids) and ids[b] == ids[b - 1]:
            b += 1
        env.add(ids[a:b], {c: v[a:b] for c, v in cols.items()})
    return env


def reader(ids, cols, calls):
    def read_raw(first, last):
        calls.append((first, last))
        sel = (ids >= first) & (ids <= last)
        return {c: v[sel] for c, v in cols.items()}
    return read_raw


def reference(t, y, t0, t1, width):
    """Per pixel column: the lowest and the highest value of the points in it."""
    ok = ~np.isnan(y) & (t >= t0) & (t <= t1)
    t, y = t[ok], y[ok]
    pixel = np.clip(((t - t0) * width / (t1 - t0)).astype(int), 0, width - 1)
    return {p: (y[pixel == p].min(), y[pixel == p].max()) for p in np.unique(pixel)}


@pytest.mark.parametrize(("seed", "n", "sparse_from"), [(1, 200_000, None),
                                                        (2, 400_000, 300_000),
                                                        (3, 5_000, None)])
@pytest.mark.parametrize("zoom", [None, (0.30, 0.32), (0.5, 0.9), (0.01, 0.0102)])
def test_every_pixel_shows_its_lowest_and_highest_point(seed, n, sparse_from, zoom):
    ids, cols = series(seed, n, sparse_from)
    env = envelope_of(ids, cols)
    t = cols["test_time_s"]
    width = 800
    t0, t1 = (None, None) if zoom is None else \
        (t[0] + zoom[0] * (t[-1] - t[0]), t[0] + zoom[1] * (t[-1] - t[0]))
    calls: list = []
    view = env.view(t0, t1, width, reader(ids, cols, calls))
    lo, hi = (t[0], t[-1]) if zoom is None else (t0, t1)
    assert (view.t0_s, view.t1_s) == (lo, hi)
    assert (view.t_first_s, view.t_last_s) == (t[0], t[-1])
    in_view = int(((t >= lo) & (t <= hi)).sum())
    for q in QUANTITIES:
        trace = view.traces[q]
        y = cols[q]
        assert np.all(np.diff(trace.t_s) >= 0)                     # in time order
        # every point drawn is a measured point
        index = np.searchsorted(t, trace.t_s)
        assert np.array_equal(t[index], trace.t_s) and np.array_equal(y[index], trace.y)
        expected = reference(t, y, lo, hi, width)
        if view.every_point:
            assert len(trace.t_s) == int((~np.isnan(y) & (t >= lo) & (t <= hi)).sum())
            continue
        assert len(trace.t_s) <= 2 * width
        got = reference(trace.t_s, trace.y, lo, hi, width)
        assert got.keys() == expected.keys()                        # no pixel left empty
        assert got == expected                                      # nor a spike missed
    assert view.every_point == (in_view <= 2 * width)


def test_a_zoom_with_few_points_reads_them_all_from_the_store():
    ids, cols = series(4, 100_000)
    env = envelope_of(ids, cols)
    t = cols["test_time_s"]
    calls: list = []
    view = env.view(t[5000], t[5500], 1200, reader(ids, cols, calls))
    assert view.every_point and view.points_in_view == 501
    assert np.array_equal(view.traces["voltage_V"].y, cols["voltage_V"][5000:5501])
    assert calls and all(b - a < 10 for a, b in calls)   # only the chunks of the range


def test_a_wide_view_is_cut_from_the_blocks_without_reading_every_point():
    ids, cols = series(5, 400_000)
    env = envelope_of(ids, cols)
    calls: list = []
    view = env.view(None, None, 1000, reader(ids, cols, calls))
    assert not view.every_point and view.points_in_view == 400_000
    read = sum(int(((ids >= a) & (ids <= b)).sum()) for a, b in calls)
    assert read < 400_000 / 4         # the soaks' and the ends' blocks only


def test_points_added_piece_by_piece_give_what_all_at_once_give():
    ids, cols = series(6, 50_000)
    calls: list = []
    whole = envelope_of(ids, cols, pieces=1).view(None, None, 700, reader(ids, cols, calls))
    split = envelope_of(ids, cols, pieces=23).view(None, None, 700, reader(ids, cols, calls))
    for q in QUANTITIES:
        assert np.array_equal(whole.traces[q].t_s, split.traces[q].t_s)
        assert np.array_equal(whole.traces[q].y, split.traces[q].y)


def test_an_empty_series_and_a_short_one():
    env = Envelope()
    view = env.view(None, None, 500, lambda a, b: pytest.fail("nothing to read"))
    assert view.t_first_s is None and all(len(tr.t_s) == 0 for tr in view.traces.values())
    ids, cols = series(7, BLOCK - 1)
    env.add(ids, cols)
    view = env.view(None, None, 500, lambda a, b: pytest.fail("all in memory"))
    assert view.every_point and len(view.traces["voltage_V"].t_s) == BLOCK - 1


def test_a_coarse_first_view_draws_the_blocks_extremes_without_reading_points_again():
    """While a long run is still being read, its view over the whole run's span comes from
    the blocks read so far: fewer blocks than pixels, yet no point is read again and every
    block's extremes (every spike) are drawn."""
    ids, cols = series(5, 40 * BLOCK)
    env = envelope_of(ids, cols)
    t = cols["test_time_s"]
    whole_run_end = t[-1] * 500         # most of the run not read yet
    calls: list = []
    view = env.view(None, whole_run_end, 1000, reader(ids, cols, calls), coarse=True)
    assert calls == [] and not view.every_point
    assert view.t1_s == whole_run_end
    v = cols["voltage_V"]
    assert view.traces["voltage_V"].y.max() == v.max()
    assert view.traces["voltage_V"].y.min() == v.min()
    full = env.view(None, whole_run_end, 1000, reader(ids, cols, calls))
    assert calls                         # without coarse, those points are read again
    assert full.traces["voltage_V"].y.max() == v.max()
