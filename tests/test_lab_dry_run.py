"""A lab's own cells dry-run end to end: a protocol written with names as labs write them,
graphite full cells, a half cell and a Li||Li cell in a liquid, through the CLI and the
analysis."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from sequencer.cli import app
from store import RunStore

PROTOCOL = """\
campaign: lab-cells
cells:
  - id: nmc622-gr-1
    kind: full_cell
    electrolyte: 1 M LiPF6 in EC:EMC 3:7 + 2 wt% VC
    anode: graphite
    np_ratio: 1.15
    thickness: 25 um
    diameter: 16 mm
    cathode: {material: NMC622, loading: 10 mg/cm^2, diameter: 12 mm,
              specific_capacity: 180 mAh/g}
    limits: {min_voltage: 0.0 V, max_voltage: 4.4 V}
  - id: nmc622-li-1
    kind: full_cell
    electrolyte: LiPF6 EC/EMC
    thickness: 25 um
    diameter: 16 mm
    cathode: {material: NCM622, loading: 10 mg/cm^2, diameter: 12 mm,
              specific_capacity: 180 mAh/g}
    limits: {min_voltage: 2.8 V, max_voltage: 4.4 V}
  - id: lili-1
    kind: symmetric_li
    electrolyte: LiPF6-EC-EMC
    thickness: 25 um
    diameter: 16 mm
experiments:
  - name: formation
    cells: [nmc622-gr-1]
    steps:
      - kind: loop
        count: 2
        steps:
          - {kind: cccv_charge, current: 0.2C, voltage: 4.2 V, until_current: C/20}
          - {kind: cc_discharge, current: 0.2C, until_voltage: 2.8 V}
  - name: rest
    cells: [nmc622-li-1]
    steps:
      - {kind: rest, duration: 10 min, record_every: 1 min}
      - {kind: cccv_charge, current: 0.5C, voltage: 4.3 V, until_current: C/10}
  - name: plating
    cells: [lili-1]
    steps:
      - {kind: plating_stripping, current_density: 1 mA/cm^2, half_cycle: 30 min, cycles: 2}
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lab")
    protocol = tmp / "lab.yaml"
    protocol.write_text(PROTOCOL)
    result = CliRunner().invoke(app, ["run", str(protocol), "--sim", "--out", str(tmp / "run")])
    assert result.exit_code == 0, result.output
    return tmp / "run"


def _results(run_dir):
    data = json.loads((run_dir / "report" / "summary.json").read_text())
    return data["results"]


def test_graphite_cell_shows_a_first_cycle_loss_then_high_efficiency(run):
    ce = {r["conditions"]["cycle"]: r["value"] for r in _results(run)
          if r["cell"] == "nmc622-gr-1" and r["quantity"] == "coulombic_efficiency"}
    assert 80 < ce[1] < 93 and ce[2] > 99.5
    q = [r["value"] for r in _results(run)
         if r["cell"] == "nmc622-gr-1" and r["quantity"] == "discharge_capacity"]
    assert all(140 < x < 200 for x in q)


def test_half_cell_rests_at_its_pristine_ocv_and_charges(run):
    store = RunStore.open(run)
    try:
        series = store.read("nmc622-li-1")
    finally:
        store.close()
    v, i = series["voltage_V"], series["current_A"]
    assert 3.0 < float(v[0]) < 3.55 and abs(float(i[0])) < 1e-9  # the first point, at rest
    assert float(v.max()) == pytest.approx(4.3, abs=0.02)


def test_li_li_in_a_liquid_polarises_tens_of_mv(run):
    eta = [r["value"] for r in _results(run)
           if r["cell"] == "lili-1" and r["quantity"] == "overpotential"]
    assert eta and all(20 < x < 60 for x in eta)
