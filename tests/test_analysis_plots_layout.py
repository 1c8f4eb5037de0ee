"""The report's figures are placed by fixed margins (no layout engine measures them): every
label, tick label and title must still fall inside the figure, whatever the numbers."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from analysis import plots, plots_series, plots_titration


def _inside(fig) -> None:
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    box = fig.bbox
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        tight = ax.get_tightbbox(renderer)
        assert tight.x0 >= box.x0 - 1 and tight.y0 >= box.y0 - 1, (ax, tight, box)
        assert tight.x1 <= box.x1 + 1 and tight.y1 <= box.y1 + 1, (ax, tight, box)
    assert fig.get_layout_engine() is None


def _traces(scale: float) -> list[tuple[str, np.ndarray, np.ndarray]]:
    x = np.linspace(0, 1000, 200)
    return [("a", x, scale * (1.234567 + np.sin(x / 50))),
            ("b", x, -scale * (2.5 + np.cos(x / 70)))]


@pytest.mark.parametrize("scale", [1e-7, 1e-3, 1.0, 12345.0, 1e9])
def test_single_panels_keep_their_labels_inside(scale):
    _inside(plots.generic_xy(_traces(scale), "Time since the first spectrum / h",
                             "Current density / mA cm-2", title="li-aiose-long-1: something"))
    _inside(plots.generic_xy([(n, x, np.abs(y)) for n, x, y in _traces(scale)], "time / s",
                             "|I| / A", logy=True))
    _inside(plots.ca_decay(np.linspace(0, 3600, 300), scale * np.exp(-np.linspace(0, 5, 300)),
                           scale, scale * 0.2))


def test_figures_with_second_axes_and_grids_keep_their_labels_inside():
    cycles = np.arange(1, 1001)
    _inside(plots.capacity_and_ce(cycles, 200 - cycles * 0.01, 99.9 + 0 * cycles))
    _inside(plots_series.capacity_and_ce_series(
        [("cycling, 0.2C, 25 degC", cycles, 200 - cycles * 0.01, 99.9 + 0 * cycles)]))
    temps = np.array([25.0, 40, 60, 80])
    _inside(plots.arrhenius({"llzto-ss-1 (LLZTO)": (temps, 0.3 * np.exp(temps / 40))},
                            {"llzto-ss-1 (LLZTO)": (0.35, 1e4)}))
    t = np.linspace(0, 1200, 5000)
    _inside(plots.voltage_vs_time(t, 0.05 * np.sign(np.sin(t * 6)),
                                  [(0, 5), (600, 605), (1195, 1200)], title="li-aiose-long-1"))
    _inside(plots.voltage_vs_capacity([("0.1C, 25 degC", np.linspace(0, 205, 100),
                                        np.linspace(4.3, 2.8, 100))], title="ncm811-1"))


def test_titration_figures_keep_their_labels_inside():
    per_pulse = [{"conditions": {"temperature_degC": 25, "direction": d, "sequence": k,
                                 "soc_percent": s, "relaxed_voltage_V": 3.6 + s / 200},
                  "d_m2_s": 10 ** (-14 - s / 30)}
                 for k, d in enumerate(("charge", "discharge"), 1) for s in range(0, 100, 5)]
    _inside(plots_titration.gitt_figure(per_pulse, [("electrode", 4e-6), ("particle", 1.7e-6)],
                                        4e-6, title="ncm811-gitt-pristine-1"))
    readings = [{"ohm": 10 + s / 10 + t, "conditions": {
        "temperature_degC": temp, "direction": d, "time_s": t, "at_pulse_end": False,
        "soc_percent": s, "sequence": None}}
        for temp in (-10, 25, 45, 60) for d in ("charge", "discharge") for t in (0.1, 10.0)
        for s in range(10, 100, 10)]
    _inside(plots_titration.hppc_figure(readings, title="ncm811-hppc-1"))
