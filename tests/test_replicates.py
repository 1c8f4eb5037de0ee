"""Cells of one experiment in the same role are replicates: summary.json gives the mean and
standard deviation of each quantity they all reported, and the report draws them with bands."""

from __future__ import annotations

import json

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from analysis.derive import derive
from analysis.replicates import replicate_summary, role
from analysis.report import make_report
from analysis.results import Result
from sequencer.runner import run_simulated

CELL = """
  - id: {id}
    kind: full_cell
    electrolyte: AIOSE
    thickness: 300 um
    diameter: 16 mm
    cathode: {{material: NCM811, loading: {loading} mg/cm^2, diameter: 12 mm,
              specific_capacity: 200 mAh/g}}
    limits: {{max_voltage: 4.45 V, min_voltage: 2.5 V, max_current: 5 mA}}"""
PROTOCOL = "campaign: replicates\ncells:" + "".join(
    CELL.format(id=i, loading=m) for i, m in (("a", 1.9), ("b", 1.9), ("c", 2.5))) + """
experiments:
  - name: cycling
    cells: [a, b, c]
    steps:
      - {kind: set_temperature, target: 25 degC, tolerance: 0.5 K, hold: 10 min, timeout: 3 h}
      - kind: loop
        count: 4
        steps:
          - {kind: cccv_charge, current: 1C, voltage: 4.35 V, until_current: C/20}
          - {kind: cc_discharge, current: 1C, until_voltage: 2.8 V}
"""


def test_a_role_is_a_cell_without_its_name():
    a = {"kind": "full_cell", "electrolyte": "AIOSE", "cathode": "NCM811",
         "active_mass_kg": 2.1488493750554185e-06, "area_m2": 2.0106e-4}
    assert role(a) == role({**a, "active_mass_kg": 2.14884937505e-06})
    assert role(a) != role({**a, "active_mass_kg": 2.8e-06})
    assert role(a) != role({**a, "electrolyte": "LLZTO"})


def test_replicates_need_one_result_each_for_a_match():
    def r(cell, value, **c):
        return Result("e", cell, "m", "discharge_capacity", value, "mAh/g", c,
                      "" if value is not None else "no real discharge")

    cells = {"a": {"kind": "full_cell"}, "b": {"kind": "full_cell"}}
    summary = replicate_summary([{"name": "e", "cells": ["a", "b"]}], cells, [
        r("a", 190.0, cycle=1, time_s=10.0), r("b", 194.0, cycle=1, time_s=12.0),  # measured
        r("a", 180.0, cycle=2), r("a", 181.0, cycle=2), r("b", 185.0, cycle=2),     # ambiguous
        r("a", 170.0, cycle=3), r("b", None, cycle=3)])                               # b: null
    (only,) = summary
    assert only["conditions"] == {"cycle": 1} and only["n"] == 2
    assert only["mean"] == 192.0 and only["std"] == pytest.approx(np.std([190, 194], ddof=1))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("replicates")
    (tmp / "p.yaml").write_text(PROTOCOL, encoding="utf-8")
    run_simulated(tmp / "p.yaml", tmp / "run", seed=8)
    make_report(tmp / "run")
    return tmp / "run"


def test_summary_gives_mean_and_std_of_replicate_cells(run):
    summary = json.loads((run / "report" / "summary.json").read_text())
    replicates = summary["replicates"]
    assert {tuple(r["cells"]) for r in replicates} == {("a", "b")}   # c has another loading
    capacity = {r["conditions"]["cycle"]: r for r in replicates
                if r["quantity"] == "discharge_capacity"}
    assert sorted(capacity) == [1, 2, 3, 4]
    values = {(r["cell"], r["conditions"]["cycle"]): r["value"] for r in summary["results"]
              if r["quantity"] == "discharge_capacity"}
    for cycle, rec in capacity.items():
        pair = [values[("a", cycle)], values[("b", cycle)]]
        assert rec["n"] == 2 and rec["mean"] == pytest.approx(np.mean(pair))
        assert rec["std"] == pytest.approx(np.std(pair, ddof=1))
        assert rec["std"] < 0.01 * rec["mean"]            # the same cell, measured twice
        assert rec["role"]["cathode"] == "NCM811" and rec["unit"] == "mAh/g"
    assert not any(r["quantity"] == "capacity_retention" for r in replicates)  # 4 cycles


def test_replicates_are_drawn_with_bands(run):
    figures = {caption: f for _, caption, f in derive(run, figures=True).figures}
    band = figures["replicates: discharge_capacity (mean +- std)"]
    FigureCanvasAgg(band)
    ax = band.axes[0]
    assert ax.collections, "no band"
    (line,) = ax.get_lines()
    assert line.get_xdata().tolist() == [1, 2, 3, 4]
    assert ax.get_xlabel() == "cycle"


def test_cells_with_another_anode_are_no_replicates(run):
    from store import RunStore

    store = RunStore.open(run)
    try:
        cells = store.meta()["cells"]
    finally:
        store.close()
    assert cells["a"]["anode"] == "Li" and cells["a"]["np_ratio"] == 1.1
    graphite = {**cells["b"], "anode": "graphite"}
    assert role(cells["a"]) == role(cells["b"]) != role(graphite)
