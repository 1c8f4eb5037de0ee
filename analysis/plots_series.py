"""Figures of cycling series and of replicate cells (built as :mod:`analysis.plots` builds its
figures: ``Figure`` directly, thinned traces, whole-number cycle axes)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from numpy.typing import ArrayLike

from analysis.plots import (
    TWIN_RIGHT_IN,
    _colors,
    _pair,
    _single,
    capacity_label,
    decimate_minmax,
    fixed_layout,
)


def capacity_and_ce_series(
    series: Sequence[tuple[str, ArrayLike, ArrayLike, ArrayLike]],
    title: str = "Cycling",
    unit: str = "mAh/g",
) -> Figure:
    """Discharge capacity (left axis, filled; in ``unit``, mAh/g or a cell's own mAh) and
    coulombic efficiency (right axis, open)
    against cycle, one colour per ``(label, cycles, capacity_mAh_g, ce_percent)`` series. A
    NaN is not drawn (the caller says why elsewhere); a series with nothing to draw is left
    out of the legend."""
    fig, ax = _single(title)
    ce_ax = ax.twinx()
    fixed_layout(fig, right=TWIN_RIGHT_IN)
    q_all, ce_all = [], []
    for color, (label, cycles, capacity, ce) in zip(_colors(len(series)), series, strict=True):
        n_q, q = _pair(cycles, capacity, "cycles", "capacity_mAh_g")
        n_ce, c = _pair(cycles, ce, "cycles", "ce_percent")
        if q.size:
            ax.plot(*decimate_minmax(n_q, q), marker="o", markersize=3, linestyle="none",
                    color=color, label=label)
        if c.size:
            ce_ax.plot(*decimate_minmax(n_ce, c), marker="o", markersize=3,
                       markerfacecolor="none", linestyle="none", color=color)
        q_all.append(q)
        ce_all.append(c)
    q, c = np.concatenate(q_all or [np.empty(0)]), np.concatenate(ce_all or [np.empty(0)])
    ax.set_xlabel("Cycle")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))   # no cycle 2.5
    ax.set_ylabel(capacity_label(unit, "Discharge capacity", "Discharge capacity")
                  + " (filled)")
    ce_ax.set_ylabel("Coulombic efficiency / % (open)")
    if q.size:
        ax.set_ylim(0.0, max(float(q.max()), 0.0) * 1.08 or 1.0)
    if c.size:
        # CE sits near 100 %: a fixed floor keeps cycle-to-cycle noise from looking like fading.
        ce_ax.set_ylim(min(90.0, float(c.min()) - 2.0), max(102.0, float(c.max()) + 2.0))
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower left", fontsize=8, title="series", title_fontsize=8)
    return fig


def band(
    groups: Sequence[tuple[str, ArrayLike, ArrayLike, ArrayLike]],
    xlabel: str,
    ylabel: str,
    title: str = "",
    *,
    integer_x: bool = False,
) -> Figure:
    """Mean with a band of +-1 standard deviation, one per ``(label, x, mean, std)``: the
    replicate cells of one role."""
    fig, ax = _single(title)
    for color, (label, x, mean, std) in zip(_colors(len(groups)), groups, strict=True):
        xs, m = _pair(x, mean, "x", "mean", drop=False)
        _, s = _pair(x, std, "x", "std", drop=False)
        ok = np.isfinite(xs) & np.isfinite(m)
        xs, m, s = xs[ok], m[ok], np.where(np.isfinite(s[ok]), s[ok], 0.0)
        order = np.argsort(xs, kind="stable")
        xs, m, s = xs[order], m[order], s[order]
        ax.plot(xs, m, color=color, linewidth=1.2, marker="o" if xs.size < 40 else None,
                markersize=3, label=label)
        ax.fill_between(xs, m - s, m + s, color=color, alpha=0.25, linewidth=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if integer_x:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    return fig
