"""Figures of titrations: GITT diffusion coefficients and HPPC pulse resistances against the
state of charge (built as :mod:`analysis.plots` builds its figures: ``Figure`` directly)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from analysis.plots import (
    MARGINS_IN,
    PANEL_SIZE_IN,
    _colors,
    _grid,
    fixed_layout,
    unicode_log_labels,
)

M2_S_TO_CM2_S = 1e4


def _groups(records: Sequence[dict[str, Any]], keys: tuple[str, ...]
            ) -> dict[tuple[Any, ...], list[dict[str, Any]]]:
    out: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in records:
        out.setdefault(tuple(r["conditions"].get(k) for k in keys), []).append(r)
    return out


def _label(temperature: Any, direction: Any, sequence: Any = None) -> str:
    parts = [f"{temperature} degC" if temperature is not None else "",
             str(direction or ""), f"run {sequence}" if sequence is not None else ""]
    return ", ".join(p for p in parts if p)


def gitt_figure(per_pulse: Sequence[dict[str, Any]], bases: Sequence[tuple[str, float]],
                electrode_L_m: float, title: str = "") -> Figure:
    """D per pulse against the state of charge (left) and the relaxed voltage after the pulse
    (right), one colour per temperature, direction and run; filled markers on the electrode
    basis (L = m V_M / (M S)), open ones on the particle basis (L = r/3) where there is one.
    The legend and axis say which is which: the two differ by (L_particle / L_electrode)^2."""
    fig = Figure(figsize=(2 * PANEL_SIZE_IN[0], PANEL_SIZE_IN[1] + 0.4))
    by_soc, by_v = fig.subplots(1, 2)
    fixed_layout(fig, cols=2, col_gap_in=MARGINS_IN[0] + 0.1)
    groups = _groups(per_pulse, ("temperature_degC", "direction", "sequence"))
    for color, (key, records) in zip(_colors(len(groups)), groups.items(), strict=True):
        soc = np.array([r["conditions"].get("soc_percent") for r in records], dtype=float)
        volts = np.array([r["conditions"]["relaxed_voltage_V"] for r in records], dtype=float)
        d = np.array([r["d_m2_s"] for r in records], dtype=float)
        for basis, length in bases:
            scaled = d * (length / electrode_L_m) ** 2 * M2_S_TO_CM2_S
            filled = basis == "electrode"
            label = f"{_label(*key)} ({basis}, L = {length * 1e6:.3g} µm)"
            for ax, x in ((by_soc, soc), (by_v, volts)):
                ok = np.isfinite(x) & np.isfinite(scaled) & (scaled > 0)
                ax.plot(x[ok], scaled[ok], marker="o" if filled else "s", markersize=4,
                        linestyle="none", color=color,
                        markerfacecolor=color if filled else "none",
                        label=label if ax is by_soc else None)
    for ax, xlabel in ((by_soc, "State of charge / %"), (by_v, "Relaxed voltage / V")):
        ax.set_yscale("log")
        unicode_log_labels(ax.yaxis)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("D / cm² s⁻¹")
        _grid(ax)
    if by_soc.get_legend_handles_labels()[0]:
        by_soc.legend(fontsize=7)
    fig.suptitle(f"{title}: GITT diffusion coefficient per pulse (electrode basis filled,"
                 " particle basis open)" if title else "GITT diffusion coefficient per pulse",
                 fontsize=10)
    return fig


def hppc_figure(readings: Sequence[dict[str, Any]], title: str = "") -> Figure:
    """R against the state of charge, one panel per temperature; a colour per reading time,
    filled markers for discharge pulses, open ones for charge pulses."""
    ok = [r for r in readings if r["ohm"] is not None]
    temperatures = sorted({r["conditions"].get("temperature_degC") for r in ok},
                          key=lambda t: (t is None, t))
    n = max(1, len(temperatures))
    rows, cols = (n + 2) // 3, min(n, 3)
    fig = Figure(figsize=(PANEL_SIZE_IN[0] * cols, PANEL_SIZE_IN[1] * rows + 0.2))
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    # a suptitle and each panel's title above, every panel with its own axis labels
    fixed_layout(fig, top=MARGINS_IN[3] + 0.3, rows=rows, cols=cols,
                 row_gap_in=MARGINS_IN[2] + MARGINS_IN[3], col_gap_in=MARGINS_IN[0] + 0.1)
    times = sorted({r["conditions"]["time_s"] for r in ok if not r["conditions"]["at_pulse_end"]})
    colours = dict(zip([*times, "end"], _colors(len(times) + 1), strict=True))
    for ax, temperature in zip(axes, temperatures or [None], strict=False):
        here = [r for r in ok if r["conditions"].get("temperature_degC") == temperature]
        groups = _groups(here, ("direction", "time_s", "at_pulse_end", "sequence"))
        for (direction, time, at_end, sequence), records in sorted(
                groups.items(), key=lambda kv: tuple(str(k) for k in kv[0])):
            soc = np.array([r["conditions"]["soc_percent"] for r in records], dtype=float)
            ohm = np.array([r["ohm"] for r in records], dtype=float)
            colour = colours["end" if at_end else time]
            when = "pulse end" if at_end else f"{time:g} s"
            run = f", run {sequence}" if sequence is not None else ""
            ax.plot(soc, ohm, marker="o", markersize=4, linestyle="-" if not at_end else "none",
                    linewidth=0.8, color=colour,
                    markerfacecolor=colour if direction == "discharge" else "none",
                    label=f"{direction}, {when}{run}")
        ax.set_title(f"{temperature} degC" if temperature is not None else "")
        ax.set_xlabel("State of charge / %")
        ax.set_ylabel("Pulse resistance / Ω")
        _grid(ax)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    for ax in axes[len(temperatures or [None]):]:
        ax.set_visible(False)
    fig.suptitle(f"{title}: HPPC pulse resistance" if title else "HPPC pulse resistance",
                 fontsize=10)
    return fig
