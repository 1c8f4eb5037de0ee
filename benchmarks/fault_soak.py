"""Fault soak: instrument faults injected into a run on the wire simulators, one run per fault.

    python benchmarks/fault_soak.py [--speed 1000] [--only alarm short ...] [--keep]

A served lab (``sequencer.serve.serve``, in this process: two ESPEC chambers, a VSP-300
stand-in, a Neware BTS, ``speed`` times faster than the wall clock) hosts a small campaign: a
blocking cell soaked at 30 degC, its PEIS and a long rest on the VSP-300; a full cell soaked at
25 degC, rested and CC cycled on the BTS. For each fault a fresh lab and run: ``cellseq``'s
runner (``run_simulated``) runs in the main thread; once both cells are under way (the full
cell charging, the blocking cell resting), another thread injects the fault on the servers
(``server.faults``), and for lasting faults clears it a few seconds later. The drivers are
given a 2 s reply timeout (station option ``timeout_s``) so a timeout costs seconds.

Each fault ends as one of: ``survived`` (the run completed, every cell completed),
``stopped safely + resumed`` (the run, or a cell, stopped with the cause in the journal, and
``resume_run`` with the faults cleared completed every cell), ``faulted, not resumable`` (a
cell stopped with its cause journalled and the rest of the run completed, but ``resume_run``
cannot bring the cell back: a run that completed is not resumed) or ``FAILED`` (anything else,
such as a stop that left an output on); ``NOT EXERCISED`` if no command met the fault.
One line per fault: the outcome, the journalled cause (or the recovery the journal shows, or
the driver's log when nothing was journalled), any output the servers still see on once the
run has ended (a safe stop leaves none), the store's duplicated and torn rows (as
``crash_soak.py`` counts them) and the wall time.

Target: every fault survived, or a safe, resumable stop with the cause journalled.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from crash_soak import check_store

from sequencer.runner import resume_run, run_simulated
from sequencer.serve import ServedLab, serve, write_station
from sequencer.status import FINISHED
from simulators.wire.biologic import BiologicServer
from simulators.wire.espec import EspecServer
from simulators.wire.neware_bts import BtsFaults, NewareBTSServer
from simulators.wire.server import LineServer
from store import RunStore, StoreError

PROTOCOL = """
campaign: fault-soak
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
      - {kind: set_temperature, target: 30 degC, tolerance: 1 K, hold: 2 min, timeout: 3 h}
      - {kind: peis, f_start: 1 MHz, f_end: 1 Hz, amplitude: 10 mV, points_per_decade: 5}
      - {kind: rest, duration: 2 h, record_every: 60 s}
  - name: cycling
    cells: [ncm]
    steps:
      - {kind: set_temperature, target: 25 degC, tolerance: 1 K, hold: 2 min, timeout: 3 h}
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
TIMEOUT_S = 2.0        # every driver's reply timeout (wall s), set in the station file
SEED = 3
#: Journal events that say why a run or a cell stopped, and those that show a recovery.
CAUSES = ("safety_trip", "cell_faulted", "soak_failed", "chamber_failed", "run_aborted")
RECOVERIES = ("chamber_suspended", "chamber_recovering", "chamber_resumed", "cell_suspended",
              "step_restarted", "step_resumed", "step_reattached", "resoak")


@dataclass(frozen=True)
class Fault:
    name: str
    what: str                                  # what is injected, for the printout
    server: str                                # "bts", "vsp", "chamber" (the full cell's)
    inject: Callable[[LineServer], None]
    lasts_s: float = 0.0                       # wall seconds before it is cleared (0: one-shot)


def _delay(seconds: float) -> Callable[[LineServer], None]:
    return lambda s: s.faults.delay_replies(seconds)


def _trip(s: LineServer) -> None:
    assert isinstance(s.faults, BtsFaults)
    s.faults.trip_protect(0)


def _truncate(s: LineServer) -> None:
    assert isinstance(s.faults, BtsFaults)
    s.faults.truncate_next()


FAULTS = (
    Fault("drop-bts", "dropped connection (BTS)", "bts", lambda s: s.faults.drop_next()),
    Fault("drop-vsp", "dropped connection (VSP-300)", "vsp", lambda s: s.faults.drop_next()),
    Fault("drop-chamber", "dropped connection (chamber)", "chamber",
          lambda s: s.faults.drop_next()),
    Fault("timeout-bts", f"one reply late beyond the {TIMEOUT_S:g} s timeout (BTS)", "bts",
          _delay(TIMEOUT_S + 0.5), TIMEOUT_S + 0.3),
    Fault("timeout-vsp", f"one reply late beyond the {TIMEOUT_S:g} s timeout (VSP-300)", "vsp",
          _delay(TIMEOUT_S + 0.5), TIMEOUT_S + 0.3),
    Fault("timeout-chamber", "chamber not answering for 4 s", "chamber", _delay(30.0), 4.0),
    Fault("garbage-bts", "garbage reply (BTS)", "bts", lambda s: s.faults.garbage_next()),
    Fault("garbage-vsp", "garbage reply (VSP-300)", "vsp", lambda s: s.faults.garbage_next()),
    Fault("garbage-chamber", "garbage reply (chamber)", "chamber",
          lambda s: s.faults.garbage_next()),
    Fault("truncated-bts", "reply cut short, connection closed (BTS)", "bts", _truncate),
    Fault("na-chamber", "NA: error (chamber: NA:CONT NOT READY-1)", "chamber",
          lambda s: s.faults.refuse_next()),
    Fault("refused-bts", "command refused (BTS: items answer false)", "bts",
          lambda s: s.faults.refuse_next()),
    Fault("alarm", "chamber alarm raised, cleared 3 s later", "chamber",
          lambda s: s.faults.raise_alarm(), 3.0),
    Fault("short", "cell short: BTS protection trip on the full cell's channel", "bts", _trip),
    Fault("lost-bts", "BTS not answering for 12 s (beyond timeout x retries)", "bts",
          _delay(60.0), 12.0),
)


# -- one run -----------------------------------------------------------------------------------

def served(protocol: Path, speed: float, tmp: Path) -> tuple[ServedLab, Path]:
    """A served lab and its station file, every driver with the short reply timeout."""
    lab = serve(protocol, speed=speed, seed=SEED, step_dir=tmp / "steps")
    station = tmp / "station.yaml"
    write_station(lab.station, station)
    record = yaml.safe_load(station.read_text(encoding="utf-8"))
    for inst in record["instruments"].values():
        inst.setdefault("options", {})["timeout_s"] = TIMEOUT_S
    station.write_text(yaml.safe_dump(record, sort_keys=False), encoding="utf-8")
    return lab, station


def target(lab: ServedLab, which: str) -> LineServer:
    if which == "chamber":
        name = lab.station.cells["ncm"].chamber
        assert name is not None
        server = lab.servers[name]
        assert isinstance(server, EspecServer)
        return server
    kind = NewareBTSServer if which == "bts" else BiologicServer
    return next(s for s in lab.servers.values() if isinstance(s, kind))


def under_way(run_dir: Path) -> bool:
    """The full cell is charging and the blocking cell resting after its spectrum, both on
    their instruments (each step has stored a point)."""
    try:
        store = RunStore.open(run_dir)
    except StoreError:
        return False
    try:
        running = {(s["cell"], s["kind"]) for s in store.steps()
                   if s["ended_t"] is None and store.last_point(s["id"]) is not None}
    finally:
        store.close()
    return {("ncm", "constant_current"), ("membrane", "rest")} <= running


def pending(server: LineServer) -> bool:
    """A one-shot fault that no command has met yet (the servers' private flags)."""
    f = server.faults
    return any(bool(getattr(f, name, False)) for name in
               ("_drop", "_garbage", "_refuse", "_truncate", "_trips"))


class Captured(logging.Handler):
    """The drivers' warnings during one run (a retry leaves no other trace)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def outputs_on(lab: ServedLab) -> list[str]:
    """The channels still running a technique and the chambers not in standby, as the servers
    see them (their inspection methods)."""
    on = []
    for cell, placed in lab.station.cells.items():
        server = lab.servers[placed.instrument]
        if isinstance(server, NewareBTSServer) and server.status(placed.channel) == "working":
            on.append(f"{cell}'s BTS channel")
        if isinstance(server, BiologicServer) and server.instrument.bay(placed.channel).running:
            on.append(f"{cell}'s VSP-300 channel")
    on += [f"{name} ({server.mode})" for name, server in lab.servers.items()
           if isinstance(server, EspecServer) and server.mode != "STANDBY"]
    return on


@dataclass
class Outcome:
    fault: Fault
    verdict: str = "FAILED"
    detail: str = ""
    injected_at: float | None = None           # wall s after the run started
    triggered: bool = True
    duplicated: int = 0
    torn: int = 0
    wall_s: float = 0.0
    warnings: list[str] = field(default_factory=list)
    left_on: list[str] = field(default_factory=list)   # outputs on once the run had ended


def inject_when_ready(run_dir: Path, server: LineServer, fault: Fault, out: Outcome,
                      started: float, stop: threading.Event) -> None:
    """The injecting thread: wait until both cells are under way, inject, clear later."""
    while not stop.is_set() and not under_way(run_dir):
        time.sleep(0.02)
    if stop.is_set():
        return
    fault.inject(server)
    out.injected_at = time.monotonic() - started
    if fault.lasts_s:
        stop.wait(fault.lasts_s)
        server.faults.clear()


def journal(run_dir: Path) -> tuple[str, dict[str, str], list[dict]]:
    store = RunStore.open(run_dir)
    try:
        return (store.meta()["status"], {s["cell"]: s["state"] for s in store.cell_states()},
                store.events())
    finally:
        store.close()


def short(text: str, limit: int = 150) -> str:
    """One line, at most ``limit`` characters; trio's nested exception groups shown as their
    leaves."""
    text = " ".join(text.split())
    text = re.sub(r"(?:ExceptionGroup\('[^']*', \[)+(.*?)(?:\]\))+", r"\1", text)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def run_one(fault: Fault, protocol: Path, speed: float, tmp: Path) -> Outcome:
    out = Outcome(fault)
    lab, station = served(protocol, speed, tmp)
    run_dir = tmp / "run"
    stop = threading.Event()
    server = target(lab, fault.server)
    started = time.monotonic()
    injector = threading.Thread(target=inject_when_ready, name=f"inject {fault.name}",
                                args=(run_dir, server, fault, out, started, stop), daemon=True)
    injector.start()
    error: BaseException | None = None
    captured = Captured()
    logging.getLogger().addHandler(captured)
    try:
        try:
            run_simulated(protocol, run_dir, seed=SEED, station=station)
        except Exception as exc:   # a stop: judged below by the store
            error = exc
        finally:
            stop.set()
            injector.join()
            out.triggered = out.injected_at is not None and not pending(server)
            for each in lab.servers.values():
                each.faults.clear()
            out.warnings = captured.messages
            out.left_on = outputs_on(lab)
        judge(out, run_dir, station, error)
        checked = check_store(run_dir)
        out.duplicated, out.torn = checked.duplicated, checked.torn
    finally:
        logging.getLogger().removeHandler(captured)
        lab.stop()
    out.wall_s = time.monotonic() - started
    return out


def judge(out: Outcome, run_dir: Path, station: Path, error: BaseException | None) -> None:
    """Survived, stopped safely and resumed, or failed: from the store and the journal."""
    status, states, events = journal(run_dir)
    causes = [e for e in events if e["kind"] in CAUSES]
    recoveries = [e["kind"] for e in events if e["kind"] in RECOVERIES]
    if not out.triggered:
        out.verdict = "NOT EXERCISED"
        out.detail = f"status {status}, cells {states}"
        return
    if status == "completed" and set(states.values()) == {"completed"} and error is None \
            and not out.left_on:
        out.verdict = "survived"
        out.detail = ("journal: " + ", ".join(dict.fromkeys(recoveries))) if recoveries else \
            "nothing journalled; driver log: " + (out.warnings[0] if out.warnings else "nothing")
        return
    failed = [e for e in events if e["kind"].endswith("_failed") and e not in causes]
    cause = "; ".join(f"{e['kind']}: {e['message']}" for e in [*causes[:2], *failed[:2]]) or \
        (f"no cause journalled; the run raised {type(error).__name__}: {error}" if error
         else f"no cause journalled; status {status}, cells {states}")
    try:
        resume_run(run_dir, station=station)
    except Exception as exc:
        status, states, _ = journal(run_dir)
        safe = causes and status in FINISHED and error is None and not out.left_on
        out.verdict = "faulted, not resumable" if safe else "FAILED"
        out.detail = (f"cause: {cause} | resume: {type(exc).__name__}: {exc} (status {status},"
                      f" cells {states})")
        return
    status, states, _ = journal(run_dir)
    resumed = status == "completed" and set(states.values()) == {"completed"}
    if resumed and causes and not out.left_on:
        out.verdict = "stopped safely + resumed"
        out.detail = f"cause: {cause}"
    elif resumed and causes:
        out.detail = f"cause: {cause} | resumed, but the stop left outputs on"
    else:
        out.detail = f"cause: {cause} | after resume: status {status}, cells {states}"


# -- main --------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speed", type=float, default=1000.0,
                        help="simulated seconds per wall second at the served lab")
    parser.add_argument("--only", nargs="+", choices=[f.name for f in FAULTS], metavar="FAULT",
                        help="run only these faults: " + ", ".join(f.name for f in FAULTS))
    parser.add_argument("--keep", action="store_true", help="keep the run directories")
    args = parser.parse_args()
    wall = time.perf_counter()
    logging.lastResort = None   # the drivers' warnings are captured per run, not printed
    tmp = Path(tempfile.mkdtemp(prefix="fault-soak-"))
    os.environ["CELLSEQ_LOCK_DIR"] = str(tmp / "locks")
    protocol = tmp / "fault-soak.yaml"
    protocol.write_text(PROTOCOL, encoding="utf-8")
    outcomes = []
    for fault in FAULTS:
        if args.only and fault.name not in args.only:
            continue
        folder = tmp / fault.name
        folder.mkdir()
        try:
            o = run_one(fault, protocol, args.speed, folder)
        except Exception as exc:   # the benchmark's own failure: say so, go on
            o = Outcome(fault, detail=f"the soak itself failed: {exc!r}\n"
                        + traceback.format_exc())
        outcomes.append(o)
        at = f"at {o.injected_at:.1f} s" if o.injected_at is not None else "never injected"
        note = "" if o.triggered else " [the fault was never met by a command]"
        if o.left_on:
            note += f" [LEFT ON after the run: {', '.join(o.left_on)}]"
        print(f"{fault.name:16} {o.verdict:25} {fault.what}, {at}{note}; rows duplicated"
              f" {o.duplicated}, torn {o.torn}; {o.wall_s:.0f} s", flush=True)
        print(f"{'':16} {short(o.detail, 400)}", flush=True)
    counted = {v: sum(o.verdict == v for o in outcomes)
               for v in ("survived", "stopped safely + resumed", "faulted, not resumable",
                         "FAILED", "NOT EXERCISED")}
    print(f"faults: {len(outcomes)}; " + ", ".join(f"{v} {n}" for v, n in counted.items()) +
          f"; duplicated rows {sum(o.duplicated for o in outcomes)}, torn rows"
          f" {sum(o.torn for o in outcomes)}; wall time {time.perf_counter() - wall:.0f} s")
    if args.keep:
        print(f"kept: {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
