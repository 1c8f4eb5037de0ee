"""The report's figures and its two files: summary.json and index.html."""

from __future__ import annotations

import base64
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure

from analysis import AnalysisError, plots
from analysis.report_html import DEFAULT_RELATIVE_TOLERANCE, compare, write_report

from .test_analysis_results import aiose_conductivity

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


result = aiose_conductivity


def expectation(**changes) -> dict:
    return {
        "experiment": "conductivity",
        "quantity": "ionic_conductivity",
        "unit": "mS/cm",
        "conditions": {"temperature_degC": 25},
        "value": 0.58,
    } | changes


def small_figure() -> Figure:
    return plots.generic_xy([("a", [0, 1, 2], [1, 0, 1])], "x", "y", "small")


def spectrum(r_ohm: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    f = np.logspace(6, -1, 60)
    w = 2 * np.pi * f
    z = 5 + r_ohm / (1 + 1j * w * r_ohm * 1e-8) + 1 / (1j * w * 1e-5)
    return f, z.real, z.imag


def lines(ax) -> int:
    return len(ax.get_lines())


# --------------------------------------------------------------------------- decimation


def test_decimation_keeps_every_bins_extremes_in_order():
    rng = np.random.default_rng(1)
    n, max_points = 1_000_000, 2000
    x = np.arange(n, dtype=float)
    y = rng.normal(size=n)
    y[123_457], y[876_543] = 50.0, -50.0  # a spike and a short-circuit dip
    xs, ys = plots.decimate_minmax(x, y, max_points)
    assert xs.size <= max_points
    assert np.all(np.diff(xs) > 0)
    assert ys.max() == 50.0 and ys.min() == -50.0
    assert (xs[0], xs[-1]) == (0.0, n - 1.0)
    kept = xs.astype(int)
    assert np.array_equal(ys, y[kept])
    # The envelope is the raw data's: every stretch's extremes are kept, to within a bin width.
    reach = 4 * n // max_points
    for lo in range(0, n, 20_000):
        hi = lo + 20_000
        near = (kept >= lo - reach) & (kept < hi + reach)
        assert ys[near].max() >= y[lo:hi].max() and ys[near].min() <= y[lo:hi].min()


def test_decimation_leaves_short_input_alone_and_drops_non_finite():
    xs, ys = plots.decimate_minmax([0, 1, 2, 3], [1.0, math.nan, 3.0, 4.0])
    assert xs.tolist() == [0.0, 2.0, 3.0] and ys.tolist() == [1.0, 3.0, 4.0]


def test_decimation_refuses_arrays_of_different_lengths():
    with pytest.raises(AnalysisError, match=r"^x and y differ in length \(3 vs 2\)$"):
        plots.decimate_minmax([1, 2, 3], [1, 2])


# --------------------------------------------------------------------------- figures


def test_nyquist_one_trace_per_spectrum_and_a_marker_per_bulk_resistance():
    spectra = [(f"{t} °C", *spectrum(r)) for t, r in ((25, 100.0), (40, 60.0), (60, 30.0))]
    fig = plots.nyquist(spectra, "EIS", r_bulk_ohm={"25 °C": 105.0, "60 °C": 35.0})
    (ax,) = fig.axes
    assert lines(ax) == 3 + 2
    assert ax.get_aspect() == 1.0
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["25 °C (R_b = 105 Ω)", "40 °C", "60 °C (R_b = 35 Ω)"]
    # -Im Z is plotted: the capacitive arc is above the axis.
    assert max(line.get_ydata().max() for line in ax.get_lines()) > 0


def test_nyquist_draws_high_to_low_frequency_whatever_the_input_order():
    f, re_z, im_z = spectrum(100.0)
    fig = plots.nyquist([("a", f[::-1], re_z[::-1], im_z[::-1])], max_ohm=300)
    line = fig.axes[0].get_lines()[0]
    assert line.get_xdata()[0] == pytest.approx(re_z[0])
    assert fig.axes[0].get_xlim() == (0.0, 300.0)


def test_nyquist_refuses_a_bulk_resistance_of_an_unknown_trace():
    with pytest.raises(AnalysisError, match=r"not in spectra: \['b'\]"):
        plots.nyquist([("a", *spectrum(10.0))], r_bulk_ohm={"b": 1.0})


def test_arrhenius_points_and_fitted_lines_with_ea_in_the_legend():
    temps = np.array([-20.0, 0.0, 25.0, 40.0, 60.0])
    sigma = 1e6 * np.exp(-0.35 / (8.617333262e-5 * (temps + 273.15)))
    fig = plots.arrhenius(
        {"AIOSE": (temps, sigma), "PEDL": (temps, sigma / 2)}, {"AIOSE": (0.35, 1e6)}
    )
    (ax,) = fig.axes
    assert lines(ax) == 2 + 1
    points, fit = ax.get_lines()[1], ax.get_lines()[0]
    assert np.allclose(points.get_xdata(), 1000 / (temps + 273.15))
    assert np.allclose(points.get_ydata(), np.log10(sigma))
    # The fitted line goes through the points it was fitted to.
    assert np.interp(points.get_xdata()[2], fit.get_xdata()[::-1], fit.get_ydata()[::-1]) == (
        pytest.approx(np.log10(sigma[2]), abs=1e-3)
    )
    assert "Eₐ = 0.350 eV" in ax.get_legend().get_texts()[0].get_text()


def test_ca_decay_marks_i0_and_iss_in_a_readable_unit():
    t = np.linspace(0, 3600, 10_000)
    fig = plots.ca_decay(t, 2e-5 * np.exp(-t / 300) + 8e-6, 2.8e-5, 8e-6)
    (ax,) = fig.axes
    assert lines(ax) == 3
    assert ax.get_ylabel() == "Current / µA"
    assert [t.get_text() for t in ax.get_legend().get_texts()][1:] == [
        "I₀ = 28 µA", "Iₛₛ = 8 µA",
    ]


def test_voltage_vs_time_has_one_zoom_per_window_at_full_resolution():
    t = np.linspace(0, 1200, 1_000_000)
    v = 0.03 * np.sign(np.sin(np.pi * t))
    windows = [(10.0, 14.0), (600.0, 604.0), (1190.0, 1194.0)]
    fig = plots.voltage_vs_time(t, v, windows, title="Li||AIOSE||Li")
    assert len(fig.axes) == 1 + 3
    full, *zooms = fig.axes
    assert len(full.get_lines()[0].get_xdata()) <= plots.DEFAULT_MAX_POINTS
    for zoom, (t0, t1) in zip(zooms, windows, strict=True):
        assert zoom.get_xlim() == (t0, t1)
        x = zoom.get_lines()[0].get_xdata()
        assert t0 <= x.min() and x.max() <= t1 and x.size > 1000


def test_voltage_vs_time_without_windows_is_one_axes_and_refuses_bad_windows():
    assert len(plots.voltage_vs_time([0, 1], [0, 1]).axes) == 1
    with pytest.raises(AnalysisError, match=r"^window 1 must have t0_h < t1_h"):
        plots.voltage_vs_time([0, 1], [0, 1], [(2.0, 1.0)])


def test_voltage_vs_capacity_one_trace_per_curve_broken_at_the_reset():
    q = np.linspace(0, 200, 100)
    curves = [
        (label, np.r_[q, q], np.r_[3.5 + q / 250, 4.3 - q / 200]) for label in ("0.1C", "1C")
    ]
    fig = plots.voltage_vs_capacity(curves)
    (ax,) = fig.axes
    assert lines(ax) == 2
    x = ax.get_lines()[0].get_xdata()
    assert np.isnan(x).sum() == 1  # no line from the end of the charge to the discharge start


def test_capacity_and_ce_uses_twin_axes():
    cycles = np.arange(1, 101)
    fig = plots.capacity_and_ce(cycles, 200 - 0.03 * cycles, np.full(100, 99.6))
    assert len(fig.axes) == 2
    assert [lines(ax) for ax in fig.axes] == [1, 1]
    assert fig.axes[1].get_ylabel() == "Coulombic efficiency / %"


def test_generic_xy_one_line_per_series_and_log_axes():
    fig = plots.generic_xy(
        [("AIOSE", [3, 4, 5], [1e-4, 1e-3, 1e-1]), ("LEDE", [3, 4, 5], [1e-3, 1e-2, 1])],
        "Voltage / V", "Current density / mA cm$^{-2}$", "LSV", logy=True,
    )
    (ax,) = fig.axes
    assert lines(ax) == 2 and ax.get_yscale() == "log"


# --------------------------------------------------------------------------- write_report


@pytest.fixture
def report(tmp_path: Path):
    results = [
        result(),
        result(quantity="bulk_resistance", value=31.54, unit="Ohm"),
        result(experiment="cycling", cell="ncm-1", material="NCM811", quantity="discharge_capacity",
               value=193.7, unit="mAh/g", conditions={"c_rate": 2.0, "cycle": 100}),
    ]
    expected = [
        expectation(value=0.6),  # 3.3 % off: pass at the default 5 %
        expectation(experiment="cycling", quantity="discharge_capacity", unit="mAh/g",
                    conditions={"c_rate": 2}, value=220.0, tolerance=0.05),  # 12 % off: fail
        expectation(quantity="activation_energy", unit="eV", value=0.3, conditions={}),
    ]
    figures = [("Conductivity", "Nyquist at 25 °C", small_figure()),
               ("Cycling", "Capacity & CE", small_figure())]
    summary, index = write_report(tmp_path / "report", "AIOSE campaign", results, figures,
                                  expected, meta={"run_id": "r-1", "seed": np.int64(7)})
    return tmp_path / "report", results, figures, summary, index


def test_write_report_writes_both_files_and_the_figures(report):
    report_dir, _results, figures, summary, index = report
    assert summary == report_dir / "summary.json" and index == report_dir / "index.html"
    pngs = sorted(p.name for p in (report_dir / "figures").iterdir())
    assert pngs == ["fig001-conductivity.png", "fig002-cycling.png"]
    for name in pngs:
        assert (report_dir / "figures" / name).read_bytes().startswith(PNG_MAGIC)
        assert f'src="figures/{name}"' in index.read_text(encoding="utf-8")
    assert all(not fig.axes for _, _, fig in figures)  # consumed: cleared after saving


def test_summary_json_is_the_contract_plus_meta_and_checks(report):
    _dir, results, _figures, summary, _index = report
    data = json.loads(summary.read_text(encoding="utf-8"))
    assert list(data)[:2] == ["campaign", "results"]
    assert data["campaign"] == "AIOSE campaign"
    assert data["results"] == [r.to_dict() for r in results]
    assert data["run_id"] == "r-1" and data["seed"] == 7
    assert [c["status"] for c in data["checks"]] == ["pass", "fail", "not measured"]
    assert data["checks"][0]["relative_difference"] == pytest.approx((0.58 - 0.6) / 0.6)
    assert "NaN" not in summary.read_text(encoding="utf-8")


def test_index_html_lists_every_result_grouped_by_experiment(report):
    _dir, results, _figures, _summary, index = report
    text = index.read_text(encoding="utf-8")
    assert text.index("<h3>conductivity</h3>") < text.index("<h3>cycling</h3>")
    for r in results:
        assert f"<td>{r.quantity}</td><td class=\"num\">{r.value:.4g}</td><td>{r.unit}</td>" in text
    assert "c_rate = 2, cycle = 100" in text
    assert "<figcaption>Capacity &amp; CE</figcaption>" in text


def test_index_html_shows_expected_next_to_measured_with_a_mark(report):
    text = report[4].read_text(encoding="utf-8")
    rows = re.findall(r"<tr class=\"(pass|fail)\">(.*?)</tr>", text)
    assert [cls for cls, _ in rows] == ["pass", "fail", "fail"]
    assert ('<td class="num">0.58</td><td class="num">0.6</td><td>mS/cm</td>'
            '<td class="num">-3.3%</td>') in rows[0][1]
    assert "✓ pass" in rows[0][1]
    assert '<td class="num">193.7</td><td class="num">220</td>' in rows[1][1]
    assert "-12.0%" in rows[1][1] and "✗ fail" in rows[1][1]
    assert "✗ not measured" in rows[2][1]
    assert "1 of 3 within tolerance" in text


def test_html_escapes_user_text(tmp_path: Path):
    evil = "<script>alert('x')</script>"
    results = [result(cell=evil, material="A&B", conditions={"note": '"><img>'})]
    figures = [(evil, evil, small_figure())]
    _, index = write_report(tmp_path, evil, results, figures, [expectation(cell=evil)],
                            meta={evil: evil})
    text = index.read_text(encoding="utf-8")
    assert "<script>" not in text and "<img>" not in text
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in text
    assert "A&amp;B" in text
    # A section name cannot leave the figures folder.
    names = [p.name for p in (tmp_path / "figures").iterdir()]
    assert names == ["fig001-script-alert-x-script.png"]


def test_embedded_figures_are_base64_png_and_replace_stale_files(tmp_path: Path):
    write_report(tmp_path, "t", [result()], [("old", "old", small_figure())])
    _, index = write_report(tmp_path, "t", [result()], [("s", "c", small_figure())],
                            embed_figures=True)
    text = index.read_text(encoding="utf-8")
    (encoded,) = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert base64.b64decode(encoded).startswith(PNG_MAGIC)
    assert list((tmp_path / "figures").iterdir()) == []


def test_meta_values_are_made_json_safe_and_may_not_shadow_the_contract(tmp_path: Path):
    summary, _ = write_report(tmp_path, "t", [], [], meta={"drift": math.nan, "path": tmp_path,
                                                           "arr": np.array([1.5, np.inf])})
    data = json.loads(summary.read_text(encoding="utf-8"))
    assert data == {"campaign": "t", "results": [], "notes": [], "drift": None,
                    "path": str(tmp_path), "arr": [1.5, None]}
    for key in ("results", "run", "notes", "checks"):
        with pytest.raises(AnalysisError, match=rf"report's own keys \['{key}'\]"):
            write_report(tmp_path, "t", [], [], meta={key: []})


def test_summary_json_is_indented_utf8_with_every_non_finite_number_null(tmp_path: Path):
    meta = {"drift": -math.inf, "f64": np.float64(math.nan), "f32": np.float32(0.1),
            "i64": np.int64(7), "flag": np.bool_(True), "pair": (1, math.inf),
            "tags": {"Ω": "Li|Li – 25 °C"}}
    results = [result(value=float(v)) for v in (0.58, 1e-300, 12345.678)]
    summary, _ = write_report(tmp_path, "t", results, [], meta=meta)
    raw = summary.read_bytes()
    assert raw.endswith(b"}\n") and b'\n  "results": [\n' in raw   # plain, indented
    assert "Li|Li – 25 °C".encode() in raw   # non-ASCII text as UTF-8, not escaped
    data = json.loads(raw.decode("utf-8"))
    assert data["drift"] is None and data["f64"] is None and data["pair"] == [1, None]
    assert data["f32"] == float(np.float32(0.1)) and data["i64"] == 7 and data["flag"] is True
    assert data["tags"] == {"Ω": "Li|Li – 25 °C"}
    assert [r["value"] for r in data["results"]] == [0.58, 1e-300, 12345.678]


def test_summary_json_holds_what_orjson_refuses_wide_integers_and_keys_no_strings(
        tmp_path: Path):
    meta = {"seed": 2**70, "small": -(2**63), "by": {3: "a number as key", "x": math.nan},
            "text": "Li|Li – 25 °C"}
    summary, _ = write_report(tmp_path, "t", [result()], [], meta=meta)
    data = json.loads(summary.read_text(encoding="utf-8"))
    assert data["seed"] == 2**70 and data["small"] == -(2**63)
    assert data["by"] == {"3": "a number as key", "x": None} and data["text"] == meta["text"]
    assert data["results"][0]["value"] == 0.58


def test_a_value_no_json_holds_is_refused_naming_it(tmp_path: Path):
    with pytest.raises(AnalysisError, match=r"^cannot write object <object .*> to summary"):
        write_report(tmp_path, "t", [], [], meta={"odd": object()})
    assert not (tmp_path / "summary.json").exists()
    assert not (tmp_path / "summary.json.tmp").exists()
    assert not list(tmp_path.glob(".*.tmp"))   # nor the writer's own temporary file


def test_compare_tolerances_subset_conditions_and_units():
    results = [result(conditions={"temperature_degC": 25.0, "cycle": 1}),
               result(value=0.56, conditions={"temperature_degC": 25.0, "cycle": 2})]
    checks = compare(results, [expectation()])  # matches both cycles, one row each
    assert [c.status for c in checks] == ["pass", "pass"]
    assert checks[1].relative_difference == pytest.approx(-0.02 / 0.58)
    tight = compare(results, [expectation(tolerance=0.01)])
    assert [c.status for c in tight] == ["pass", "fail"]
    absolute = compare(results, [expectation(tolerance=0.0, abs_tolerance=0.1)])
    assert [c.status for c in absolute] == ["pass", "pass"]
    assert [c.status for c in compare(results, [expectation(unit="mA")])] == ["unit mismatch"]
    assert [c.status for c in compare(results, [expectation(cell="other")])] == ["not measured"]
    assert compare(results, [expectation()])[0].tolerance == DEFAULT_RELATIVE_TOLERANCE


def test_compare_refuses_an_expectation_without_a_number():
    with pytest.raises(AnalysisError, match=r"^expected\[0\] value must be a number, got None$"):
        compare([result()], [expectation(value=None)])
    with pytest.raises(AnalysisError, match=r"^expected\[0\] value must be finite"):
        compare([result()], [expectation(value=math.nan)])


def test_units_are_compared_through_pint():
    """cm^2/s is cm2/s; S/m takes mS/cm divided by 10; the measured value is shown in the
    expectation's unit, with what the analysis derived beside it."""
    d = result(experiment="gitt", quantity="diffusion_coefficient", value=2.0e-10,
               unit="cm2/s", conditions={})
    for unit, value in (("cm^2/s", 2.0e-10), ("cm2/s", 2.0e-10), ("m^2/s", 2.0e-14),
                        ("m2 / s", 2.0e-14)):
        (check,) = compare([d], [expectation(experiment="gitt", quantity="diffusion_coefficient",
                                             unit=unit, value=value, conditions={})])
        assert check.status == "pass", unit
        assert check.measured_value == pytest.approx(value)
    (check,) = compare([result()], [expectation(unit="S/m", value=0.058)])
    assert check.status == "pass"
    row = check.to_dict()
    assert row["measured"] == pytest.approx(0.058) and row["measured_unit"] == "S/m"
    assert row["measured_as_derived"] == {"value": 0.58, "unit": "mS/cm"}
    (check,) = compare([result()], [expectation(unit="S/m", value=0.58)])   # 10x off
    assert check.status == "fail" and check.relative_difference == pytest.approx(-0.9)


def test_the_default_tolerance_is_the_one_protocol_files_apply_and_the_page_states(tmp_path):
    from protocols.campaign import Expectation

    assert Expectation(quantity="ionic_conductivity", value=1.0, unit="mS/cm").tolerance == \
        DEFAULT_RELATIVE_TOLERANCE == 0.05
    at_4, at_6 = compare([result(value=0.58 * 1.04), result(value=0.58 * 1.06)],
                         [expectation()])
    assert (at_4.status, at_6.status) == ("pass", "fail")
    _, index = write_report(tmp_path, "t", [result()], [], [expectation()])
    assert "(default ±5% where none is given)" in index.read_text(encoding="utf-8")


def test_a_null_result_is_listed_with_its_note_and_never_passes(tmp_path):
    null = result(value=None, note="no real discharge: 5.4e-06 mAh/g")
    (check,) = compare([null], [expectation()])
    assert check.status == "not measured" and check.to_dict()["note"] == null.note
    summary, index = write_report(tmp_path, "t", [null], [], [expectation()],
                                  notes=["conductivity/aiose-1: cycle 1: no real discharge"])
    data = json.loads(summary.read_text(encoding="utf-8"))
    assert data["results"][0]["value"] is None and data["results"][0]["note"] == null.note
    assert data["notes"] == ["conductivity/aiose-1: cycle 1: no real discharge"]
    text = index.read_text(encoding="utf-8")
    assert '<td class="num">null</td>' in text and "no real discharge: 5.4e-06 mAh/g" in text
    assert '<h2 id="notes">Notes</h2>' in text


def test_a_run_with_faults_opens_the_page_with_a_banner(tmp_path):
    outcome = {"status": "completed_with_faults",
               "cells": [{"cell": "aiose-1", "state": "completed", "experiment": "conductivity",
                          "fault": None},
                         {"cell": "ncm-1", "state": "faulted", "experiment": "cycling",
                          "fault": "safety limit: voltage 4.5 V beyond the limit 4.45 V"}],
               "faulted": ["ncm-1"],
               "not_derived": [{"cell": "ncm-1", "experiment": "cycling",
                                "reason": "cut short at step 3: the cell faulted there"}]}
    expected = [expectation(), expectation(experiment="cycling", cell="ncm-1",
                                           quantity="discharge_capacity", unit="mAh/g",
                                           value=190.0, conditions={})]
    summary, index = write_report(tmp_path, "t", [result()], [], expected, outcome=outcome)
    assert json.loads(summary.read_text(encoding="utf-8"))["run"] == outcome
    text = index.read_text(encoding="utf-8")
    banner = text[text.index('<div class="outcome banner"'):text.index("</div>")]
    assert text.index(banner) < text.index('<h2 id="checks">')   # before anything else
    assert "Run completed with faults: 1 of 2 cells did not complete" in banner
    assert "<strong>ncm-1</strong> faulted in cycling: safety limit: voltage 4.5 V" in banner
    assert "cycling on ncm-1: cut short at step 3" in banner
    assert "expected discharge_capacity of cycling on ncm-1 (190 mAh/g): not measured" in banner
    assert "aiose-1" not in banner
    outcome = {"status": "completed", "cells": outcome["cells"][:1], "faulted": [],
               "not_derived": []}
    _, index = write_report(tmp_path, "t", [result()], [], outcome=outcome)
    text = index.read_text(encoding="utf-8")
    assert "<div class=\"outcome banner\"" not in text
    assert "Run completed: the cell completed." in text
