"""A pellet's grain-boundary arc that has moved above the highest frequency (Li6PS5Cl at
80 degC) makes the intercept the bulk plus the grain boundary, about 40 % above the bulk:
the cell's bulk resistance there is null with a note, and its conductivity takes it as the
total, as at the temperatures where the arc shows."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from sequencer.cli import app

SWEEP = """
campaign: lpscl
cells:
  - id: lpscl-1
    kind: blocking
    electrolyte: argyrodite
    thickness: 800 um
    diameter: 10 mm
experiments:
  - name: conductivity
    cells: [lpscl-1]
    steps:
      - kind: temperature_sweep
        temperatures: [25 degC, 80 degC]
        tolerance: 1 K
        hold: 1 min
        timeout: 3 h
        steps:
          - {kind: peis, f_start: 7 MHz, f_end: 100 Hz, amplitude: 10 mV, points_per_decade: 8}
"""


def test_the_bulk_resistance_is_null_where_the_grain_boundary_arc_lies_above_the_window(
        tmp_path, write_yaml):
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", str(write_yaml(SWEEP)), "--sim", "--out",
                                      str(run_dir)])
    assert result.exit_code == 0, result.output
    summary = json.loads((run_dir / "report" / "summary.json").read_text(encoding="utf-8"))
    # the spectra in temperature order: the cool one shows the grain-boundary arc
    cool, hot = (r for r in summary["results"] if r["quantity"] == "bulk_resistance")
    assert cool["value"] is not None and hot["value"] is None
    assert hot["note"].startswith("no grain-boundary arc shows in this spectrum, though it"
                                  f" does at {cool['conditions']['temperature_degC']} degC")
    sigma = [r for r in summary["results"] if r["quantity"] == "ionic_conductivity"]
    assert {r["conditions"]["basis"] for r in sigma} == {"bulk+grain boundary"}
    assert sigma[1]["value"] > sigma[0]["value"] > 0   # the hot one's total is kept
    assert any("bulk resistance not derived (null) for 1 spectra; 80 degC" in n
               for n in summary["notes"])
