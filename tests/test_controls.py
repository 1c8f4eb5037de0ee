"""Pause, continue and stop asked from outside the run (sequencer.controls), in virtual time:
per cell while the others run on, and for the whole run by the paths of Ctrl-C."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import trio

from drivers.clock import TrioClock
from drivers.points import ChannelState
from protocols import load_campaign
from sequencer.controls import (
    ControlError,
    ControlRequest,
    apply_request,
    control_dir,
    read_request,
    watch_requests,
    write_request,
)
from sequencer.executor import SIMULATED_POLL_S, Executor
from sequencer.instruments import Instruments
from sequencer.journal import Journal
from sequencer.plan import build_plan
from sequencer.station import simulated_station
from simulators.lab import SimLab
from store import RunStore

from .fakes import ResistorCell

TWO_CELLS = """
campaign: t
cells:
  - {id: a, kind: symmetric_li, electrolyte: AIOSE, thickness: 300 um, diameter: 16 mm}
  - {id: b, kind: symmetric_li, electrolyte: AIOSE, thickness: 300 um, diameter: 16 mm}
experiments:
  - name: e
    cells: [a, b]
    steps:
      - {kind: set_temperature, target: 25 degC, tolerance: 1 K, hold: 1 min, timeout: 5 h}
      - {kind: constant_current, direction: charge, current: 1 mA, duration: 2 h,
         record_every: 1 min}
      - {kind: rest, duration: 1 h, record_every: 1 min}
"""


def asked(action: str, cell: str | None, who: str = "alice") -> ControlRequest:
    return ControlRequest(action=action, cell=cell, who=who, address="127.0.0.1",
                          asked_utc=time.time())


def run(tmp_path: Path, write_yaml, during, protocol: str = TWO_CELLS):
    """Run ``protocol`` on simulated instruments in virtual time with ``during(executor,
    clock)`` running beside it; returns the store, the instruments and the executor."""
    campaign = load_campaign(write_yaml(protocol))
    station = simulated_station(campaign)
    plan = build_plan(campaign, station, "t.yaml")
    store = RunStore.create(tmp_path, durable=False)
    clock = TrioClock(virtual=True, origin_utc=1.7e9)
    journal = Journal(store, tmp_path, clock)
    holder: dict = {}

    async def main():
        clock.start()
        lab = SimLab(clock, seed=1)
        inst = Instruments()
        for name, cfg in station.instruments.items():
            if cfg.driver == "sim.chamber":
                inst.chambers[name] = lab.add_chamber(name)
            elif cfg.driver == "sim.potentiostat":
                inst.channels[name] = lab.add_potentiostat(name, cfg.channels)
            else:
                inst.channels[name] = lab.add_cycler(name, cfg.channels)
        for p in station.cells.values():
            lab.place(ResistorCell(k_V_per_C=0.01), p.instrument, p.channel, p.chamber)
        ex = Executor(plan, inst, store, journal, clock, SIMULATED_POLL_S)
        holder.update(inst=inst, ex=ex)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(during, ex, clock)
            await ex.run()
            nursery.cancel_scope.cancel()

    try:
        trio.run(main, clock=clock.trio_clock())
    finally:
        store.commit()   # what a dry run's grouped writes hold, as the runner does
        journal.close()
    return store, holder["inst"], holder["ex"]


def outputs_idle(inst: Instruments) -> bool:
    return all(ch.channel(k).poll().state is ChannelState.IDLE
               for ch in inst.channels.values() for k in range(ch.channel_count))


def control_events(store: RunStore) -> list[dict]:
    return [e for e in store.events() if e["kind"] == "control_request"]


def test_a_paused_cell_stops_at_its_next_step_boundary_while_the_other_runs_on(
        tmp_path, write_yaml):
    seen = {}

    async def during(ex, clock):
        await clock.sleep_until(1800.0)          # a is half an hour into its 2 h charge
        apply_request(ex, asked("pause", "a"), "r1")
        await clock.sleep_until(4 * 3600.0)      # b has long finished its steps
        seen["a"] = ex.runs["a"].state
        seen["b_done"] = [s["end_reason"] for s in ex.store.steps("b")]
        apply_request(ex, asked("continue", "a"), "r2")

    store, inst, _ = run(tmp_path, write_yaml, during)
    assert seen["a"] == "paused"
    assert seen["b_done"][-1] == "duration" and len(seen["b_done"]) == 3   # b ran on
    a = store.read("a")
    t = a["test_time_s"]
    charge_end = next(s["ended_t"] for s in store.steps("a") if s["kind"] == "constant_current")
    rest_start = next(s["started_t"] for s in store.steps("a") if s["kind"] == "rest")
    # the charge ran its full 2 h; the rest began only after the continue at 4 h
    assert charge_end < 3 * 3600 and rest_start >= 4 * 3600
    assert not np.any((t > charge_end) & (t < rest_start))   # nothing recorded meanwhile
    asks = control_events(store)
    assert [(e["data"]["who"], e["data"]["action"], e["cell"], e["data"]["refused"])
            for e in asks] == [("alice", "pause", "a", False), ("alice", "continue", "a", False)]
    assert "stops at its next step boundary" in asks[0]["message"]
    paused = [e for e in store.events() if e["kind"] == "paused"]
    assert [e["cell"] for e in paused] == ["a"] and "alice" in paused[0]["message"]
    assert {s["state"] for s in store.cell_states()} == {"completed"}
    assert outputs_idle(inst)


def test_a_stopped_cell_turns_its_output_off_at_once_and_carries_its_step_on(
        tmp_path, write_yaml):
    async def during(ex, clock):
        await clock.sleep_until(1800.0)
        apply_request(ex, asked("stop", "a"), "r1")
        await clock.sleep_until(3 * 3600.0)
        apply_request(ex, asked("continue", "a"), "r2")

    store, inst, _ = run(tmp_path, write_yaml, during)
    events = store.events()
    stopped = next(e for e in events if e["kind"] == "cell_stopped")
    assert stopped["cell"] == "a" and "alice" in stopped["message"]
    assert stopped["t"] == pytest.approx(1800.0, abs=1.0)      # at once, not at the step's end
    a = store.read("a")
    t = a["test_time_s"]
    assert not np.any((t > stopped["t"] + 1) & (t < 3 * 3600.0))   # output off meanwhile
    (charge,) = [s for s in store.steps("a") if s["kind"] == "constant_current"]
    assert charge["end_reason"] == "duration"     # a timed step continues (its policy)
    in_charge = a["step_count"] == charge["step_count"]
    assert a["step_time_s"][in_charge][-1] == pytest.approx(2 * 3600)   # 2 h of current, in all
    assert a["charge_Ah"][-1] == pytest.approx(1e-3 * 2, rel=1e-3)     # and its charge, no more
    assert any(e["kind"] == "step_resumed" and e["cell"] == "a" for e in events)
    soaked = next(s["ended_t"] for s in store.steps("b") if s["kind"] == "set_temperature")
    assert store.read("b")["test_time_s"][-1] == pytest.approx(soaked + 3 * 3600)  # b never waited
    assert {s["state"] for s in store.cell_states()} == {"completed"}
    assert outputs_idle(inst)


def test_requests_that_cannot_be_carried_out_are_journalled_as_refused(tmp_path, write_yaml):
    async def during(ex, clock):
        await clock.sleep_until(600.0)
        for action, cell in (("pause", "zz"), ("continue", "a"), ("continue", None)):
            apply_request(ex, asked(action, cell, who="carol"), f"r-{action}-{cell}")

    store, _, _ = run(tmp_path, write_yaml, during)
    refused = {(e["data"]["action"], e["cell"]): e["data"]["response"]
               for e in control_events(store)}
    assert refused == {("pause", "zz"): "there is no cell 'zz' in this run",
                       ("continue", "a"): "a is not paused",
                       ("continue", None): "nothing is paused"}
    assert all(e["data"]["refused"] for e in control_events(store))
    assert {s["state"] for s in store.cell_states()} == {"completed"}


def test_stopping_the_run_takes_the_path_of_ctrl_c_twice(tmp_path, write_yaml):
    async def during(ex, clock):
        await clock.sleep_until(1800.0)
        apply_request(ex, asked("stop", None, who="dave"), "r1")

    with pytest.raises(BaseExceptionGroup) as caught:
        run(tmp_path, write_yaml, during)
    assert caught.value.subgroup(KeyboardInterrupt) is not None
    store = RunStore.open(tmp_path)
    states = {s["cell"]: s["state"] for s in store.cell_states()}
    assert states == {"a": "aborted", "b": "aborted"}
    aborted = next(e for e in store.events() if e["kind"] == "run_aborted")
    assert aborted["message"] == "stopped by dave (127.0.0.1) from the dashboard"
    assert aborted["t"] == pytest.approx(1800.0, abs=1.0)
    store.close()


def test_a_cell_held_with_nothing_else_to_do_stops_virtual_time(tmp_path, write_yaml):
    """A dry run whose only unfinished cell is paused waits; its clock does not race ahead
    through the chamber watchdog's readings (at most to the next one, which then rests)."""
    seen = {}

    async def during(ex, clock):
        await clock.sleep_until(1800.0)
        apply_request(ex, asked("pause", "a"), "r1")
        while not ("a" in ex.holds.waiting and ex.holds.busy <= ex.holds.waiting):
            await ex.holds.changed.wait()
        seen["held_at"] = clock.now()
        seen["b_running"] = "b" in ex.holds.busy
        await trio.to_thread.run_sync(time.sleep, 0.2)   # wall time passes, and settles
        seen["settled"] = clock.now()
        await trio.to_thread.run_sync(time.sleep, 0.3)
        seen["after"] = clock.now()
        apply_request(ex, asked("continue", "a"), "r2")

    store, _, ex = run(tmp_path, write_yaml, during)
    assert not seen["b_running"]                  # b had finished: only a was left, held
    assert seen["settled"] - seen["held_at"] <= ex.watch_s
    assert seen["after"] == seen["settled"]
    assert {s["state"] for s in store.cell_states()} == {"completed"}


def test_request_files_are_read_taken_and_removed(tmp_path, write_yaml):
    """The run's side of the file exchange: requests written after the run started are carried
    out; a stale one and a file that is not a request are journalled as refused."""
    folder = control_dir(tmp_path)
    folder.mkdir()
    (folder / "00000000000000000001-junk.json").write_text('{"action": "explode"}')
    stale = ControlRequest(action="pause", cell="a", who="eve", address="10.0.0.9",
                           asked_utc=time.time() - 3600)
    (folder / "00000000000000000002-old.json").write_text(stale.model_dump_json())

    async def during(ex, clock):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch_requests, ex, tmp_path)
            await clock.sleep_until(1800.0)
            with clock.frozen():   # run time stands while the request crosses in wall time
                await trio.to_thread.run_sync(write_request, tmp_path, "stop", "b", "frank",
                                              "127.0.0.1")
                while "b" not in ex.holds.cells_held:
                    await trio.to_thread.run_sync(time.sleep, 0.05)
            await clock.sleep_until(2 * 3600.0)
            with clock.frozen():
                await trio.to_thread.run_sync(write_request, tmp_path, "continue", "b",
                                              "frank", "127.0.0.1")
                while "b" in ex.holds.cells_held:
                    await trio.to_thread.run_sync(time.sleep, 0.05)
            nursery.cancel_scope.cancel()

    store, _, _ = run(tmp_path, write_yaml, during)
    events = store.events()
    junk = next(e for e in events if e["kind"] == "control_refused")
    assert "00000000000000000001-junk.json: not a control request (action:" in junk["message"]
    old, stop, go = control_events(store)
    assert old["data"]["refused"] and "asked before this run process started" in old["message"]
    assert (stop["data"]["who"], stop["data"]["action"], stop["cell"]) == ("frank", "stop", "b")
    assert go["data"]["action"] == "continue" and not go["data"]["refused"]
    assert any(e["kind"] == "cell_stopped" and e["cell"] == "b" for e in events)
    assert list(folder.iterdir()) == []                  # every file taken
    assert {s["state"] for s in store.cell_states()} == {"completed"}


@pytest.mark.parametrize(("text", "message"), [
    ('{"action": "pause", "who": "x", "address": "a", "asked_utc": 1, "cell": ""}',
     "cell: String should have at least 1 character"),
    ('{"action": "pause", "who": "x", "address": "a", "asked_utc": 1, "rm": "-rf"}',
     "rm: Extra inputs are not permitted"),
    ('not json', "Invalid JSON"),
    ('{"action": "pause", "who": "' + "x" * 5000 + '"}', "larger than 4096 bytes"),
])
def test_a_bad_request_file_is_refused_with_the_reason(tmp_path, text, message):
    path = tmp_path / "r.json"
    path.write_text(text)
    with pytest.raises(ControlError, match=message):
        read_request(path)


def test_write_request_refuses_bad_arguments_and_writes_whole_files(tmp_path):
    with pytest.raises(ControlError, match=r"^bad control request: action: "):
        write_request(tmp_path, "explode", None, "x", "127.0.0.1")  # type: ignore[arg-type]
    with pytest.raises(ControlError, match=r"^bad control request: who: "):
        write_request(tmp_path, "pause", None, "", "127.0.0.1")
    rid = write_request(tmp_path, "pause", "a", "grace", "::1")
    (path,) = control_dir(tmp_path).iterdir()
    assert path.name == f"{rid}.json"
    assert json.loads(path.read_text())["who"] == "grace"


ONE_HOUR = """
campaign: paced
cells:
  - {id: a, kind: symmetric_li, electrolyte: AIOSE, thickness: 300 um, diameter: 16 mm}
experiments:
  - name: e
    cells: [a]
    steps:
      - {kind: rest, duration: 1 h, record_every: 1 min}
"""


def test_a_paced_dry_run_follows_the_wall_clock(tmp_path, write_yaml):
    """`run --sim --speed X`: X simulated seconds per wall second, polled like hardware."""
    from sequencer.runner import PACED_POLL_WALL_S, run_simulated

    protocol = write_yaml(ONE_HOUR)
    began = time.monotonic()
    outcome = run_simulated(protocol, tmp_path / "run", 0, speed=3600.0)
    wall = time.monotonic() - began
    assert outcome.status == "completed"
    assert 1.0 <= wall < 10.0             # an hour at x3600: a second, not as fast as it can
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["speed"] == 3600.0
    store = RunStore.open(tmp_path / "run")
    data = store.read("a")
    (chunks,) = store._conn.execute("SELECT COUNT(*) FROM chunks").fetchone()
    store.close()
    assert data["step_time_s"][-1] == pytest.approx(3600.0)
    assert np.all(np.diff(data["test_time_s"]) > 0)
    # polled every PACED_POLL_WALL_S of wall time, as on hardware (a virtual-time dry run
    # stores this rest in one poll: the simulator says when the step ends)
    assert chunks >= 3600.0 / 3600.0 / PACED_POLL_WALL_S


def test_speed_is_for_dry_runs_only(tmp_path, write_yaml):
    from typer.testing import CliRunner

    from sequencer.cli import app

    protocol = write_yaml(ONE_HOUR)
    result = CliRunner().invoke(app, ["run", str(protocol), "--station", str(protocol),
                                      "--speed", "10"])
    assert result.exit_code == 2 and "--speed paces a dry run: use it with --sim" in \
        result.output
    result = CliRunner().invoke(app, ["run", str(protocol), "--sim", "--speed", "0"])
    assert result.exit_code == 2 and "Traceback" not in result.output
