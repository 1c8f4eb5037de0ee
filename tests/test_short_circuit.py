"""A short is a collapse of the cell's own voltage, for cells of any impedance.

A liquid-electrolyte Li|Li cell (the library's LiPF6 in EC/DEC/EMC: a CCD of 3.0 mA/cm^2, a
2 Ohm short) plates at about 0.18 V at 3.0 mA/cm^2 and shorts to 6 mA x 2 Ohm = 12 mV: above
the absolute 5 mV threshold, so only the rule relative to the cell's own voltage sees it.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
from typer.testing import CliRunner

from drivers.points import ChannelState
from drivers.short_circuit import ShortWatch
from drivers.techniques import (
    SHORT_COLLAPSE_FRACTION,
    ConstantCurrent,
    ConstantVoltage,
    OpenCircuit,
)
from sequencer.cli import app
from simulators.cells import build_cell
from simulators.clock import ManualClock
from simulators.instruments import VSP300_CAPABILITIES, SimChannel
from simulators.materials import load_material
from store import RunStore

LIQUID = "LiPF6-EC-DEC-EMC"
AREA_M2 = math.pi * 0.008**2          # a 16 mm disc, 2.01 cm^2
FLOOR_V = 0.005                       # the protocol's default short_circuit_below

# a half cycle as a liquid cell shows it: the rise to a 0.18 V plateau, then at 200 s the
# collapse to 12 mV with a 2 s time constant; a reading every 5 s
TIMES = np.arange(0.0, 400.0, 5.0)
PLATEAU = 0.02 + 0.16 * (1 - np.exp(-TIMES / 20.0))
VOLTS = np.where(TIMES < 200.0, PLATEAU,
                 0.012 + (PLATEAU - 0.012) * np.exp(-np.maximum(TIMES - 200.0, 0) / 2.0))


def watch(**changes) -> ShortWatch:
    technique = replace(ConstantCurrent(6e-3, 600.0, 5.0, short_below_V=FLOOR_V, settle_s=60.0),
                        **changes)
    found = ShortWatch.of(technique)
    assert found is not None
    return found


def expected_short() -> float:
    """By hand: the first reading after settling below 20 % of the largest |V| before it."""
    for k, (t, v) in enumerate(zip(TIMES, VOLTS, strict=True)):
        if t >= 60.0 and abs(v) < SHORT_COLLAPSE_FRACTION * np.abs(VOLTS[:k + 1]).max():
            return float(t)
    raise AssertionError("never shorted")


def test_a_liquid_cells_collapse_is_a_short_the_absolute_floor_misses():
    assert watch().first(TIMES, VOLTS) == expected_short() == 205.0
    assert VOLTS.min() > FLOOR_V        # what the 5 mV rule alone never saw
    assert watch(short_collapse_fraction=None).first(TIMES, VOLTS) is None


def test_one_reading_at_a_time_and_whole_buffers_agree():
    by_reading = watch()
    first = next(float(t) for t, v in zip(TIMES, VOLTS, strict=True)
                 if by_reading.shorted(float(t), float(v)))
    by_buffer = watch()
    found = (by_buffer.first(TIMES[c], VOLTS[c]) for c in np.array_split(np.arange(TIMES.size), 9))
    assert first == next(f for f in found if f is not None) == expected_short()


def test_nothing_is_judged_before_settling():
    """A reversal passes through 0 V: the first minute is not judged, but it counts for the
    reference (a cell that collapses right after it is still seen)."""
    t = np.array([0.0, 10.0, 30.0, 59.0, 60.0])
    v = np.array([0.15, 0.0, 0.001, 0.001, 0.001])
    assert watch().first(t, v) == 60.0
    assert watch().first(t[:4], v[:4]) is None


def test_a_sagging_plateau_or_a_relaxing_nucleation_peak_is_no_short():
    """Liquid cells peak at nucleation and relax to a lower plateau; long half cycles drift.
    Neither falls to a fifth of the peak."""
    t = np.arange(0.0, 3600.0, 5.0)
    peak_then_plateau = 0.06 + 0.09 * np.exp(-t / 120.0)       # 0.15 V -> 0.06 V (40 %)
    sagging = 0.2 * (1 - 0.5 * t / t[-1])                        # down by half over an hour
    for v in (peak_then_plateau, sagging, -sagging):
        assert watch().first(t, v) is None


def test_a_real_short_to_a_few_millivolts_is_still_seen_by_the_floor():
    """A cell that shorted before its voltage ever rose: the floor catches it."""
    t = np.arange(0.0, 300.0, 5.0)
    assert watch().first(t, np.full(t.size, 0.002)) == 60.0


def test_only_a_constant_current_that_watches_for_shorts_gets_a_watch():
    assert ShortWatch.of(ConstantCurrent(1e-3, 60.0, 1.0)) is None
    assert ShortWatch.of(ConstantCurrent(0.0, 60.0, 1.0, short_below_V=0.01)) is None
    assert ShortWatch.of(ConstantVoltage(0.01, 60.0, 1.0)) is None
    assert ShortWatch.of(OpenCircuit(60.0, 1.0)) is None
    floor_only = ShortWatch.of(ConstantCurrent(1e-3, 60.0, 1.0, short_below_V=0.01),
                               relative=False)
    assert floor_only is not None and floor_only.collapse_fraction is None


# -- the simulated firmware, on a simulated liquid cell -----------------------------------------

def liquid_channel() -> tuple[SimChannel, ManualClock]:
    clock = ManualClock()
    ch = SimChannel("vsp/ch0", clock, VSP300_CAPABILITIES, np.random.default_rng(0))
    ch.connect(build_cell("symmetric_li", LIQUID, 25e-6, AREA_M2),
               lambda t: np.full(np.shape(t), 25.0))
    return ch, clock


@pytest.mark.parametrize(("fraction", "reason"), [(SHORT_COLLAPSE_FRACTION, "short"),
                                                  (None, "duration")])
def test_the_simulated_firmware_ends_a_liquid_cells_step_at_its_short(fraction, reason):
    ccd = load_material(LIQUID)["ccd_mA_per_cm2"]
    current = ccd * 1e-3 * AREA_M2 * 1e4            # the cell's CCD, in A
    ch, clock = liquid_channel()
    ch.start(ConstantCurrent(current, 600.0, 5.0, short_below_V=FLOOR_V, settle_s=60.0,
                             short_collapse_fraction=fraction))
    clock.advance(700.0)
    r = ch.poll()
    assert (r.state, r.end_reason) == (ChannelState.DONE, reason)
    v = np.abs(r.points.voltage_V)
    assert v.max() > 0.15 and v[-1] > FLOOR_V      # ~0.18 V, collapsing towards ~12 mV
    if reason == "short":
        assert r.points.time_s[-1] < 100.0          # the cell shorts 60 s into the step
        assert v[-1] < SHORT_COLLAPSE_FRACTION * v.max() * 1.01


# -- end to end: a CCD ramp on a liquid cell -------------------------------------------------------

RAMP = """
campaign: liquid-ccd
cells:
  - id: li-liquid-1
    kind: symmetric_li
    electrolyte: LiPF6-EC-DEC-EMC
    thickness: 25 um
    diameter: 16 mm
    limits: {{max_voltage: 1 V, min_voltage: -1 V, max_current: {max_current}}}
experiments:
  - name: ccd
    cells: [li-liquid-1]
    steps:
      - {{kind: rest, duration: 10 min}}
      - {{kind: ccd_ramp, start: 0.5 mA/cm^2, increment: 0.5 mA/cm^2, maximum: {maximum},
         half_cycle: 10 min, record_every: 5 s}}
"""


def run_ramp(tmp_path, max_current: str, maximum: str = "5 mA/cm^2"):
    protocol = tmp_path / "ramp.yaml"
    protocol.write_text(RAMP.format(max_current=max_current, maximum=maximum), encoding="utf-8")
    result = CliRunner().invoke(app, ["run", str(protocol), "--sim", "--out",
                                      str(tmp_path / "run")])
    summary = json.loads((tmp_path / "run" / "report" / "summary.json").read_text())
    store = RunStore.open(tmp_path / "run")
    try:
        steps, events = store.steps("li-liquid-1"), store.events()
    finally:
        store.close()
    return result, summary, steps, events


def test_a_liquid_cells_ccd_ramp_ends_on_its_short_and_reports_its_ccd(tmp_path):
    """10 mA lets the ramp reach 5 mA/cm^2: before the relative rule it ran on past the
    short to a trip, and the analysis still quoted a CCD."""
    result, summary, steps, events = run_ramp(tmp_path, "11 mA")
    assert result.exit_code == 0, result.output
    assert summary["run"]["status"] == "completed"
    shorted = [s for s in steps if s["end_reason"] == "short"]
    assert len(shorted) == 1 and shorted[0] == steps[-1]        # the ramp ended there
    assert not [e for e in events if e["kind"] == "safety_trip"]
    ccd = [r for r in summary["results"] if r["quantity"] == "critical_current_density"]
    j_short = abs(shorted[0]["params"]["current_A"]) / AREA_M2 * 0.1
    assert [r["value"] for r in ccd] == [pytest.approx(j_short)]
    assert j_short == pytest.approx(load_material(LIQUID)["ccd_mA_per_cm2"], rel=0.01)
    # the shorted half cycle's |I| R_short is no overpotential
    densities = [r["conditions"]["current_density_mA_cm2"] for r in summary["results"]
                 if r["quantity"] == "overpotential"]
    assert densities and max(densities) < j_short
    # one loop-end line for the short, though it ended the level's loop and the ramp's
    log = (tmp_path / "run" / "run.log").read_text()
    assert log.count("loop_ended") == 1 and "a short circuit" in log
    assert [e["kind"] for e in events].count("loop_ended") == 1


def test_a_ramp_ended_by_a_trip_says_no_short_was_detected_and_gives_no_ccd(tmp_path):
    result, summary, steps, events = run_ramp(tmp_path, "5.5 mA")   # trips at 3 mA/cm^2
    assert result.exit_code == 1
    assert steps[-1]["end_reason"] == "safety_limit"
    assert [e["data"]["quantity"] for e in events if e["kind"] == "safety_trip"] == ["current"]
    assert summary["run"]["status"] == "faulted"
    assert not [r for r in summary["results"] if r["quantity"] == "critical_current_density"]
    (note,) = [n for n in summary["notes"] if "critical current density" in n]
    assert "no short detected before the trip" in note and "3 mA/cm2" in note
    assert "no short detected before the trip" in result.output


def test_a_ramp_that_never_shorted_says_the_ccd_is_above_its_last_level(tmp_path):
    result, summary, steps, _ = run_ramp(tmp_path, "11 mA", maximum="2.5 mA/cm^2")
    assert result.exit_code == 0 and summary["run"]["status"] == "completed"
    assert {s["end_reason"] for s in steps} == {"duration"}
    assert not [r for r in summary["results"] if r["quantity"] == "critical_current_density"]
    assert [n for n in summary["notes"] if "critical current density" in n] == [
        "ccd/li-liquid-1: critical current density: no short detected up to the ramp's last"
        " level, 2.5 mA/cm2; the CCD is above it, no value reported"]
