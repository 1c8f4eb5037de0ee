"""A step whose voltage cut-off the cell has already reached ends at once, as a cycler ends it
(no fault, the cut-off as its reason, no current, no cycle counted); a cell beyond its safety
window still faults; a fault that comes before a step starts names that step."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from drivers.techniques import ConstantCurrent, ConstantResistance, Profile
from sequencer.cli import app
from sequencer.start_check import met_at_start
from store import RunStore

HALF_CELLS = """
campaign: half
cells:
  - id: nmc622
    kind: full_cell
    electrolyte: LiPF6 EC/EMC
    thickness: 25 um
    diameter: 16 mm
    cathode: {material: NMC622, loading: 10 mg/cm^2, diameter: 12 mm,
              specific_capacity: 170 mAh/g}
    limits: {max_voltage: 4.4 V, min_voltage: 2.7 V}
  - id: lfp
    kind: full_cell
    electrolyte: LiPF6 EC/EMC
    thickness: 25 um
    diameter: 16 mm
    cathode: {material: LFP, loading: 10 mg/cm^2, diameter: 12 mm,
              specific_capacity: 160 mAh/g}
    limits: {max_voltage: 3.9 V, min_voltage: %(lfp_min)s}
experiments:
  - name: cycling
    cells: [%(cells)s]
    steps:
%(steps)s
"""

DISCHARGE_FIRST = """
      - kind: loop
        count: 3
        steps:
          - {kind: cc_discharge, current: C/10, until_voltage: 3.0 V, record_every: 5 min}
          - {kind: cccv_charge, current: C/10, voltage: %(top)s, until_current: C/50,
             record_every: 5 min}
"""


def _run(tmp_path, write_yaml, text: str):
    protocol = write_yaml(text)
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", str(protocol), "--sim", "--out", str(run_dir)])
    assert "Traceback" not in result.output
    summary = json.loads((run_dir / "report" / "summary.json").read_text(encoding="utf-8"))
    return result, run_dir, summary


def test_met_at_start_follows_the_direction_the_step_drives_the_cell():
    discharge = ConstantCurrent(-1e-4, 3600.0, 1.0, until_voltage_V=3.0)
    charge = ConstantCurrent(1e-4, 3600.0, 1.0, until_voltage_V=4.2)
    assert met_at_start(discharge, 2.9) == \
        "2.9 V at open circuit is at or below the cut-off 3 V"
    assert met_at_start(discharge, 3.0) is not None
    assert met_at_start(discharge, 3.3) is None
    assert met_at_start(charge, 4.25) == "4.25 V at open circuit is at or above the cut-off 4.2 V"
    assert met_at_start(charge, 3.3) is None
    assert met_at_start(ConstantCurrent(-1e-4, 3600.0, 1.0), 0.0) is None   # no cut-off
    load = ConstantResistance(100.0, 60.0, 1.0, 0.05, until_voltage_V=3.0)
    assert met_at_start(load, 2.95) is not None
    profile = Profile("current", (0.0, 10.0), (-1e-3, -1e-3), 1.0, 1e-3, min_voltage_V=2.8,
                      max_voltage_V=4.3)
    assert met_at_start(profile, 4.31) is not None and met_at_start(profile, 3.5) is None


def test_a_fresh_half_cell_whose_protocol_starts_with_a_discharge_runs_as_on_a_cycler(
        tmp_path, write_yaml):
    # LFP rests below the 3.0 V cut-off: the discharge ends before any current. The pristine
    # NMC622 rests above it, but the first reading under current is past it (and past the
    # 2.7 V safety limit in the model): the channel stops at the cut-off, as a real one does.
    result, run_dir, summary = _run(tmp_path, write_yaml, HALF_CELLS % {
        "lfp_min": "2.4 V", "cells": "nmc622, lfp",
        "steps": DISCHARGE_FIRST % {"top": "3.8 V"}})
    assert result.exit_code == 0, result.output
    assert summary["run"]["status"] == "completed"
    log = (run_dir / "run.log").read_text(encoding="utf-8")
    assert ("step_ended_at_start [lfp]: cycling step 2 constant_current: voltage (2.894 V at"
            " open circuit is at or below the cut-off 3 V: the step ended at once, no current"
            " applied)") in log
    assert "step_ended_at_start [nmc622]" not in log and "safety_trip" not in log
    store = RunStore.open(run_dir)
    try:
        first = store.steps("lfp")[0]
        points = store.read("lfp")
    finally:
        store.close()
    assert first["end_reason"] == "voltage" and first["ended_t"] == first["started_t"]
    assert "at or below the cut-off" in first["params"]["ended_at_start"]
    assert points["current_A"][0] == 0.0   # its one point: at open circuit
    # no cycle of nothing: the LFP cell's two discharges that ran are its cycles 1 and 2
    capacities = {cell: [r for r in summary["results"] if r["cell"] == cell
                         and r["quantity"] == "discharge_capacity"] for cell in ("lfp", "nmc622")}
    assert [r["conditions"]["cycle"] for r in capacities["lfp"]] == [1, 2]
    assert all(r["value"] > 50 for r in capacities["lfp"])
    assert ("cycling/lfp: step count 1 (discharge) ended at once: the cell was already at the"
            " voltage cut-off when the step began (run.log: step_ended_at_start), so no current"
            " was applied and it counts as no cycle") in summary["notes"]
    # the NMC622 cell took the current and gave nothing: a cycle, null with its note
    first, *others = capacities["nmc622"]
    assert first["value"] is None and "no real discharge" in first["note"]
    assert [r["conditions"]["cycle"] for r in others] == [2, 3]
    assert all(r["value"] > 50 for r in others)


def test_a_cell_beyond_its_safety_window_at_the_start_still_faults(tmp_path, write_yaml):
    result, run_dir, summary = _run(tmp_path, write_yaml, HALF_CELLS % {
        "lfp_min": "2.95 V", "cells": "lfp", "steps": DISCHARGE_FIRST % {"top": "3.8 V"}})
    assert result.exit_code == 1
    log = (run_dir / "run.log").read_text(encoding="utf-8")
    assert ("safety_trip [lfp]: voltage 2.8939 V beyond the limit 2.95 V at 0.0 s into the"
            " step (cycling step 2 constant_current: at open circuit, before any current)") in log
    assert summary["run"]["cells"][0]["state"] == "faulted"
    store = RunStore.open(run_dir)
    try:
        assert [s["end_reason"] for s in store.steps("lfp")] == ["safety_limit"]
    finally:
        store.close()


@pytest.mark.parametrize("command", ["status", "report"])
def test_a_fault_before_a_step_starts_names_the_step_it_prevented(tmp_path, write_yaml,
                                                                   command):
    # the reference discharge ended at once: the charge taking its C-rate of it cannot start
    result, run_dir, summary = _run(tmp_path, write_yaml, HALF_CELLS % {
        "lfp_min": "2.4 V", "cells": "lfp", "steps": """
      - {kind: rest, duration: 10 min}
      - {kind: cc_discharge, label: first, current: C/10, until_voltage: 3.0 V}
      - {kind: rest, duration: 10 min}
      - {kind: cccv_charge, current: C/10, voltage: 3.8 V, until_current: C/50,
         c_rate_reference: first}
"""})
    assert result.exit_code == 1
    cell = summary["run"]["cells"][0]
    assert cell["fault"].startswith("cycling step 4 (constant_current): c_rate_reference")
    assert summary["run"]["not_derived"][0]["reason"].startswith(
        "cut short at step 4 (constant_current): the cell faulted there")
    store = RunStore.open(run_dir)
    try:
        state = store.cell_states()[0]
        rows = store.steps("lfp")
    finally:
        store.close()
    assert (state["step_index"], state["step_kind"]) == (4, "constant_current")
    assert state["step_count"] == len(rows) == 3   # the step that did not start has no row
    out = CliRunner().invoke(app, [command, str(run_dir)], env={"COLUMNS": "80"})
    assert "Traceback" not in out.output
    if command == "status":
        assert "4 constant" in out.output
