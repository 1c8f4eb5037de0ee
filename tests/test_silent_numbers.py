"""Numbers that must not be reported when the measurement does not support them: a pellet's bulk
resistance where the bulk arc is not finished at the highest frequency, and a GITT diffusion
coefficient from pulses too long for the short-time formula."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.eis_bulk import ARC_FIT, INTERCEPT, bulk_reading
from analysis.summary_record import summary_of
from sequencer.runner import run_simulated
from simulators.cells import build_cell

PELLET = """
campaign: cold-pellet
cells:
  - {id: p1, kind: blocking, electrolyte: Ta-LLZO, thickness: 1 mm, diameter: 10 mm}
experiments:
  - name: conductivity
    cells: [p1]
    steps:
      - kind: temperature_sweep
        temperatures: [-20 degC, 0 degC]
        tolerance: 0.5 K
        hold: 10 min
        timeout: 3 h
        steps:
          - {kind: peis, f_start: 7 MHz, f_end: 1 Hz, amplitude: 10 mV, points_per_decade: 10}
"""


@pytest.fixture(scope="module")
def pellet_summary(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pellet")
    (tmp / "p.yaml").write_text(PELLET, encoding="utf-8")
    run_simulated(tmp / "p.yaml", tmp / "run", seed=11)
    return summary_of(tmp / "run")


def test_cold_pellet_bulk_resistance_is_the_arc_not_the_top_frequency_point(pellet_summary):
    """At -20 and 0 degC the bulk arc's apex is inside the window (Re Z at 7 MHz is a fraction
    of R_b): each value is R_b of the circuit within 3 %, or null with a note."""
    cell = build_cell("blocking", "Ta-LLZO", 1e-3, np.pi * 0.005**2)
    rows = {r["conditions"]["temperature_degC"]: r for r in pellet_summary["results"]
            if r["quantity"] == "bulk_resistance"}
    assert set(rows) == {-20, 0}
    f_top = np.array([7e6])
    for t, r in rows.items():
        r_b = cell.bulk_resistance_ohm(t)
        top_real = float(cell.impedance(f_top, t).real[0])
        assert top_real < 0.5 * r_b   # the spectrum really is cut off at its top
        if r["value"] is None:
            assert "not reached the real axis" in r["note"]
        else:
            assert r["value"] == pytest.approx(r_b, rel=0.03)
            assert "note" not in r
    values = [rows[t]["value"] for t in (-20, 0)]
    if None not in values:
        assert values[0] > values[1]   # colder: more resistive
    assert any("bulk arc" in n or "bulk resistance not derived" in n
               for n in pellet_summary["notes"])


def test_unresolved_bulk_arc_is_null_with_the_reason() -> None:
    """A spectrum whose fit would swap the bulk and grain-boundary arcs reports no bulk
    resistance rather than the grain boundary's, or Re Z at the top."""
    cell = build_cell("blocking", "Ta-LLZO", 1e-3, np.pi * 0.005**2)
    f = np.logspace(np.log10(7e6), 0, 70)
    for t in (-20.0, 0.0):
        z = cell.impedance(f, t)
        reading = bulk_reading(f, z.real, z.imag)
        assert reading.value_ohm != pytest.approx(z.real[0], rel=0.05)
        if reading.value_ohm is None:
            assert "not reached the real axis" in reading.note
        else:
            assert reading.method == ARC_FIT
            assert reading.value_ohm == pytest.approx(cell.bulk_resistance_ohm(t), rel=0.03)


def test_a_cell_that_is_not_blocking_is_not_given_a_bulk_arc_fit() -> None:
    """Outside blocking cells the top arc is not the bulk's: no fit (it fails after seconds
    of starts), no value, and the note says where the cell's ohmic resistance comes from."""
    cell = build_cell("blocking", "Ta-LLZO", 1e-3, np.pi * 0.005**2)
    f = np.logspace(np.log10(7e6), 0, 70)
    z = cell.impedance(f, -20.0)
    reading = bulk_reading(f, z.real, z.imag, fit_arc=False)
    assert reading.value_ohm is None
    assert "not reached the real axis" in reading.note and "R_ohm" in reading.note


def test_finished_arc_keeps_the_intercept() -> None:
    """A polymer whose bulk arc lies far above the window: the intercept, as before."""
    cell = build_cell("blocking", "AIOSE", 3e-4, np.pi * 0.005**2)
    f = np.logspace(np.log10(3e6), -1, 60)
    z = cell.impedance(f, 25.0)
    reading = bulk_reading(f, z.real, z.imag)
    assert reading.method == INTERCEPT
    assert reading.value_ohm == pytest.approx(cell.bulk_resistance_ohm(25.0), rel=0.02)


GITT = """
campaign: gitt
cells:
  - id: c1
    kind: full_cell
    electrolyte: LiPF6 EC/EMC
    thickness: 25 um
    diameter: 16 mm
    cathode: {{material: NMC622, loading: 10 mg/cm^2, diameter: 12 mm,
              specific_capacity: 170 mAh/g}}
    limits: {{max_voltage: 4.4 V, min_voltage: 2.7 V}}
experiments:
  - name: gitt
    cells: [c1]
    steps:
      - {{kind: rest, duration: 1 h, record_every: 1 min}}
      - {{kind: gitt, direction: charge, current: C/10, pulse: {pulse}, rest: 1 h,
         until_voltage: 4.2 V, max_pulses: 4, record_every: {every}}}
"""


def _gitt(tmp_path, pulse: str, every: str) -> dict:
    (tmp_path / "p.yaml").write_text(GITT.format(pulse=pulse, every=every), encoding="utf-8")
    run_simulated(tmp_path / "p.yaml", tmp_path / "run", seed=4)
    return summary_of(tmp_path / "run")


def test_gitt_pulse_long_against_the_diffusion_time_is_marked(tmp_path) -> None:
    """10 min pulses on NMC622 particles, (r/3)^2 / D ~ 170 s: every D carries the warning,
    the median too, and the run's notes say it."""
    summary = _gitt(tmp_path, "10 min", "5 s")
    d = [r for r in summary["results"] if r["quantity"] == "diffusion_coefficient"]
    assert d
    for r in d:
        assert r["value"] is not None
        assert "not valid" in r.get("note", "") or "fail the validity check" in r["note"]
    assert "tau D / L^2" in d[0]["note"]
    assert any("GITT" in n and "validity check" in n for n in summary["notes"])


def test_gitt_short_pulses_pass_the_check(tmp_path) -> None:
    summary = _gitt(tmp_path, "10 s", "0.1 s")
    d = [r for r in summary["results"] if r["quantity"] == "diffusion_coefficient"]
    assert d
    assert all("note" not in r for r in d)
    assert not any("GITT" in n and "validity check" in n for n in summary["notes"])
    # its 4 pulses do not reach 4.2 V: said, as a titration that covers less than asked
    assert any("ran all its 4 pulses" in n for n in summary["notes"])
