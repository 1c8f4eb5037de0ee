"""The report's PNGs: the pixels matplotlib's own ``savefig`` draws, in a valid PNG with their
resolution, whatever was drawn before in the same process; log axes labelled in Unicode, not
mathtext."""

from __future__ import annotations

import io

import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from analysis import plots, plots_titration
from analysis.render import FIGURE_DPI, _png, render_png


def _pixels(png: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(png))
    image.load()
    return np.asarray(image.convert("RGBA"))


def _savefig(fig: Figure, dpi: float) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def test_a_figure_keeps_its_resolution_in_the_png():
    png = _png(_figures()[0], FIGURE_DPI)
    assert Image.open(io.BytesIO(png)).info["dpi"] == pytest.approx((FIGURE_DPI, FIGURE_DPI),
                                                                    abs=0.05)


def _figures() -> list[Figure]:
    x = np.linspace(0, 100, 500)
    return [
        plots.generic_xy([("a", x, np.sin(x / 7)), ("b", x, np.cos(x / 9))], "Time / s",
                         "Voltage / V", title="two traces"),
        plots.generic_xy([("c", x, 1e-6 * np.exp(-x / 20) + 1e-9)], "time / s", "|I| / A",
                         title="decay", logy=True),
        plots.voltage_vs_capacity([("0.1C", np.linspace(0, 200, 50), np.linspace(4.2, 3, 50))],
                                  title="profile"),
    ]


def test_figures_are_drawn_as_savefig_draws_them_whatever_was_drawn_before():
    expected = [_pixels(_savefig(fig, FIGURE_DPI)) for fig in _figures()]
    # twice in a row in one process: the second time with every renderer and cache warm
    for _ in range(2):
        drawn = [_pixels(png) for png in render_png(_figures(), FIGURE_DPI, workers=1)]
        for want, got in zip(expected, drawn, strict=True):
            assert want.shape == got.shape
            assert np.array_equal(want, got)


def test_a_figure_keeps_its_own_resolution_after_it_is_drawn():
    fig = _figures()[0]
    dpi = fig.dpi
    png = _png(fig, 2 * FIGURE_DPI)
    assert fig.dpi == dpi
    width_in, height_in = fig.get_size_inches()
    assert _pixels(png).shape[:2] == (round(2 * FIGURE_DPI * height_in),
                                      round(2 * FIGURE_DPI * width_in))


@pytest.mark.parametrize("label, text", [
    (r"$\mathdefault{10^{-5}}$", "10⁻⁵"),
    (r"$\mathdefault{10^{12}}$", "10¹²"),
    (r"$\mathdefault{-2\times10^{-5}}$", "−2×10⁻⁵"),
    (r"$\mathdefault{0.1}$", "0.1"),
    (r"$\mathdefault{1e-05}$", r"$\mathdefault{1e-05}$"),   # not known here: left as it is
    ("", ""),
])
def test_power_labels_become_unicode(label, text):
    assert plots.unicode_power_label(label) == text


def test_log_axes_are_labelled_without_mathtext():
    x = np.linspace(1, 100, 50)
    figures = [plots.generic_xy([("a", x, 1e-9 * x ** 3)], "x", "y", logx=True, logy=True)]
    per_pulse = [{"conditions": {"temperature_degC": 25, "direction": "charge", "sequence": 1,
                                 "soc_percent": s, "relaxed_voltage_V": 3.6 + s / 200},
                  "d_m2_s": 1e-14 * (1 + s)} for s in range(0, 100, 10)]
    figures.append(plots_titration.gitt_figure(per_pulse, [("electrode", 4e-6)], 4e-6))
    for fig in figures:
        _png(fig, FIGURE_DPI)
        labels = [t.get_text() for ax in fig.axes for axis in (ax.xaxis, ax.yaxis)
                  if axis.get_scale() == "log"
                  for t in axis.get_ticklabels() + axis.get_ticklabels(minor=True)]
        assert any("⁻" in t or "¹" in t for t in labels), labels
        assert not any("$" in t for t in labels), labels
