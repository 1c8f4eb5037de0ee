"""HPPC: a pulse table at a ladder of states of charge, expanded into primitive steps, checked
against the cell's limits, and analysed into pulse resistances at 0.1 s, 1 s and 10 s."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from analysis.errors import AnalysisError
from analysis.hppc import Pulse, pulse_readings, state_of_charge_percent
from analysis.report import make_report
from analysis.summary_record import summary_of
from protocols import ProtocolError
from protocols.steps import Chronopotentiometry, ConstantCurrent, Loop, Rest
from protocols.steps.hppc import HPPC
from sequencer.cli import app
from sequencer.handlers.hppc import hppc
from sequencer.runner import prepare, run_simulated

CELL = """
campaign: hppc
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
  - name: hppc
    cells: [ncm-1]
    steps:
      - kind: temperature_sweep
        temperatures: [25 degC, 45 degC]
        hold: 10 min
        steps:
          - {kind: cccv_charge, current: C/5, voltage: 4.1 V, until_current: C/50}
          - kind: hppc
            pulses:
              - {direction: discharge, current: 2C, duration: 10 s, rest: 40 s}
              - {direction: charge, current: 1.5C, duration: 10 s, rest: 40 s}
            soc_step: 20 %
            soc_current: C/2
            levels: 4
            rest: 20 min
            max_voltage: 4.4 V
            min_voltage: 2.8 V
"""


def test_the_step_expands_into_a_loop_of_rest_pulses_and_an_soc_step(write_yaml):
    plan = prepare(write_yaml(CELL))
    step = next(s for s in plan.campaign.experiments[0].steps[0].steps if isinstance(s, HPPC))
    (loop,) = hppc(step)
    assert isinstance(loop, Loop) and loop.count == 4 and not loop.count_cycles
    assert loop.until is None          # a pulse ending on its limit ends no level
    first, d_pulse, d_rest, c_pulse, c_rest, soc = loop.steps
    assert isinstance(first, Rest) and first.duration == 1200
    assert isinstance(d_pulse, Chronopotentiometry) and d_pulse.direction == "discharge"
    assert d_pulse.until_voltage == 2.8 and d_pulse.record_every == 0.1
    assert c_pulse.direction == "charge" and c_pulse.until_voltage == 4.4
    assert d_rest.duration == c_rest.duration == 40
    assert isinstance(soc, ConstantCurrent) and soc.duration == pytest.approx(0.2 / 0.5 * 3600)
    # the plan takes the titration at its length: 2 x (soak, a 5 h CC + 1 h CV, 4 levels)
    (exp,) = plan.experiments
    level = 1200 + 2 * (10 + 40) + 1440
    assert exp.estimate_s == pytest.approx(2 * (600 + 1800 + 6 * 3600 + 4 * level))
    # at most: each soak to its timeout (4 h by default), each step to its time limit
    assert exp.bound_s >= exp.estimate_s + 2 * (4 * 3600 - 600 - 1800)


@pytest.mark.parametrize(("change", "field", "message"), [
    ("current: 2C, duration", "pulses[0].current", "above the cell's max_current of 5 mA"),
    ("max_voltage: 4.4 V", "max_voltage", "above the cell's max_voltage of 4.45 V"),
    ("min_voltage: 2.8 V", "min_voltage", "below the cell's min_voltage of 2.5 V"),
    ("soc_current: C/2", "soc_current", "above the cell's max_current"),
])
def test_a_table_beyond_the_cells_limits_is_refused_naming_the_field(write_yaml, change,
                                                                     field, message):
    worse = {"current: 2C, duration": "current: 15C, duration",
             "max_voltage: 4.4 V": "max_voltage: 4.5 V",
             "min_voltage: 2.8 V": "min_voltage: 2.3 V",
             "soc_current: C/2": "soc_current: 15C"}[change]
    path = write_yaml(CELL.replace(change, worse))
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    text = " ".join(result.output.split())
    assert "protocol.yaml:" in text and f".steps[1].{field}" in text
    assert "cell ncm-1" in text and message in text


@pytest.mark.parametrize(("change", "message"), [
    ("soc_step: 20 %", "soc_step as a share of the capacity needs soc_current as a C-rate"),
    ("levels: 4", "move the state of charge by 120 %"),
    ("rest: 20 min", "pulse_record_every is longer than the shortest pulse"),
])
def test_a_table_that_cannot_be_run_as_written_is_refused(write_yaml, change, message):
    worse = {"soc_step: 20 %": "soc_step: 20 %\n            soc_current: 1 mA",
             "levels: 4": "levels: 6",
             "rest: 20 min": "rest: 20 min\n            pulse_record_every: 20 s"}[change]
    text = CELL.replace(change, worse)
    if change == "soc_step: 20 %":
        text = text.replace("            soc_current: C/2\n", "", 1)
    with pytest.raises(ProtocolError) as info:
        prepare(write_yaml(text))
    assert message in str(info.value)


def test_readings_follow_the_pulse_and_refuse_a_time_without_a_point():
    r0, r1, tau, current = 0.05, 0.03, 2.0, -2.0

    def pulse(dt: float, duration: float = 10.0, **kw) -> Pulse:
        t = np.arange(0, duration + 1e-9, dt)
        v = 3.7 + current * (r0 + r1 * (1 - np.exp(-t / tau)))
        return Pulse(t, v, current, 3.7, duration, **kw)

    readings = pulse_readings(pulse(0.1))
    assert [r.time_s for r in readings] == [0.1, 1.0, 10.0]
    expected = [r0 + r1 * (1 - np.exp(-t / tau)) for t in (0.1, 1.0, 10.0)]
    assert [r.resistance_ohm for r in readings] == pytest.approx(expected, rel=1e-3)
    sparse = pulse_readings(pulse(1.0))
    assert sparse[0].resistance_ohm is None and "within 0.025 s of 0.1 s" in sparse[0].why_none
    assert sparse[1].resistance_ohm == pytest.approx(expected[1], rel=1e-6)
    short = pulse_readings(pulse(0.1, duration=4.3, ended_on_limit=True))
    assert [r.time_s for r in short] == pytest.approx([0.1, 1.0, 4.3])
    assert short[-1].at_end and short[-1].resistance_ohm == pytest.approx(
        r0 + r1 * (1 - np.exp(-4.3 / tau)), rel=1e-6)
    # the ohmic jump alone crosses the limit (a charge pulse at full charge in the cold): that
    # pulse has no reading, with the reason; a pulse cut short without a limit is refused
    jump = pulse_readings(Pulse(np.array([0.0]), np.array([4.43]), 2.0, 4.19, 10.0,
                                ended_on_limit=True))
    assert [(r.resistance_ohm, r.at_end) for r in jump] == [(None, True)]
    assert "voltage limit at its first point" in jump[0].why_none
    with pytest.raises(AnalysisError, match="two recorded points"):
        pulse_readings(Pulse(np.array([0.0]), np.array([4.43]), 2.0, 4.19, 10.0))
    assert state_of_charge_percent(0.25, 1.0, discharging=True) == 75.0
    assert state_of_charge_percent(-0.25, 1.0, discharging=False) == 25.0


@pytest.fixture(scope="module")
def hppc_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hppc")
    (tmp / "p.yaml").write_text(CELL, encoding="utf-8")
    outcome = run_simulated(tmp / "p.yaml", tmp / "run", seed=2)
    assert not outcome.faulted
    make_report(tmp / "run")
    return tmp / "run"


def test_pulse_resistances_per_soc_direction_time_and_temperature(hppc_run):
    summary = json.loads((hppc_run / "report" / "summary.json").read_text())
    assert summary["run"]["status"] == "completed"
    ohm = [r for r in summary["results"] if r["quantity"] == "pulse_resistance"
           and r["unit"] == "Ohm" and r["value"] is not None]
    keys = {(r["conditions"]["temperature_degC"], r["conditions"]["direction"],
             r["conditions"]["time_s"], r["conditions"]["level"]) for r in ohm}
    assert keys == {(t, d, s, level) for t in (25, 45) for d in ("charge", "discharge")
                    for s in (0.1, 1.0, 10.0) for level in (1, 2, 3, 4)}
    socs = sorted({r["conditions"]["soc_percent"] for r in ohm
                   if r["conditions"]["temperature_degC"] == 25})
    assert np.diff(socs) == pytest.approx([20, 20, 20], abs=0.5) and 99 < socs[-1] <= 100
    by = {(r["conditions"]["temperature_degC"], r["conditions"]["direction"],
           r["conditions"]["time_s"], r["conditions"]["level"]): r["value"] for r in ohm}
    for t in (25, 45):
        for d in ("charge", "discharge"):
            for level in (1, 2, 3, 4):       # polarisation grows through the pulse
                assert by[(t, d, 0.1, level)] < by[(t, d, 1.0, level)] < by[(t, d, 10.0, level)]
    warm = np.mean([v for (t, *_), v in by.items() if t == 45])
    cold = np.mean([v for (t, *_), v in by.items() if t == 25])
    assert warm < 0.8 * cold                # a warmer cell conducts better
    area = [r for r in summary["results"] if r["quantity"] == "pulse_resistance"
            and r["unit"] == "Ohm cm2"]
    assert len(area) == len(ohm) and all(r["conditions"]["area_specific"] for r in area)
    cathode_cm2 = np.pi * 0.6 ** 2
    assert sorted(r["value"] for r in area) == pytest.approx(
        sorted(v * cathode_cm2 for v in by.values()), rel=1e-9)
    assert (hppc_run / "report" / "figures").is_dir()
    html = (hppc_run / "report" / "index.html").read_text()
    assert "pulse resistance against state of charge" in html


def test_a_pulse_that_reaches_its_limit_ends_there_and_is_no_fault(write_yaml, tmp_path):
    """At 100 % a 5C charge pulse reaches 4.4 V at once: the pulse ends, the table goes on,
    and its reading is at the pulse's end."""
    text = CELL.replace("temperatures: [25 degC, 45 degC]", "temperatures: [25 degC]") \
        .replace("{direction: charge, current: 1.5C", "{direction: charge, current: 5C") \
        .replace("levels: 4", "levels: 1")
    run_simulated(write_yaml(text), tmp_path / "run", seed=1)
    summary = json.loads((make_report(tmp_path / "run")[0]).read_text())
    assert summary["run"]["status"] == "completed"
    charge = [r for r in summary["results"] if r["quantity"] == "pulse_resistance"
              and r["unit"] == "Ohm" and r["conditions"]["direction"] == "charge"]
    (end,) = [r for r in charge if r["conditions"]["at_pulse_end"]]
    assert end["conditions"]["time_s"] < 10 and end["value"] > 0
    log = (tmp_path / "run" / "run.log").read_text()
    assert "fault" not in log.lower()


def test_pulses_recorded_too_sparsely_give_no_01_s_value_and_say_so(write_yaml, tmp_path):
    text = CELL.replace("temperatures: [25 degC, 45 degC]", "temperatures: [25 degC]") \
        .replace("levels: 4", "levels: 1") \
        .replace("rest: 20 min\n", "rest: 20 min\n            pulse_record_every: 1 s\n")
    run_simulated(write_yaml(text), tmp_path / "run", seed=1)
    summary = json.loads((make_report(tmp_path / "run")[0]).read_text())
    fast = [r for r in summary["results"] if r["quantity"] == "pulse_resistance"
            and r["conditions"]["time_s"] == 0.1]
    assert fast and all(r["value"] is None and "no point recorded" in r["note"] for r in fast)
    assert any("pulse resistances not derived" in n for n in summary["notes"])


def test_an_hppc_not_started_from_a_full_cell_says_its_soc_is_relative(write_yaml, tmp_path):
    """An HPPC that discharges counts its state of charge from 100 %: one with no charge to
    the cut-off right before it (here a C/2 discharge of 10 min ran before) says that its
    soc_percent is only the charge moved since it began; the fixture's (CC-CV charge first)
    does not, nor does a pulse a voltage limit ended advise a faster recording."""
    text = CELL.replace("temperatures: [25 degC, 45 degC]", "temperatures: [25 degC]") \
        .replace("levels: 4", "levels: 1") \
        .replace("- {kind: cccv_charge, current: C/5, voltage: 4.1 V, until_current: C/50}",
                 "- {kind: cccv_charge, current: C/5, voltage: 4.1 V, until_current: C/50}\n"
                 "          - {kind: constant_current, direction: discharge, current: C/2,"
                 " until_voltage: 2.8 V, duration: 10 min}") \
        .replace("{direction: charge, current: 1.5C", "{direction: charge, current: 5C")
    run_simulated(write_yaml(text), tmp_path / "run", seed=1)
    notes = summary_of(tmp_path / "run")["notes"]
    (said,) = [n for n in notes if "counts its state of charge" in n]
    assert "the discharge HPPC (step 4) counts its state of charge from a full cell" in said
    assert "(step 3, constant_current) ended on duration, not at a charge cut-off" in said
    assert "not the cell's state of charge" in said


def test_an_hppc_after_a_charge_to_its_cut_off_says_nothing_of_its_start(hppc_run):
    notes = summary_of(hppc_run)["notes"]
    assert not any("counts its state of charge" in n for n in notes), notes


def test_a_pulse_its_limit_ended_at_once_is_not_blamed_on_the_recording(write_yaml, tmp_path):
    """At 100 % a 5C charge pulse on a cell limited to 4.1 V ends at its first point: its
    reading is null and the note says why, without telling the user to record faster."""
    text = CELL.replace("temperatures: [25 degC, 45 degC]", "temperatures: [25 degC]") \
        .replace("{direction: charge, current: 1.5C", "{direction: charge, current: 5C") \
        .replace("max_voltage: 4.4 V", "max_voltage: 4.1 V").replace("levels: 4", "levels: 1")
    run_simulated(write_yaml(text), tmp_path / "run", seed=1)
    summary = summary_of(tmp_path / "run")
    nulls = [r for r in summary["results"] if r["quantity"] == "pulse_resistance"
             and r["value"] is None]
    assert nulls and all("voltage limit at its first point" in r["note"] for r in nulls)
    (said,) = [n for n in summary["notes"] if "pulse resistances not derived" in n]
    assert "record pulses every 0.1 s" not in said
