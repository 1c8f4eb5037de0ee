"""The report's figures: pure functions from arrays to ``matplotlib.figure.Figure``.

Figures are built with ``Figure`` directly, never through pyplot: no global figure registry, no
interactive backend, nothing to leak between calls, and the module works the same in a test, a
headless CI job or a notebook. Saving a figure picks the Agg renderer by file format.

Long traces are thinned by :func:`decimate_minmax` before plotting: a 1200 h symmetric-cell run
sampled every second is over a million points, far more than a figure has pixel columns. Keeping
the minimum and the maximum of each bin draws the same envelope (spikes, short circuits and
overpotential extremes stay visible) in a few thousand points.

Units travel in argument names (``t_h``, ``i_A``, ``capacity_mAh_g``). Arrays of different
lengths are an :class:`AnalysisError`; non-finite points are dropped (they cannot be drawn).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.figure import Figure
from matplotlib.ticker import LogFormatterSciNotation, MaxNLocator
from numpy.typing import ArrayLike

from analysis.eis import ZERO_CELSIUS_K, BOLTZMANN_eV_PER_K
from analysis.errors import AnalysisError

#: Points kept per trace: about two per pixel column of a figure saved at report size.
DEFAULT_MAX_POINTS = 4000
#: Report figure size in inches (width, height of one panel).
PANEL_SIZE_IN = (6.4, 4.2)
#: Fixed margins around the panels, in inches (left, right, bottom, top): room on the left for
#: tick labels of up to about eight characters and the axis label, below for a row of tick
#: labels and the axis label, above for a title. A layout engine that measures every label
#: before drawing (matplotlib's constrained layout) costs about a quarter of a figure's
#: drawing time, for labels whose size is known in advance.
MARGINS_IN = (0.95, 0.25, 0.6, 0.4)
#: The right margin of a panel with a second y axis (its tick labels and label).
TWIN_RIGHT_IN = 0.95
#: More traces than this get a sequential colour map (e.g. spectra over days) instead of tab10.
_MAX_QUALITATIVE = 10

_FloatArray = npt.NDArray[np.float64]


# --------------------------------------------------------------------------- decimation


def decimate_minmax(
    x: ArrayLike, y: ArrayLike, max_points: int = DEFAULT_MAX_POINTS
) -> tuple[_FloatArray, _FloatArray]:
    """At most ``max_points`` of (x, y), in input order, keeping each bin's min and max of y.

    Bins are consecutive runs of points (by index, not by x), so the result is valid for any
    path: a time series, a Nyquist arc, a charge-discharge curve. The first and last points, and
    the global minimum and maximum of y, are always kept. Non-finite pairs are dropped first.
    Inputs with no more than ``max_points`` finite points are returned unchanged (as floats).
    """
    if max_points < 4:
        raise AnalysisError(f"max_points must be at least 4, got {max_points}")
    xs, ys = _pair(x, y, "x", "y")
    n = ys.size
    if n <= max_points:
        return xs, ys
    n_bins = (max_points - 2) // 2  # two points per bin, plus the first and last points
    size = math.ceil(n / n_bins)
    rows = math.ceil(n / size)
    padded = np.pad(ys, (0, rows * size - n), mode="edge").reshape(rows, size)
    offsets = np.arange(rows) * size
    lows = np.minimum(offsets + padded.argmin(axis=1), n - 1)
    highs = np.minimum(offsets + padded.argmax(axis=1), n - 1)
    keep = np.unique(np.concatenate(([0, n - 1], lows, highs)))
    return xs[keep], ys[keep]


# --------------------------------------------------------------------------- figures


def nyquist(
    spectra: Sequence[tuple[str, ArrayLike, ArrayLike, ArrayLike]],
    title: str = "Impedance",
    r_bulk_ohm: Mapping[str, float] | None = None,
    max_ohm: float | None = None,
) -> Figure:
    """-Im Z against Re Z, one trace per ``(label, frequency_Hz, z_real_ohm, z_imag_ohm)``.

    Points are drawn from high to low frequency whatever the input order. Equal aspect, so a
    semicircle looks like one. ``r_bulk_ohm`` maps a label to its fitted bulk resistance, drawn
    as a cross on the real axis in the trace's colour and quoted in the legend. ``max_ohm``
    shows Re Z from 0 to max_ohm (and -Im Z to 0.6 max_ohm): the capacitive tail of a blocking
    cell otherwise dwarfs the arcs.
    """
    r_bulk_ohm = dict(r_bulk_ohm or {})
    unknown = sorted(set(r_bulk_ohm) - {label for label, *_ in spectra})
    if unknown:
        raise AnalysisError(f"r_bulk_ohm names traces that are not in spectra: {unknown}")
    fig, ax = _single(title)
    for color, (label, freq, real, imag) in zip(_colors(len(spectra)), spectra, strict=True):
        f = _as_float(freq, f"frequency of {label!r}")
        re, im = _pair(real, imag, f"Re Z of {label!r}", f"Im Z of {label!r}", drop=False)
        if f.shape != re.shape:
            raise AnalysisError(
                f"frequency and Z of {label!r} differ in length ({f.size} vs {re.size})"
            )
        order = np.argsort(-f, kind="stable")
        re, minus_im = decimate_minmax(re[order], -im[order])
        name = label
        if label in r_bulk_ohm:
            rb = float(r_bulk_ohm[label])
            name = f"{label} (R_b = {rb:.4g} Ω)"
            ax.plot([rb], [0.0], marker="x", markersize=9, mew=2, color=color, linestyle="none")
        ax.plot(re, minus_im, marker="o", markersize=3, linewidth=1, color=color, label=name)
    ax.set_xlabel("Re Z / Ω")
    ax.set_ylabel("−Im Z / Ω")
    if max_ohm is None:
        ax.set_aspect("equal", adjustable="datalim")
    else:
        if not (math.isfinite(max_ohm) and max_ohm > 0):
            raise AnalysisError(f"max_ohm must be a positive number, got {max_ohm!r}")
        # Fixed limits, so the box takes the aspect; the height fits the panel's proportions.
        ax.set_xlim(0.0, max_ohm)
        ax.set_ylim(-0.05 * max_ohm, 0.6 * max_ohm)
        ax.set_aspect("equal", adjustable="box")
    _legend(ax)
    return fig


def arrhenius(
    series: Mapping[str, tuple[ArrayLike, ArrayLike]],
    fits: Mapping[str, tuple[float, float]] | None = None,
    title: str = "Arrhenius plot",
) -> Figure:
    """log10(sigma) against 1000/T: ``series`` maps a label to (temperatures_C, sigma_mS_cm).

    ``fits`` maps a label to (Ea_eV, sigma0_mS_cm) of sigma = sigma0 exp(-Ea / kT), the form
    :func:`analysis.eis.arrhenius_fit` returns; each is drawn as a line over its series'
    temperature range, with Ea in the legend. The top axis reads in degC.
    """
    fits = dict(fits or {})
    unknown = sorted(set(fits) - set(series))
    if unknown:
        raise AnalysisError(f"fits names series that are not in series: {unknown}")
    fig, ax = _single(title)
    for color, (label, (temps_C, sigma)) in zip(_colors(len(series)), series.items(), strict=True):
        t, s = _pair(temps_C, sigma, f"temperatures of {label!r}", f"conductivities of {label!r}")
        if np.any(s <= 0) or np.any(t <= -ZERO_CELSIUS_K):
            raise AnalysisError(
                f"{label!r}: conductivities must be positive and temperatures above -273.15 degC"
            )
        kelvin = t + ZERO_CELSIUS_K
        name = label
        if label in fits:
            ea_eV, sigma0 = (float(v) for v in fits[label])
            if not (math.isfinite(ea_eV) and math.isfinite(sigma0) and sigma0 > 0):
                raise AnalysisError(
                    f"fit of {label!r} needs a finite Ea and a positive sigma0, "
                    f"got ({ea_eV!r}, {sigma0!r})"
                )
            name = f"{label} (Eₐ = {ea_eV:.3f} eV)"
            if t.size:
                k_line = np.linspace(kelvin.min(), kelvin.max(), 50)
                log_sigma = np.log10(sigma0) - ea_eV / (BOLTZMANN_eV_PER_K * k_line * np.log(10))
                ax.plot(1000.0 / k_line, log_sigma, color=color, linewidth=1.2)
        ax.plot(1000.0 / kelvin, np.log10(s), marker="o", linestyle="none", color=color,
                label=name)
    ax.set_xlabel("1000 / T / K⁻¹")
    ax.set_ylabel("log₁₀(σ / mS cm⁻¹)")
    top = ax.secondary_xaxis("top", functions=(_kK_inv_to_C, _C_to_kK_inv))
    top.set_xlabel("T / °C")
    fixed_layout(fig, top=MARGINS_IN[3] + 0.5)   # the top axis's tick labels and label
    _legend(ax)
    return fig


def ca_decay(
    t_s: ArrayLike, i_A: ArrayLike, i0: float, iss: float, title: str = "Chronoamperometry"
) -> Figure:
    """Current against time with the initial (I0) and steady-state (Iss) currents marked.

    The current axis is scaled to A, mA, µA or nA by the largest current shown.
    """
    t, i = decimate_minmax(*_pair(t_s, i_A, "t_s", "i_A"))
    factor, unit = _current_scale(np.concatenate((np.abs(i), [abs(i0), abs(iss)])))
    fig, ax = _single(title)
    ax.plot(t, i * factor, color="C0", linewidth=1, label="current")
    ax.axhline(i0 * factor, color="C3", linestyle="--", linewidth=1,
               label=f"I₀ = {i0 * factor:.4g} {unit}")
    ax.axhline(iss * factor, color="C2", linestyle=":", linewidth=1.5,
               label=f"Iₛₛ = {iss * factor:.4g} {unit}")
    ax.set_xlabel("Time / s")
    ax.set_ylabel(f"Current / {unit}")
    _legend(ax)
    return fig


def voltage_vs_time(
    t_h: ArrayLike,
    v: ArrayLike,
    windows: Sequence[tuple[float, float]] = (),
    title: str = "Voltage",
    max_points: int = DEFAULT_MAX_POINTS,
) -> Figure:
    """The full trace on top, and one zoomed panel per ``(t0_h, t1_h)`` window below it.

    Windows are shaded on the full trace and numbered in both places. Each zoom is decimated
    from the raw points inside it, so it shows detail the full trace thins away (single
    plating/stripping cycles of a 1200 h symmetric cell).
    """
    t, volts = _pair(t_h, v, "t_h", "v")
    for k, (t0, t1) in enumerate(windows, start=1):
        if not (math.isfinite(t0) and math.isfinite(t1) and t0 < t1):
            raise AnalysisError(f"window {k} must have t0_h < t1_h, got ({t0!r}, {t1!r})")
    cols = min(len(windows), 4)
    zoom_rows = math.ceil(len(windows) / 4) if windows else 0
    width, height = PANEL_SIZE_IN
    fig = Figure(figsize=(max(width, 3.2 * cols), height + 2.8 * zoom_rows))
    fig.suptitle(title)
    grid = fig.add_gridspec(1 + zoom_rows, max(cols, 1), height_ratios=[1.5] + [1] * zoom_rows)
    # below the full trace its axis label, above each zoom its title; zooms share a y label
    fixed_layout(fig, top=MARGINS_IN[3] + 0.05, rows=1 + zoom_rows, cols=max(cols, 1),
                 row_gap_in=0.9, col_gap_in=0.6)
    full = fig.add_subplot(grid[0, :])
    full.plot(*decimate_minmax(t, volts, max_points), color="C0", linewidth=0.8)
    full.set_xlabel("Time / h")
    full.set_ylabel("Voltage / V")
    for k, (t0, t1) in enumerate(windows, start=1):
        full.axvspan(t0, t1, color="C1", alpha=0.25, linewidth=0)
        full.annotate(str(k), xy=(t0, 1.0), xycoords=("data", "axes fraction"),
                      ha="left", va="top", fontsize=8, color="C1")
        zoom = fig.add_subplot(grid[1 + (k - 1) // 4, (k - 1) % 4])
        inside = (t >= t0) & (t <= t1)
        if inside.any():
            zoom.plot(*decimate_minmax(t[inside], volts[inside], max_points), color="C0",
                      linewidth=0.8)
        else:
            zoom.text(0.5, 0.5, "no data", ha="center", va="center", transform=zoom.transAxes)
        zoom.set_xlim(t0, t1)
        zoom.set_title(f"{k}: {t0:g}–{t1:g} h", fontsize=9)
        zoom.set_xlabel("Time / h")
        if (k - 1) % 4 == 0:
            zoom.set_ylabel("Voltage / V")
    _grid(*fig.axes)
    return fig


def capacity_label(unit: str, specific: str, whole: str) -> str:
    """An axis label for a capacity in ``unit``: "mAh/g" (per gram of cathode) or "mAh" (a
    cell known by its nominal capacity)."""
    return f"{specific} / mAh g⁻¹" if unit == "mAh/g" else f"{whole} / {unit}"


def voltage_vs_capacity(
    curves: Sequence[tuple[str, ArrayLike, ArrayLike]],
    title: str = "Voltage profiles",
    unit: str = "mAh/g",
) -> Figure:
    """Voltage against specific capacity, one trace per ``(label, capacity_mAh_g, v)``
    (``unit`` "mAh": a cell's own capacity in mAh instead).

    A trace usually holds a charge and a discharge, each counted from zero; where capacity jumps
    back by more than half its range a new segment starts, so no line joins the end of the
    charge to the start of the discharge.
    """
    fig, ax = _single(title)
    for color, (label, capacity, volts) in zip(_colors(len(curves)), curves, strict=True):
        q, u = decimate_minmax(*_pair(capacity, volts, f"capacity of {label!r}", f"v of {label!r}"))
        ax.plot(*_break_at_resets(q, u), color=color, linewidth=1.2, label=label)
    ax.set_xlabel(capacity_label(unit, "Specific capacity", "Capacity"))
    ax.set_ylabel("Voltage / V")
    _legend(ax)
    return fig


def capacity_and_ce(
    cycles: ArrayLike,
    capacity_mAh_g: ArrayLike,
    ce_percent: ArrayLike,
    title: str = "Cycling",
) -> Figure:
    """Discharge capacity (left axis, filled) and coulombic efficiency (right axis, open),
    against whole cycle numbers. A NaN is not drawn: pass NaN for a value that is not a
    physical number (the caller says why elsewhere)."""
    n_q, q = _pair(cycles, capacity_mAh_g, "cycles", "capacity_mAh_g")
    n_ce, ce = _pair(cycles, ce_percent, "cycles", "ce_percent")
    fig, ax = _single(title)
    ce_ax = ax.twinx()
    fixed_layout(fig, right=TWIN_RIGHT_IN)
    ax.plot(*decimate_minmax(n_q, q), marker="o", markersize=3, linestyle="none", color="C0",
            label="discharge capacity")
    ce_ax.plot(*decimate_minmax(n_ce, ce), marker="o", markersize=3, markerfacecolor="none",
               linestyle="none", color="C3", label="coulombic efficiency")
    ax.set_xlabel("Cycle")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))   # no cycle 2.5
    ax.set_ylabel("Discharge capacity / mAh g⁻¹", color="C0")
    ce_ax.set_ylabel("Coulombic efficiency / %", color="C3")
    if q.size:
        ax.set_ylim(0.0, max(float(q.max()), 0.0) * 1.08 or 1.0)
    if ce.size:
        # CE sits near 100 %: a fixed floor keeps cycle-to-cycle noise from looking like fading.
        ce_ax.set_ylim(min(90.0, float(ce.min()) - 2.0), max(102.0, float(ce.max()) + 2.0))
    handles = ax.get_legend_handles_labels()[0] + ce_ax.get_legend_handles_labels()[0]
    if q.size or ce.size:
        ax.legend(handles=handles, loc="lower left", fontsize=8)
    return fig


def generic_xy(
    series: Sequence[tuple[str, ArrayLike, ArrayLike]],
    xlabel: str,
    ylabel: str,
    title: str = "",
    *,
    markers: bool = False,
    logx: bool = False,
    logy: bool = False,
    integer_x: bool = False,
) -> Figure:
    """Any other ``(label, x, y)`` traces on one axes: LSV current density against voltage,
    interfacial resistance against days, overpotential against current density, ...

    ``markers`` draws the points as well as the line (for sparse series such as one value a
    day). Log axes drop non-positive values from view (matplotlib masks them). ``integer_x``
    puts ticks on whole numbers only (cycles, pulses).
    """
    fig, ax = _single(title)
    for color, (label, x, y) in zip(_colors(len(series)), series, strict=True):
        xs, ys = decimate_minmax(*_pair(x, y, f"x of {label!r}", f"y of {label!r}"))
        ax.plot(xs, ys, color=color, linewidth=1.2, label=label,
                marker="o" if markers else None, markersize=4)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if integer_x:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if logx:
        ax.set_xscale("log")
        unicode_log_labels(ax.xaxis)
    if logy:
        ax.set_yscale("log")
        unicode_log_labels(ax.yaxis)
    _legend(ax)
    return fig


# --------------------------------------------------------------------------- helpers


def _single(title: str) -> tuple[Figure, Axes]:
    fig = Figure(figsize=PANEL_SIZE_IN)
    ax = fig.add_subplot()
    fixed_layout(fig, top=MARGINS_IN[3] if title else 0.2)
    if title:
        ax.set_title(title)
    _grid(ax)
    return fig, ax


def fixed_layout(fig: Figure, *, left: float = MARGINS_IN[0], right: float = MARGINS_IN[1],
                 bottom: float = MARGINS_IN[2], top: float = MARGINS_IN[3], rows: int = 1,
                 cols: int = 1, row_gap_in: float = 0.0, col_gap_in: float = 0.0) -> None:
    """Place the figure's grid of panels by margins and gaps in inches (see
    :data:`MARGINS_IN`), whatever the figure's size; nothing is measured when it is drawn."""
    width, height = fig.get_size_inches()
    inner_w, inner_h = width - left - right, height - bottom - top
    panel_w = (inner_w - col_gap_in * (cols - 1)) / cols
    panel_h = (inner_h - row_gap_in * (rows - 1)) / rows
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height,
                        top=1 - top / height, wspace=col_gap_in / panel_w if cols > 1 else None,
                        hspace=row_gap_in / panel_h if rows > 1 else None)


def unicode_log_labels(axis: Axis) -> None:
    """The tick labels of a log10 axis as 10⁻⁵, 2×10⁻⁵ in Unicode characters: the labels
    matplotlib writes as mathtext (``$\\mathdefault{10^{-5}}$``), without the mathtext
    parser, which each process drawing one builds anew (a tenth of a second)."""
    axis.set_major_formatter(_UnicodeLogFormatter(10.0))
    axis.set_minor_formatter(_UnicodeLogFormatter(10.0, labelOnlyBase=False))


class _UnicodeLogFormatter(LogFormatterSciNotation):
    """matplotlib's log-axis tick labels, turned from mathtext into plain Unicode text; a
    label of a form not known here is left as mathtext (drawn as before, only slower)."""

    def __call__(self, x: float, pos: int | None = None) -> str:
        return unicode_power_label(super().__call__(x, pos))


_MATHTEXT_POWER = re.compile(
    r"^\$\\mathdefault\{(-?)(?:([0-9.]+)\\times)?([0-9.]+)(?:\^\{(-?[0-9]+)\})?\}\$$")
_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def unicode_power_label(label: str) -> str:
    """``$\\mathdefault{-2\\times10^{-5}}$`` as ``−2×10⁻⁵`` (and ``$\\mathdefault{0.1}$`` as
    ``0.1``); any other label unchanged."""
    match = _MATHTEXT_POWER.match(label)
    if match is None:
        return label
    sign, coefficient, base, exponent = match.groups()
    text = ("−" if sign else "") + (f"{coefficient}×" if coefficient else "") + base
    return text + exponent.translate(_SUPERSCRIPT) if exponent is not None else text


def _grid(*axes: Axes) -> None:
    for ax in axes:
        ax.grid(True, color="0.9", linewidth=0.6)
        ax.set_axisbelow(True)


def _legend(ax: Axes) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, ncols=2 if len(ax.get_legend_handles_labels()[0]) > 8 else 1)


def _colors(n: int) -> list[tuple[float, float, float, float]]:
    if n <= _MAX_QUALITATIVE:
        return [colormaps["tab10"](k) for k in range(n)]
    return [colormaps["viridis"](k / (n - 1) * 0.9) for k in range(n)]


def _as_float(values: ArrayLike, name: str) -> _FloatArray:
    try:
        array = np.atleast_1d(np.asarray(values, dtype=np.float64))
    except (TypeError, ValueError) as exc:
        raise AnalysisError(f"{name} must be numbers: {exc}") from exc
    if array.ndim != 1:
        raise AnalysisError(f"{name} must be one-dimensional, got shape {array.shape}")
    return array


def _pair(
    x: ArrayLike, y: ArrayLike, x_name: str, y_name: str, drop: bool = True
) -> tuple[_FloatArray, _FloatArray]:
    """Two 1-D float arrays of one length; with ``drop``, only the pairs where both are finite."""
    xs, ys = _as_float(x, x_name), _as_float(y, y_name)
    if xs.shape != ys.shape:
        raise AnalysisError(f"{x_name} and {y_name} differ in length ({xs.size} vs {ys.size})")
    if drop:
        finite = np.isfinite(xs) & np.isfinite(ys)
        if not finite.all():
            xs, ys = xs[finite], ys[finite]
    return xs, ys


def _break_at_resets(q: _FloatArray, v: _FloatArray) -> tuple[_FloatArray, _FloatArray]:
    if q.size < 2:
        return q, v
    span = float(q.max() - q.min())
    resets = np.flatnonzero(np.diff(q) < -0.5 * span) + 1
    if span == 0 or resets.size == 0:
        return q, v
    return np.insert(q, resets, np.nan), np.insert(v, resets, np.nan)


def _current_scale(magnitudes: _FloatArray) -> tuple[float, str]:
    finite = magnitudes[np.isfinite(magnitudes)]
    top = float(finite.max()) if finite.size else 0.0
    for factor, unit in ((1.0, "A"), (1e3, "mA"), (1e6, "µA")):
        if top * factor >= 1.0:
            return factor, unit
    return 1e9, "nA"


def _kK_inv_to_C(x: ArrayLike) -> _FloatArray:
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x > 0, 1000.0 / np.where(x > 0, x, 1.0) - ZERO_CELSIUS_K, np.inf)


def _C_to_kK_inv(t_C: ArrayLike) -> _FloatArray:
    kelvin = np.asarray(t_C, dtype=np.float64) + ZERO_CELSIUS_K
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(kelvin > 0, 1000.0 / np.where(kelvin > 0, kelvin, 1.0), np.inf)
