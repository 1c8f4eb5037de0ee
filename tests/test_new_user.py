"""What a new user met trying cellseq on protocols of their own: the plan's table cut the
names of experiments, cells and instruments in an 80-column terminal, and a fresh Li-ion cell
below its min_voltage at its first reading faulted without a word on why."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from sequencer.cli import app

RATE = """
campaign: ncm811-rate
cells:
  - id: ncm811-graphite-coin-1
    kind: full_cell
    electrolyte: LiPF6 EC/EMC
    anode: graphite
    thickness: 25 um
    diameter: 16 mm
    cathode: {material: NCM811, loading: 10 mg/cm^2, diameter: 14 mm,
              specific_capacity: 190 mAh/g}
    limits: {max_voltage: 4.3 V, min_voltage: %s, max_current: 30 mA}
experiments:
  - name: characterisation-rate-test
    cells: [ncm811-graphite-coin-1]
    steps:
      - {kind: set_temperature, target: 45 degC, tolerance: 0.5 K, hold: 30 min, timeout: 4 h}
      - {kind: rest, duration: 10 min}
      - {kind: cccv_charge, current: C/10, voltage: 4.2 V, until_current: C/20}
      - {kind: cc_discharge, current: 2C, until_voltage: 2.8 V}
"""


def test_the_plan_table_wraps_names_in_80_columns_and_never_cuts_them(write_yaml):
    result = CliRunner().invoke(app, ["plan", str(write_yaml(RATE % "0 V"))],
                                env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert "…" not in result.output
    assert all(len(line) <= 80 for line in result.output.splitlines())
    lines = result.output.splitlines()
    header = next(line for line in lines if line.startswith("experiment"))
    rule = lines.index(next(line for line in lines if line.startswith("─")))
    rows = lines[rule + 1:rule + 1 + 4]
    starts = [header.index(name) for name in ("experiment", "cells", "resources")]
    for (start, end), name in zip(zip(starts, [*starts[1:], None], strict=True),
                                  ("characterisation-rate-test", "ncm811-graphite-coin-1",
                                   "chamber-1,"), strict=True):
        column = "".join(row[start:end].strip() for row in rows)   # a wrapped name, joined
        assert column.startswith(name), (name, column)


def test_a_fresh_li_ion_cell_below_its_min_voltage_at_its_first_reading_says_why(
        tmp_path, write_yaml):
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", str(write_yaml(RATE % "2.7 V")), "--sim", "--out",
                                      str(run_dir)], env={"COLUMNS": "80"})
    assert result.exit_code == 1
    summary = json.loads((run_dir / "report" / "summary.json").read_text(encoding="utf-8"))
    fault = summary["run"]["cells"][0]["fault"]
    assert fault.startswith("safety limit: voltage ")
    assert fault.endswith("; it is the cell's first reading in this run, before any current:"
                          " a fresh cell whose anode holds no lithium yet (graphite, silicon)"
                          " rests near 0-1 V until its first charge, so give min_voltage below"
                          " that for its formation (a dry run simulates such a fresh cell"
                          " unless the cell states it is formed: initial_state: {formed: true,"
                          " soc: 50 %})")

