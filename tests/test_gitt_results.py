"""GITT results per pulse against the state of charge and the relaxed voltage, both directions,
on the electrode basis (L = m V_M / (M S)) and the particle basis (L = r/3); the plan takes a
titration at what the capacity holds, its max_pulses as the bound."""

from __future__ import annotations

import json

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from typer.testing import CliRunner

from analysis.derive import derive
from analysis.gitt import gitt_length_scale
from analysis.materials import molar_properties, particle_radius_m
from analysis.summary_record import summary_of
from sequencer.cli import app
from sequencer.runner import prepare, run_simulated
from store import RunStore

GITT = """
campaign: gitt
cells:
  - id: ncm-1
    kind: full_cell
    electrolyte: AIOSE
    thickness: 300 um
    diameter: 16 mm
    cathode: {material: NCM811, loading: 1.9 mg/cm^2, diameter: 12 mm,
              specific_capacity: 200 mAh/g}
    limits: {max_voltage: 4.45 V, min_voltage: 2.5 V, max_current: 5 mA}
experiments:
  - name: gitt
    cells: [ncm-1]
    steps:
      - {kind: set_temperature, target: 25 degC, tolerance: 0.5 K, hold: 10 min, timeout: 3 h}
      - {kind: rest, duration: 1 h, record_every: 1 min}
      - {kind: gitt, direction: charge, current: 0.2C, pulse: 15 min, rest: 30 min,
         until_voltage: 4.35 V, max_pulses: 1000, record_every: 5 s}
      - {kind: rest, duration: 1 h, record_every: 1 min}
      - {kind: gitt, direction: discharge, current: 0.2C, pulse: 15 min, rest: 30 min,
         until_voltage: 2.8 V, max_pulses: 1000, record_every: 5 s}
"""


@pytest.fixture(scope="module")
def gitt_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gitt")
    (tmp / "p.yaml").write_text(GITT, encoding="utf-8")
    run_simulated(tmp / "p.yaml", tmp / "run", seed=5)
    return tmp / "p.yaml", tmp / "run"


def test_d_per_pulse_on_both_bases_against_soc_and_relaxed_voltage(gitt_run):
    _, run = gitt_run
    results = [r for r in summary_of(run)["results"] if r["quantity"] == "diffusion_coefficient"]
    (median,) = [r for r in results if "statistic" in r["conditions"]]
    assert median["conditions"]["basis"] == "electrode"
    pulses = [r for r in results if "pulse" in r["conditions"]]
    electrode = {(r["conditions"]["direction"], r["conditions"]["pulse"]): r for r in pulses
                 if r["conditions"]["basis"] == "electrode"}
    particle = {(r["conditions"]["direction"], r["conditions"]["pulse"]): r for r in pulses
                if r["conditions"]["basis"] == "particle"}
    assert electrode.keys() == particle.keys()
    props = molar_properties("NCM811")
    l_electrode = gitt_length_scale(1.9e-2 * np.pi * 0.006 ** 2, props.molar_volume_m3_per_mol,
                                    props.molar_mass_kg_per_mol, np.pi * 0.006 ** 2)
    l_particle = particle_radius_m("NCM811") / 3
    for key, r in electrode.items():   # one measurement, two length scales
        assert particle[key]["value"] / r["value"] == pytest.approx(
            (l_particle / l_electrode) ** 2, rel=1e-9)
        assert r["conditions"]["length_um"] == pytest.approx(l_electrode * 1e6, abs=1e-4)
        assert particle[key]["conditions"]["length_um"] == pytest.approx(l_particle * 1e6,
                                                                        abs=1e-4)
        assert r["conditions"]["temperature_degC"] == 25
    for direction, rising in (("charge", True), ("discharge", False)):
        mine = sorted((r["conditions"]["pulse"], r["conditions"]["soc_percent"],
                       r["conditions"]["relaxed_voltage_V"], r["value"])
                      for (d, _), r in electrode.items() if d == direction)
        assert len(mine) >= 15        # 5 % of the capacity a pulse
        soc = np.array([m[1] for m in mine])
        volts = np.array([m[2] for m in mine])
        steps = np.diff(soc) if rising else -np.diff(soc)
        assert np.all(steps > 0) and np.median(steps) == pytest.approx(5.0, abs=0.3)
        assert np.all(np.diff(volts) > 0) if rising else np.all(np.diff(volts) < 0)
        d = np.array([m[3] for m in mine])
        # the middle of the titration: the window a layered oxide's composite electrode gives
        middle = d[(soc > 20) & (soc < 80)]
        assert np.all((middle > 1e-12) & (middle < 1e-9))
    assert np.median([r["value"] for r in electrode.values()]) == pytest.approx(
        median["value"], rel=0.05)


def test_the_figure_says_which_basis_and_axis_is_which(gitt_run):
    _, run = gitt_run
    (figure,) = [f for _, caption, f in derive(run, figures=True).figures
                 if caption.endswith("GITT diffusion coefficient")]
    FigureCanvasAgg(figure)
    by_soc, by_voltage = figure.axes
    assert by_soc.get_xlabel() == "State of charge / %"
    assert by_voltage.get_xlabel() == "Relaxed voltage / V"
    assert "cm² s⁻¹" in by_soc.get_ylabel() and by_soc.get_yscale() == "log"
    labels = [t.get_text() for t in by_soc.get_legend().get_texts()]
    assert any("charge" in t and "electrode, L = " in t for t in labels)
    assert any("discharge" in t and "particle, L = 1.74 µm" in t for t in labels)
    assert "particle basis open" in figure._suptitle.get_text()


def test_a_material_without_a_particle_radius_gives_the_electrode_basis_and_says_so(
        gitt_run, monkeypatch):
    import analysis.derive_titration as titration

    monkeypatch.setattr(titration, "particle_radius_m", lambda material: None)
    _, run = gitt_run
    summary = summary_of(run)
    bases = {r["conditions"].get("basis") for r in summary["results"]
             if r["quantity"] == "diffusion_coefficient"}
    assert bases == {"electrode"}
    assert any("electrode basis only" in n for n in summary["notes"])


def test_the_plan_takes_gitt_at_the_capacity_and_shows_max_pulses_as_the_bound(gitt_run):
    protocol, run = gitt_run
    (exp,) = prepare(protocol).experiments
    store = RunStore.open(run)
    try:
        ran_s = float(store.read("ncm-1")["test_time_s"][-1])
    finally:
        store.close()
    pulse_and_rest = 45 * 60
    assert exp.bound_s > 1000 * pulse_and_rest         # max_pulses: 1000, both ways
    assert exp.estimate_s < 2 * 25 * pulse_and_rest + 6 * 3600
    assert exp.estimate_s == pytest.approx(ran_s, rel=0.25)   # what it took
    result = CliRunner().invoke(app, ["plan", str(protocol), "--json"])
    doc = json.loads(result.output)
    (e,) = doc["experiments"]
    assert e["estimate_s"] == pytest.approx(exp.estimate_s)
    assert e["bound_s"] == pytest.approx(exp.bound_s)
    assert doc["makespan_bound_s"] >= doc["makespan_s"]
    table = CliRunner().invoke(app, ["plan", str(protocol)])
    assert "at most" in table.output and "every loop to its count" in " ".join(
        table.output.split())


def test_a_gitt_that_runs_out_of_pulses_and_one_not_started_full_say_so(tmp_path):
    """The charge GITT's 4 pulses (max_pulses) end near 20 % of the capacity, far below its
    4.35 V: the notes say it ran out of pulses, and that the discharge GITT after it, whose
    state of charge counts from a full cell, did not start from one."""
    text = GITT.replace("until_voltage: 4.35 V, max_pulses: 1000",
                        "until_voltage: 4.35 V, max_pulses: 4")
    (tmp_path / "p.yaml").write_text(text, encoding="utf-8")
    run_simulated(tmp_path / "p.yaml", tmp_path / "run", seed=5)
    notes = summary_of(tmp_path / "run")["notes"]
    (ran_out,) = [n for n in notes if "(max_pulses)" in n]
    assert ran_out.startswith("gitt/ncm-1: the charge GITT (step 3) ran all its 4 pulses")
    assert "without reaching its until_voltage of 4.35 V" in ran_out
    assert "soc_percent up to 20" in ran_out
    (start,) = [n for n in notes if "counts its state of charge" in n]
    assert "the discharge GITT (step 5) counts its state of charge from a full cell" in start
    assert "the step before it (step 3, gitt) ended on duration, not at a charge cut-off" in start


def test_a_gitt_that_reaches_its_voltages_says_nothing_of_pulses_or_its_start(gitt_run):
    _, run = gitt_run
    notes = summary_of(run)["notes"]
    assert not any("(max_pulses)" in n or "counts its state of charge" in n for n in notes), notes
