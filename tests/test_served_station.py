"""A run through the real drivers, against the wire-protocol simulators ``cellseq sim serve``
starts: ESPEC chamber, VSP-300 stand-in (behind its BiologicDevice proxy), Neware BTS or
Keithley 2450."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from drivers.errors import CellseqError
from sequencer.runner import resume_run, run_simulated
from sequencer.serve import serve, write_station
from sequencer.status import run_status
from simulators.wire.biologic import BiologicServer
from simulators.wire.neware_bts import NewareBTSServer
from store import RunStore
from tests.conftest import ROOT

PROTOCOL = """
campaign: served
cells:
  - {id: membrane, kind: blocking, electrolyte: AIOSE, thickness: 300 um, diameter: 16 mm}
  - id: ncm
    kind: full_cell
    electrolyte: AIOSE
    thickness: 300 um
    diameter: 16 mm
    cathode: {material: NCM811, loading: 1.9 mg/cm^2, diameter: 12 mm,
              specific_capacity: 200 mAh/g}
    limits: {max_voltage: 4.45 V, min_voltage: 2.5 V}
experiments:
  - name: conductivity
    cells: [membrane]
    steps:
      - {kind: set_temperature, target: 25 degC, tolerance: 1 K, hold: 2 min, timeout: 3 h}
      - {kind: peis, f_start: 1 MHz, f_end: 1 Hz, amplitude: 10 mV, points_per_decade: 5}
  - name: cycling
    cells: [ncm]
    steps:
      - {kind: rest, duration: 10 min, record_every: 60 s}
      - {kind: constant_current, direction: charge, current: 0.5C, duration: 1 h,
         record_every: 60 s}
      - kind: loop
        count: 2
        steps:
          - {kind: constant_current, direction: discharge, current: 0.2C, duration: 20 min,
             record_every: 60 s}
          - {kind: constant_current, direction: charge, current: 0.2C, duration: 20 min,
             record_every: 60 s}
"""
SPEED = 3000.0


@pytest.fixture(params=["neware.bts"])
def served(request, tmp_path, write_yaml):
    protocol = write_yaml(PROTOCOL)
    lab = serve(protocol, speed=SPEED, seed=2, cycler=request.param, step_dir=tmp_path / "steps")
    station = tmp_path / "station.yaml"
    write_station(lab.station, station)
    try:
        yield protocol, station, lab
    finally:
        lab.stop()


def _store(run_dir: Path) -> dict:
    store = RunStore.open(run_dir)
    try:
        return {"status": store.meta()["status"], "mode": store.meta()["manifest"]["mode"],
                "steps": store.steps(), "events": store.events(),
                "states": {s["cell"]: s["state"] for s in store.cell_states()},
                "ncm": store.read("ncm"), "spectrum": store.read("membrane", "spectrum")}
    finally:
        store.close()


@pytest.mark.parametrize("served", ["neware.bts", "keithley2450"], indirect=True)
def test_a_run_goes_through_the_real_drivers_end_to_end(served, tmp_path):
    protocol, station, _ = served
    cfg = yaml.safe_load(station.read_text())["instruments"]
    drivers = {i["driver"] for i in cfg.values()}
    assert drivers == {"espec", "biologic.vsp300"} | {next(d for d in drivers if d not in
                                                          ("espec", "biologic.vsp300"))}
    outcome = run_simulated(protocol, tmp_path / "run", seed=2, station=station)
    run = _store(outcome.run_dir)
    assert run["mode"] == "hardware" and run["status"] == "completed"
    assert run["states"] == {"membrane": "completed", "ncm": "completed"}
    spectrum = run["spectrum"]
    assert len(spectrum["frequency_Hz"]) == 31                 # 6 decades x 5 + 1
    assert np.all(spectrum["z_real_ohm"] > 0)
    assert abs(np.nanmean(spectrum["temperature_C"]) - 25) < 1.5   # the chamber's air
    cc = [s for s in run["steps"] if s["cell"] == "ncm" and s["kind"] == "constant_current"]
    assert [s["end_reason"] for s in cc] == ["duration"] * 5
    data = run["ncm"]
    # 1 h at 0.5C, then twice 20 min at 0.2C each way
    one_c = 200e-3 * 1.9e-3 * np.pi * 0.6**2   # A: 200 mA/g x 1.9 mg/cm^2 over a 12 mm disc
    assert [s["params"]["current_A"] / one_c for s in cc] == pytest.approx(
        [0.5, -0.2, 0.2, -0.2, 0.2], rel=1e-6)
    # The counters hold what the points say flowed: each step's current over the time its
    # points span. That time is the step's own where the instrument ends the step (the BTS),
    # and longer by however late the sequencer polled where the driver ends it (the SMU, at
    # x3000 a 50 ms late poll is 150 s): so the check holds on a loaded machine too. Never
    # shorter: no step ended early.
    moved = {"charge_Ah": 0.0, "discharge_Ah": 0.0}
    for s in cc:
        times = data["step_time_s"][data["step_count"] == s["step_count"]]
        assert times[-1] >= s["params"]["duration_s"] - 1e-6
        counter = "charge_Ah" if s["params"]["current_A"] > 0 else "discharge_Ah"
        moved[counter] += abs(s["params"]["current_A"]) * (times[-1] - times[0]) / 3600
    assert data["charge_Ah"][-1] == pytest.approx(moved["charge_Ah"], rel=0.01)
    assert data["discharge_Ah"][-1] == pytest.approx(moved["discharge_Ah"], rel=0.01)
    if "neware.bts" in drivers:   # the cycler ends its steps on its own clock: exactly
        assert data["charge_Ah"][-1] == pytest.approx((0.5 + 2 * 0.2 / 3) * one_c, rel=0.01)
        assert data["discharge_Ah"][-1] == pytest.approx(2 * 0.2 * one_c / 3, rel=0.01)
    assert np.all(np.diff(data["test_time_s"]) >= 0)
    for inst in cfg.values():   # a station's password is nowhere in the run directory
        if "password" in inst:
            for path in outcome.run_dir.rglob("*"):
                if path.is_file():
                    assert inst["password"].encode() not in path.read_bytes(), path


def test_the_served_lab_survives_a_dropped_connection(served, tmp_path):
    protocol, station, lab = served
    for server in lab.servers.values():   # the line protocols reconnect and send again
        if not isinstance(server, BiologicServer):
            server.faults.drop_next()
    outcome = run_simulated(protocol, tmp_path / "run", seed=2, station=station)
    run = _store(outcome.run_dir)
    assert run["states"] == {"membrane": "completed", "ncm": "completed"}


def test_a_killed_client_resumes_against_servers_that_kept_their_cells(served, tmp_path):
    protocol, station, _ = served
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "sequencer", "run", str(protocol),
                             "--station", str(station), "--out", str(run_dir), "--no-report"],
                            cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:   # kill it once the full cell is cycling
        if (run_dir / "run.sqlite").exists():
            store = RunStore.open(run_dir)
            n = sum(1 for s in store.steps("ncm") if s["kind"] == "constant_current")
            store.close()
            if n >= 3:
                break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    # without the station, the BTS has no password: refused, and the run stays as it was
    with pytest.raises(CellseqError, match="no password"):
        resume_run(run_dir)
    st = run_status(run_dir)
    assert st["status"] == "interrupted"
    assert {c["state"] for c in st["cells"]} <= {"interrupted", "completed"}
    assert "run_resumed" not in [e["kind"] for e in _store(run_dir)["events"]]
    resume_run(run_dir, station=station)   # the station again: the BTS password is not kept
    run = _store(run_dir)
    assert run["status"] == "completed" and run["states"]["ncm"] == "completed"
    kinds = [e["kind"] for e in run["events"]]
    assert "run_interrupted" in kinds
    data = run["ncm"]
    same_step = np.diff(data["step_count"]) == 0
    assert np.all(np.diff(data["test_time_s"])[same_step] > 0)   # nothing stored twice
    cc = [s for s in run["steps"] if s["kind"] == "constant_current" and s["ended_t"]]
    assert sum(s["end_reason"] == "duration" for s in cc) == 5


def test_a_bts_step_that_ended_while_the_client_was_dead_is_taken_up(served, tmp_path):
    """Killed during a BTS step that then runs to its end: the resumed run downloads what the
    BTS recorded and ends the step with its reason, instead of charging the cell again."""
    protocol, station, lab = served
    bts = next(s for s in lab.servers.values() if isinstance(s, NewareBTSServer))
    channel = lab.station.cells["ncm"].channel
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "sequencer", "run", str(protocol),
                             "--station", str(station), "--out", str(run_dir), "--no-report"],
                            cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    step, deadline = None, time.monotonic() + 60
    while step is None and time.monotonic() < deadline:   # kill it during a stored CC step
        if (run_dir / "run.sqlite").exists():
            store = RunStore.open(run_dir)
            step = next((s for s in store.steps("ncm") if s["kind"] == "constant_current"
                         and s["ended_t"] is None and "attachment" in s["params"]
                         and store.last_point(s["id"]) is not None), None)
            store.close()
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert step is not None, "no constant-current step was seen running"
    while bts.status(channel) == "working":   # the BTS runs the step to its end meanwhile
        time.sleep(0.02)
    assert bts.status(channel) == "finish"
    recorded = [t for _, t, _, _ in bts.recorded(channel)]
    tests = bts._next_testid

    resume_run(run_dir, station=station)
    run = _store(run_dir)
    assert run["status"] == "completed" and run["states"]["ncm"] == "completed"
    row = next(s for s in run["steps"] if s["id"] == step["id"])
    assert row["end_reason"] == "duration"
    assert [e["kind"] for e in run["events"] if e["cell"] == "ncm" and e["kind"] in
            ("step_reattached", "step_resumed", "step_restarted")] == ["step_reattached"]
    data = run["ncm"]
    ours = data["step_count"] == row["step_count"]
    # every point the BTS recorded, once: none stored twice, none left on the BTS
    assert data["step_time_s"][ours] == pytest.approx(recorded, abs=1e-3)
    first = int(np.flatnonzero(ours)[0])
    counter = "charge_Ah" if row["params"]["current_A"] > 0 else "discharge_Ah"
    moved = data[counter][ours][-1] - data[counter][first - 1]
    expected = abs(row["params"]["current_A"]) * row["params"]["duration_s"] / 3600
    assert moved == pytest.approx(expected, rel=0.02)
    steps_left = sum(1 for s in run["steps"] if s["cell"] == "ncm" and s["id"] > step["id"])
    assert bts._next_testid - tests == steps_left   # the step itself was not started again
