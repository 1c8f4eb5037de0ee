"""Spectra during cycling give R_ohm, R_ct and R_b against cycle and time from a circuit fit
with its quality; legends say which spectrum is which; a temperature sweep's legs are told apart;
a cell's conductivity keeps one basis; a DC polarisation of a blocking cell gives its electronic
conductivity."""

from __future__ import annotations

import json

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from analysis import AnalysisError
from analysis.derive import derive
from analysis.eis_cells import fit_cell_spectrum
from analysis.polarisation import electronic_conductivity
from analysis.summary_record import summary_of
from materials import builtin
from sequencer.runner import run_simulated

CYCLING = """
campaign: eis-cycling
cells:
  - id: ncm-1
    kind: full_cell
    electrolyte: AIOSE
    thickness: 300 um
    diameter: 16 mm
    cathode: {material: NCM811, loading: 1.9 mg/cm^2, diameter: 12 mm,
              specific_capacity: 200 mAh/g}
    limits: {max_voltage: 4.45 V, min_voltage: 2.5 V, max_current: 10 mA}
experiments:
  - name: cycling
    cells: [ncm-1]
    steps:
      - {kind: set_temperature, target: 25 degC, tolerance: 0.5 K, hold: 10 min, timeout: 3 h}
      - kind: loop
        count: 41
        steps:
          - {kind: peis, every: 10, f_start: 1 MHz, f_end: 0.1 Hz, amplitude: 10 mV,
             points_per_decade: 8}
          - {kind: cccv_charge, current: 2C, voltage: 4.35 V, until_current: C/10}
          - {kind: cc_discharge, current: 2C, until_voltage: 2.8 V}
"""


@pytest.fixture(scope="module")
def cycling_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("eis")
    (tmp / "p.yaml").write_text(CYCLING, encoding="utf-8")
    run_simulated(tmp / "p.yaml", tmp / "run", seed=4)
    return tmp / "run"


def test_r_ohm_and_r_ct_per_spectrum_against_cycle_and_time(cycling_run):
    results = summary_of(cycling_run)["results"]
    by = {q: sorted(((r["conditions"]["cycle"], r) for r in results if r["quantity"] == q),
                    key=lambda kv: kv[0])
          for q in ("bulk_resistance", "ohmic_resistance", "charge_transfer_resistance")}
    assert [c for c, _ in by["ohmic_resistance"]] == [0, 10, 20, 30, 40]
    assert [c for c, _ in by["bulk_resistance"]] == [0, 10, 20, 30, 40]
    for _, r in by["ohmic_resistance"] + by["charge_transfer_resistance"]:
        assert r["conditions"]["fit_rmse_percent"] < 3      # the fit's quality, reported
        assert r["conditions"]["circuit"].startswith("R0-p(R1,CPE1)")
        assert r["conditions"]["time_s"] > 0
    times = [r["conditions"]["time_s"] for _, r in by["ohmic_resistance"]]
    assert np.all(np.diff(times) > 0)
    r_ohm = np.array([r["value"] for _, r in by["ohmic_resistance"]])
    r_b = np.array([r["value"] for _, r in by["bulk_resistance"]])
    r_ct = np.array([r["value"] for _, r in by["charge_transfer_resistance"]])
    assert r_ohm == pytest.approx(r_b, rel=0.05)     # the series resistance is the intercept
    assert np.all(r_ct > 2 * r_ohm)                  # the cathode's arc, beyond the membrane
    assert r_ct[-1] > r_ct[0]                        # and it grows as the cell ages


def test_nyquist_legends_name_the_cycle_and_the_resistance_figure_follows_it(cycling_run):
    figures = {caption: f for _, caption, f in derive(cycling_run, figures=True).figures}
    nyquist = figures["ncm-1: Nyquist plots"]
    FigureCanvasAgg(nyquist)
    labels = [t.get_text() for t in nyquist.axes[0].get_legend().get_texts()]
    assert len(set(labels)) == len(labels) == 5
    assert labels[0].startswith("before cycling") and labels[-1].startswith("after cycle 40")
    values = {label.split("= ")[1] for label in labels}
    assert len(values) > 1                   # each entry its own R_b
    trend = figures["ncm-1: resistances from its spectra"]
    FigureCanvasAgg(trend)
    assert trend.axes[0].get_xlabel() == "cycle"
    assert {t.get_text() for t in trend.axes[0].get_legend().get_texts()} == {
        "R_b (intercept)", "R_ohm (fit)", "R_ct (fit)"}


def test_the_fit_recovers_a_known_circuit_within_its_noise():
    rng = np.random.default_rng(7)
    f = np.logspace(6, -1, 57)
    w = 2 * np.pi * f
    truth = {"r0": 12.0, "r1": 30.0, "q1": 2e-6, "n1": 0.85, "r2": 80.0, "q2": 3e-5,
             "n2": 0.8, "sigma": 40.0}
    z = (truth["r0"] + truth["r1"] / (1 + truth["r1"] * truth["q1"] * (1j * w) ** truth["n1"])
         + truth["r2"] / (1 + truth["r2"] * truth["q2"] * (1j * w) ** truth["n2"])
         + truth["sigma"] * (1 - 1j) / np.sqrt(w))
    z = z * (1 + 0.002 * rng.standard_normal(f.size))
    fit = fit_cell_spectrum(f, z.real, z.imag)
    assert fit.circuit == "R0-p(R1,CPE1)-p(R2,CPE2)-W1"
    assert fit.r_ohm == pytest.approx(truth["r0"], rel=0.03)
    assert fit.r_ct_ohm == pytest.approx(truth["r2"], rel=0.03)
    assert fit.arcs[0].r_ohm == pytest.approx(truth["r1"], rel=0.05)
    assert fit.rmse_rel < 0.01
    with pytest.raises(AnalysisError, match="10 points or more"):
        fit_cell_spectrum(f[:5], z.real[:5], z.imag[:5])



@pytest.mark.parametrize("arcs", [1, 2])
def test_the_fits_jacobian_is_the_derivative_of_its_residuals(arcs):
    from scipy.optimize._numdiff import approx_derivative

    from analysis.eis_cells import _Problem

    rng = np.random.default_rng(3)
    f = np.logspace(5, -2, 50)
    z = (5 + 20 / (1 + 20 * 1e-5 * (2j * np.pi * f) ** 0.8)
         + 10 * (1 - 1j) / np.sqrt(2 * np.pi * f))
    linear = np.zeros(1 + 3 * arcs + 1, dtype=bool)
    linear[[3 + 3 * k for k in range(arcs)]] = True
    problem = _Problem(2 * np.pi * f, z, arcs, linear)
    for _ in range(5):
        x = np.where(linear, rng.uniform(0.4, 1.0, linear.size),
                     rng.uniform(-12.0, 5.0, linear.size))
        numeric = approx_derivative(problem.residuals, x, method="3-point")
        analytic = problem.jacobian(x)
        assert analytic.shape == numeric.shape
        assert np.allclose(analytic, numeric, rtol=1e-5, atol=1e-7 * np.abs(numeric).max())

SWEEP = """
campaign: sweep
cells:
  - {id: llzto-1, kind: blocking, electrolyte: LLZTO, thickness: 1 mm, diameter: 10 mm}
  - {id: aiose-1, kind: blocking, electrolyte: AIOSE, thickness: 300 um, diameter: 16 mm}
experiments:
  - name: sweep
    cells: [llzto-1, aiose-1]
    steps:
      - kind: temperature_sweep
        temperatures: [25 degC, 45 degC, 65 degC, 25 degC]
        hold: 10 min
        steps:
          - {kind: peis, f_start: 3 MHz, f_end: 1 Hz, amplitude: 10 mV, points_per_decade: 8}
      - {kind: chronoamperometry, voltage: 0.5 V, duration: 2 h, record_every: 10 s}
"""


@pytest.fixture(scope="module")
def sweep_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sweep")
    (tmp / "p.yaml").write_text(SWEEP, encoding="utf-8")
    run_simulated(tmp / "p.yaml", tmp / "run", seed=6)
    return tmp / "run"


def test_a_sweeps_legs_are_told_apart_and_a_cell_keeps_one_basis(sweep_run):
    summary = summary_of(sweep_run)
    for cell, basis in (("llzto-1", "bulk+grain boundary"), ("aiose-1", "bulk")):
        sigma = [r for r in summary["results"] if r["cell"] == cell
                 and r["quantity"] == "ionic_conductivity"]
        assert {r["conditions"]["basis"] for r in sigma} == {basis}
        at_25 = sorted((r["conditions"]["sequence"], r["value"]) for r in sigma
                       if r["conditions"]["temperature_degC"] == 25)
        assert [s for s, _ in at_25] == [1, 2]          # heating and cooling legs
        assert at_25[0][1] == pytest.approx(at_25[1][1], rel=0.02)
        assert all("sequence" not in r["conditions"] for r in sigma
                   if r["conditions"]["temperature_degC"] != 25)
        ordered = [r["value"] for r in sigma][:3]       # 25, 45, 65: rising, one basis
        assert ordered == sorted(ordered)
        (ea,) = [r for r in summary["results"] if r["cell"] == cell
                 and r["quantity"] == "activation_energy"]
        assert ea["conditions"]["basis"] == basis and 0.1 < ea["value"] < 0.6
    figures = {caption: f for _, caption, f in derive(sweep_run, figures=True).figures}
    FigureCanvasAgg(figures["llzto-1: Nyquist plots"])
    labels = [t.get_text() for t in figures["llzto-1: Nyquist plots"].axes[0].get_legend()
              .get_texts()]
    assert labels[0].startswith("25 degC (1)") and labels[-1].startswith("25 degC (2)")


def test_dc_polarisation_of_a_blocking_cell_gives_its_electronic_conductivity(sweep_run):
    results = summary_of(sweep_run)["results"]
    found = {r["cell"]: r for r in results if r["quantity"] == "electronic_conductivity"}
    assert set(found) == {"llzto-1", "aiose-1"}
    for cell, name in (("llzto-1", "LLZTO"), ("aiose-1", "AIOSE")):
        # the simulated cell leaks through the electrolyte's electronic conductivity
        library = builtin().resolve(name).params()["sigma_electronic_S_per_cm"]
        assert found[cell]["unit"] == "S/cm"
        assert found[cell]["value"] == pytest.approx(library, rel=0.1)
        assert found[cell]["conditions"]["voltage_V"] == pytest.approx(0.5, abs=0.01)
    assert not [r for r in results if r["quantity"] == "transference_number"]


def test_a_current_still_falling_is_no_steady_current():
    t = np.linspace(0, 3600, 361)
    v = np.full(t.size, 0.5)
    with pytest.raises(AnalysisError, match="not steady at the end of the hold"):
        electronic_conductivity(t, 1e-8 + 1e-6 * np.exp(-t / 2000), v, 1e-3, 1e-4)
    steady = electronic_conductivity(t, 1e-8 + 1e-6 * np.exp(-t / 50), v, 1e-3, 1e-4)
    assert steady.sigma_S_per_m == pytest.approx(1e-8 * 1e-3 / (0.5 * 1e-4), rel=1e-3)


def test_the_summary_of_a_sweep_is_json(sweep_run):
    assert json.dumps(summary_of(sweep_run))


SYMMETRIC = """
campaign: li-li
cells:
  - {id: lili-1, kind: symmetric_li, electrolyte: AIOSE, thickness: 300 um, diameter: 16 mm,
     limits: {max_voltage: 1 V, min_voltage: -1 V}}
experiments:
  - name: cycling
    cells: [lili-1]
    steps:
      - {kind: set_temperature, target: 25 degC, tolerance: 0.5 K, hold: 10 min, timeout: 3 h}
      - kind: loop
        count: 31
        steps:
          - {kind: peis, every: 15, f_start: 1 MHz, f_end: 0.1 Hz, amplitude: 10 mV,
             points_per_decade: 8}
          - {kind: constant_current, direction: charge, current: 0.1 mA/cm^2, duration: 30 min,
             record_every: 5 min}
          - {kind: constant_current, direction: discharge, current: 0.1 mA/cm^2,
             duration: 30 min, record_every: 5 min}
"""


def test_a_cycling_cells_interface_is_not_called_at_rest(write_yaml, tmp_path):
    run_simulated(write_yaml(SYMMETRIC), tmp_path / "run", seed=2)
    captions = [caption for _, caption, _ in derive(tmp_path / "run", figures=True).figures]
    assert "lili-1: interfacial resistance while cycling" in captions
    assert not any("at rest" in c for c in captions)
    results = summary_of(tmp_path / "run")["results"]
    cycles = [r["conditions"]["cycle"] for r in results if r["quantity"] == "bulk_resistance"]
    assert cycles == [0, 15, 30]
