"""A cell's ``initial_state``: where a dry run's simulated full cell starts (formed, at a state of
charge), checked like every field, used by the simulators only, and the warning a dry run gives
when a cell would start outside its safety window."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from protocols import load_campaign
from sequencer.cli import app
from sequencer.instruments import cell_model
from sequencer.plan import prepare

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "protocols" / "examples" / "rpt_formed.yaml"
runner = CliRunner()

CELL = """
campaign: formed
cells:
  - id: gr-1
    kind: %(kind)s
    electrolyte: LiPF6 EC/EMC
    anode: graphite
    thickness: 25 um
    diameter: 16 mm
    cathode: {material: NCM811, loading: 10 mg/cm^2, diameter: 14 mm,
              specific_capacity: 190 mAh/g}
    limits: {max_voltage: 4.3 V, min_voltage: %(min)s, max_current: 30 mA}
%(state)s
experiments:
  - name: rest
    cells: [gr-1]
    steps:
      - {kind: rest, duration: 10 min}
"""


def protocol(write_yaml, state: str = "", min_v: str = "2.7 V", kind: str = "full_cell"
             ) -> Path:
    text = CELL % {"kind": kind, "min": min_v,
                   "state": f"    initial_state: {state}" if state else ""}
    if kind != "full_cell":   # a cell of another kind has no cathode
        text = text.replace("    anode: graphite\n", "").replace(
            "    cathode: {material: NCM811, loading: 10 mg/cm^2, diameter: 14 mm,\n"
            "              specific_capacity: 190 mAh/g}\n", "")
    return write_yaml(text)


@pytest.mark.parametrize(("state", "kind", "message"), [
    ("{formed: true, soc: 120 %}", "full_cell",
     "protocol.yaml:13: cells[0].initial_state.soc: '120 %' is outside 0 % to 100 %"),
    ("{formed: true, soc: -5 %}", "full_cell",
     "protocol.yaml:13: cells[0].initial_state.soc: '-5 %' is outside 0 % to 100 %"),
    ("{formed: true, soc: 0.5}", "full_cell",
     "protocol.yaml:13: cells[0].initial_state.soc: expected a percentage written with its unit"),
    ("{formed: false, soc: 50 %}", "full_cell",
     "protocol.yaml:13: cells[0].initial_state.formed: must be true: a simulated cell"),
    ("{soc: 50 %}", "full_cell",
     "protocol.yaml:13: cells[0].initial_state: missing required field 'formed'"),
    ("{formed: true}", "full_cell",
     "protocol.yaml:13: cells[0].initial_state: missing required field 'soc'"),
    ("{formed: true, soc: 50 %, voltage: 3.7 V}", "full_cell",
     "protocol.yaml:13: cells[0].initial_state.voltage: unknown key 'voltage'"),
    ("{formed: true, soc: 50 %}", "symmetric_li",
     "cells[0]: a symmetric_li cell has no state of charge to start at; initial_state is for"
     " full cells"),
])
def test_a_bad_initial_state_is_refused_naming_file_line_and_field(write_yaml, state, kind,
                                                                   message):
    result = runner.invoke(app, ["validate", str(protocol(write_yaml, state, kind=kind))])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def _ocv(write_yaml, soc: str) -> float:
    cell = load_campaign(protocol(write_yaml, f"{{formed: true, soc: {soc}}}")).cells[0]
    assert cell.initial_state is not None
    return cell_model(cell).ocv_V(25.0)


def test_the_simulated_cell_starts_formed_at_the_stated_state_of_charge(write_yaml):
    fresh = cell_model(load_campaign(protocol(write_yaml)).cells[0])
    assert fresh.ocv_V(25.0) < 1.5    # as assembled: the graphite holds no lithium
    ocvs = [_ocv(write_yaml, soc) for soc in ("0 %", "20 %", "50 %", "80 %", "100 %")]
    assert ocvs == sorted(ocvs) and len(set(ocvs)) == len(ocvs)
    # empty is the cathode's lower voltage vs Li (2.8 V for NCM811), full its upper one less
    # the lithiated graphite's (4.3 V - about 0.1 V)
    assert ocvs[0] == pytest.approx(2.8, abs=0.01)
    assert 4.1 < ocvs[-1] < 4.3
    formed = cell_model(load_campaign(protocol(write_yaml, "{formed: true, soc: 50 %}"))
                        .cells[0])
    assert formed.sei_remaining_C == 0.0    # type: ignore[attr-defined]


def test_a_li_metal_cell_starts_at_its_state_of_charge_too():
    from simulators.cells import FullCell, build_cell

    area = math.pi * 0.006**2
    cell = build_cell("full_cell", "AIOSE", 300e-6, area,
                      {"material": "NCM811", "active_mass_kg": 1.9e-2 * area,
                       "capacity_Ah": 7e-4, "area_m2": area})
    assert isinstance(cell, FullCell)
    cell.start_formed(0.3)
    assert cell.state_of_charge == pytest.approx(0.3)


def test_a_dry_run_of_an_rpt_on_a_formed_cell_runs_at_its_datasheet_limits(tmp_path):
    """The example: a formed NCM811 || graphite cell at 50 %, min_voltage 2.7 V."""
    run_dir = tmp_path / "run"
    result = runner.invoke(app, ["run", str(EXAMPLE), "--sim", "--seed", "1", "--out",
                                 str(run_dir)])
    assert result.exit_code == 0, result.output
    assert "warning:" not in result.output
    summary = json.loads((run_dir / "report" / "summary.json").read_text(encoding="utf-8"))
    cell = summary["run"]["cells"][0]
    assert cell["state"] == "completed" and cell.get("fault") is None
    results = [r for r in summary["results"] if r["cell"] == "nmc-gr-1"]
    capacity = {r["conditions"].get("tag"): r["value"] for r in results
                if r["quantity"] == "discharge_capacity"}
    assert 0.85 * 190 < capacity["rpt"] <= 190
    assert capacity[None] == pytest.approx(capacity["rpt"] / 2, rel=0.1)
    pulses = [r["value"] for r in results if r["quantity"] == "pulse_resistance"
              and r["unit"] == "Ohm" and r["value"] is not None]
    assert len(pulses) > 40 and all(5 < r < 200 for r in pulses)   # Ohm, a coin cell


def test_a_dry_run_warns_of_a_cell_that_would_start_beyond_its_limits(write_yaml):
    plain = prepare(protocol(write_yaml))
    (warning,) = [str(w) for w in plain.warnings]
    assert warning.startswith("cell gr-1: a dry run starts it unformed, at rest at 1.12 V,"
                              " below its min_voltage of 2.7 V: it faults at its first"
                              " reading")
    assert "initial_state: {formed: true, soc: 50 %}" in warning
    result = runner.invoke(app, ["validate", str(protocol(write_yaml))])
    assert result.exit_code == 0 and "warning: cell gr-1: a dry run starts it" in result.output

    assert prepare(protocol(write_yaml, "{formed: true, soc: 50 %}")).warnings == ()
    empty = prepare(protocol(write_yaml, "{formed: true, soc: 0 %}", min_v="3 V"))
    assert [str(w) for w in empty.warnings] == [
        "cell gr-1: a dry run starts it formed at 0 % SOC, at rest at 2.8 V, below its"
        " min_voltage of 3 V: it faults at its first reading; choose an initial_state soc"
        " inside the window"]


def test_a_run_on_hardware_notes_that_it_does_not_use_the_initial_state(write_yaml,
                                                                        tmp_path):
    station = tmp_path / "station.yaml"
    station.write_text("station: bench\ninstruments:\n  smu: {driver: keithley2450, address:"
                       ' "TCPIP0::192.0.2.9::inst0::INSTR"}\ncells:\n'
                       "  gr-1: {instrument: smu, channel: 0}\n", encoding="utf-8")
    plan = prepare(protocol(write_yaml, "{formed: true, soc: 0 %}", min_v="3 V"), station)
    assert plan.warnings == ()   # the cell on the bench is what it is
    assert ("cell gr-1: initial_state (formed at 0 % SOC) describes the cell for the"
            " simulators only: on instruments the cell is what it is, and nothing is set or"
            " measured from it" in plan.notes)


def test_a_resumed_dry_run_restores_the_formed_state_whatever_the_model_starts_in(write_yaml):
    """Resume builds the cell afresh and restores its snapshot: every part of the formed state
    is in the snapshot, so a formed start survives a resume even into an unformed model."""
    formed = cell_model(load_campaign(protocol(write_yaml, "{formed: true, soc: 30 %}"))
                        .cells[0])
    fresh = cell_model(load_campaign(protocol(write_yaml)).cells[0])
    assert fresh.ocv_V(25.0) != formed.ocv_V(25.0)
    fresh.restore(formed.state())
    assert fresh.state() == formed.state() and fresh.ocv_V(25.0) == formed.ocv_V(25.0)
