"""Crash soak: ``cellseq`` SIGKILLed at random moments against wire simulators, resumed each time.

    python benchmarks/crash_soak.py [--kills 50] [--speed 250] [--seed 1] [--keep]
    python benchmarks/crash_soak.py --kills 5 --speed 2000          # a quick check

A served lab (``cellseq sim serve``, in its own process: an ESPEC chamber, a VSP-300 stand-in
and a Neware BTS, all running ``speed`` times faster than the wall clock) hosts a small campaign:
a chamber soak, then PEIS spectra of a blocking cell with rests between, and CC cycles of a full
cell. ``cellseq run`` is SIGKILLed within the first second after its run store appears (before a
cell has committed anything; ``--no-first-second`` kills it once it has stored data instead),
then ``cellseq resume`` is started and killed in its turn, ``--kills`` times in all: most kills
come a random moment after the process stored something new, about one in five during its
start-up. The last resume runs to the end and writes the report; it is killed during the report
(a random moment up to 0.5 s after it began writing it), and ``cellseq report`` then makes
the report again, which must hold exactly the results the analysis derives from the store.
A second served lab (same seed and speed) runs the same protocol uninterrupted at the same
time, for reference. Then the killed-and-resumed store is checked:

- duplicated rows: per cell, a moment stored twice in a step (same step time), or test time
  going back within a step;
- torn rows: chunks whose blob does not hold what its row says, non-finite time columns,
  counters (Ah, Wh) or test time going backwards;
- gaps beyond the interruption windows: a jump of test time within a step (its attempts, if
  it was restarted) longer than the record interval plus the part of the jump that falls in an
  outage: per cell, from a record and a poll interval before a kill to a poll interval after a
  later process next did something for the cell (journal, steps table), in run time;
- counter jumps (not in the target, a cross-check): within a step and away from the outages,
  the Ah counters should move by exactly the trapezoid of the stored current;
- derived results (``analysis.derive``) against the reference: largest relative difference,
  overall and per quantity, and results found on one side only. The lab runs in wall time,
  so the two runs differ a little (when a step is polled, the chamber's air); they are not
  expected to agree bit for bit.

Target: 50 of 50 interruptions survived, 0 duplicated rows, 0 torn rows, 0 gaps beyond the
interruption windows, derived results within 1 % of the reference, the report killed and made
again whole.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from analysis.derive import derive
from sequencer.executor import HARDWARE_POLL_S
from sequencer.runner import MIN_WALL_POLL_S
from sequencer.status import FINISHED
from store import DB_NAME, SERIES_COLUMNS, SPECTRUM_COLUMNS, RunStore, StoreError

ROOT = Path(__file__).resolve().parents[1]

PROTOCOL = """
campaign: crash-soak
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
      - {kind: set_temperature, target: 30 degC, tolerance: 0.2 K, hold: 10 min, timeout: 3 h}
      - kind: loop
        count: 6
        steps:
          - {kind: peis, f_start: 1 MHz, f_end: 0.01 Hz, amplitude: 10 mV, points_per_decade: 5}
          - {kind: rest, duration: 2 h, record_every: 60 s}
  - name: cycling
    cells: [ncm]
    steps:
      - {kind: rest, duration: 30 min, record_every: 60 s}
      - kind: loop
        count: 4
        steps:
          - {kind: constant_current, direction: charge, current: 0.5C, until_voltage: 4.3 V,
             record_every: 60 s}
          - {kind: rest, duration: 20 min, record_every: 60 s}
          - {kind: constant_current, direction: discharge, current: 0.5C, until_voltage: 3.0 V,
             record_every: 60 s}
          - {kind: rest, duration: 20 min, record_every: 60 s}
"""
#: Run time of the campaign above (s), from a dry run: about 17.7 h.
CAMPAIGN_S = 17.7 * 3600
COUNTERS = ("charge_Ah", "discharge_Ah", "charge_Wh", "discharge_Wh")
TIME_COLUMNS = ("test_time_s", "step_time_s", "utc_s")
POLL_WALL_S = 0.05   # how often this script looks at the store of the run it is about to kill


# -- processes ---------------------------------------------------------------------------------

def cellseq(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """``python -m sequencer ARGS`` in its own process, output to ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "sequencer", *args], cwd=ROOT, env=env,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)


def start_lab(protocol: Path, station: Path, speed: float, seed: int, env: dict[str, str]
              ) -> subprocess.Popen[bytes]:
    """``cellseq sim serve`` in its own process; returns once the station file is written."""
    proc = cellseq(["sim", "serve", str(protocol), "--station-out", str(station),
                    "--speed", f"{speed:g}", "--seed", str(seed)],
                   station.with_suffix(".log"), env)
    deadline = time.monotonic() + 60
    while not station.is_file() or not station.read_text(encoding="utf-8").strip():
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            raise RuntimeError(f"the served lab did not start; see {station.with_suffix('.log')}")
        time.sleep(0.05)
    time.sleep(0.2)   # the file is written whole before the servers are announced; be sure
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Ctrl-C (the served lab's way to stop), then SIGKILL if it lingers."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def env_for(tmp: Path) -> dict[str, str]:
    """The subprocesses' environment: channel locks in the scratch folder."""
    env = dict(os.environ)
    env["CELLSEQ_LOCK_DIR"] = str(tmp / "locks")
    env.setdefault("COLUMNS", "120")
    return env


def progress(run_dir: Path) -> tuple[int, int, int] | None:
    """(points, step rows, ended step rows) in the store; None while it holds no point."""
    try:
        store = RunStore.open(run_dir)
    except (StoreError, sqlite3.Error):
        return None
    try:
        steps = store.steps()
        points = store.point_count()
    except sqlite3.Error:
        return None
    finally:
        store.close()
    if points == 0:
        return None
    return points, len(steps), sum(s["ended_t"] is not None for s in steps)


def status(run_dir: Path) -> str | None:
    """The run's status in its store (None while there is no store)."""
    try:
        store = RunStore.open(run_dir)
    except (StoreError, sqlite3.Error):
        return None
    try:
        return store.meta().get("status")
    finally:
        store.close()


# -- the soak ----------------------------------------------------------------------------------

@dataclass
class Interruption:
    kill_wall: float                 # time.time() at the SIGKILL
    early: bool                      # killed during start-up, at a random moment
    stored: bool                     # the killed process had stored something new
    back_wall: float | None = None   # when a later process was first seen storing again
    first_second: bool = False       # the run itself, in the first second of its store


@dataclass
class Soak:
    interruptions: list[Interruption] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)   # processes that ended on their own, != 0
    completed: bool = False
    wall_s: float = 0.0
    report_killed_after_s: float | None = None   # the last process, killed in its report

    @property
    def survived(self) -> int:
        """Kills after which the run carried on: a later process stored data or completed."""
        return sum(i.back_wall is not None for i in self.interruptions)


def crash_soak(protocol: Path, station: Path, run_dir: Path, kills: int, rng: random.Random,
               jitter_s: float, early_share: float, env: dict[str, str], logs: Path,
               timeout_s: float, first_second: bool = True) -> Soak:
    """Run, kill, resume, kill ... ``kills`` times; the last resume runs to its end, and is
    killed while it writes the report."""
    soak = Soak()
    startup: list[float] = []   # seconds from launch to the first new data
    first = ["run", str(protocol), "--station", str(station), "--out", str(run_dir),
             "--no-report"]
    again = ["resume", str(run_dir), "--station", str(station), "--no-report"]
    start = time.monotonic()
    attempts = 0
    while True:
        attempts += 1
        before = progress(run_dir)
        launched = time.time()
        last = len(soak.interruptions) >= kills
        early = bool(soak.interruptions) and not last and rng.random() < early_share
        deadline = launched + (rng.uniform(0.0, statistics.median(startup) if startup else 1.0)
                               if early else math.inf)
        after_store = rng.uniform(0.0, 1.0) if attempts == 1 and first_second and kills \
            else None
        command = first if attempts == 1 else again[:-1] if last else again
        proc = cellseq(command, logs / f"{attempts:03d}.log", env)
        try:
            killed = _watch(proc, soak, run_dir, before, launched, deadline,
                            last or early or after_store is not None, rng, jitter_s, startup,
                            timeout_s, after_store, rng.uniform(0.0, 0.5) if last else None)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        if killed is None:   # ran for too long
            soak.failures.append(f"process {attempts} ran for more than {timeout_s:.0f} s")
            soak.wall_s = time.monotonic() - start
            return soak
        if killed and soak.report_killed_after_s is None:
            continue
        if status(run_dir) in FINISHED and (killed or proc.returncode in (0, 1)):
            for i in soak.interruptions:   # it completed before it was seen storing
                if i.back_wall is None:
                    i.back_wall = time.time()
            soak.completed = True
            soak.wall_s = time.monotonic() - start
            return soak
        tail = (logs / f"{attempts:03d}.log").read_text(errors="replace").strip()
        soak.failures.append(f"process {attempts} exited {proc.returncode}:"
                             f" {tail.splitlines()[-1] if tail else '(no output)'}")
        if len(soak.failures) >= 3:
            soak.wall_s = time.monotonic() - start
            return soak


def _watch(proc: subprocess.Popen[bytes], soak: Soak, run_dir: Path,
           before: tuple[int, int, int] | None, launched: float, deadline: float,
           fixed: bool, rng: random.Random, jitter_s: float, startup: list[float],
           timeout_s: float, after_store_s: float | None = None,
           in_report_s: float | None = None) -> bool | None:
    """Follow one process until it ends or its kill moment; True if it was killed, False if it
    ended on its own, None if it ran past ``timeout_s`` (then it is killed too). ``fixed``:
    the deadline stands (an early kill, or none); otherwise the kill comes a random moment
    (up to ``jitter_s``) after the process is first seen storing something new.
    ``after_store_s``: the kill comes that long after the run store appears (the run's first
    second). ``in_report_s``: that long after the process has begun writing the report (its
    folder appeared)."""
    stored = False
    first_second = False
    report_from: float | None = None
    while proc.poll() is None:
        now = time.time()
        if after_store_s is not None and not first_second and (run_dir / DB_NAME).exists():
            first_second, deadline = True, now + after_store_s
        if in_report_s is not None and report_from is None and \
                (run_dir / "report").exists():
            report_from, deadline = now, now + in_report_s
        if not stored and progress(run_dir) not in (None, before):
            stored = True
            startup.append(now - launched)
            for i in soak.interruptions:
                if i.back_wall is None:
                    i.back_wall = now
            if not fixed:
                deadline = now + rng.uniform(0.0, jitter_s)
        if now >= deadline:
            proc.send_signal(signal.SIGKILL)   # nothing if it has just ended on its own
            if proc.wait() != -signal.SIGKILL:
                return False
            if report_from is not None:
                soak.report_killed_after_s = now - report_from
            else:
                soak.interruptions.append(Interruption(time.time(), fixed, stored,
                                                       first_second=first_second))
            return True
        if now - launched > timeout_s:
            proc.kill()
            proc.wait()
            return None
        time.sleep(0.005 if deadline - now < POLL_WALL_S else POLL_WALL_S)
    return False


def report_again(run_dir: Path, env: dict[str, str], logs: Path) -> str:
    """After a kill during the report: ``cellseq report`` again; its summary must hold the
    results the analysis derives from the store, and its page must be whole."""
    proc = cellseq(["report", str(run_dir)], logs / "report.log", env)
    proc.wait()
    if proc.returncode != 0:
        return f"cellseq report exited {proc.returncode} (see {logs / 'report.log'})"
    summary = json.loads((run_dir / "report" / "summary.json").read_text(encoding="utf-8"))
    page = (run_dir / "report" / "index.html").read_text(encoding="utf-8")
    found = [r.to_dict() for r in derive(run_dir).results]
    same = json.loads(json.dumps(found)) == summary["results"]
    whole = page.rstrip().endswith("</html>")
    return (f"made again: {len(summary['results'])} results,"
            f" {'equal to' if same else 'DIFFERENT from'} what the store gives; the page is"
            f" {'whole' if whole else 'TORN'}")


# -- checking a store --------------------------------------------------------------------------

@dataclass
class StoreCheck:
    rows: int = 0
    duplicated: int = 0
    torn: int = 0
    gaps: int = 0
    counter_jumps: int = 0            # Ah counters moving unlike the stored current
    largest_gap_s: float = 0.0        # the largest jump within a step (run time)
    largest_excess_s: float = 0.0     # the most a jump exceeded what the windows explain
    notes: list[str] = field(default_factory=list)


def check_store(run_dir: Path, windows: dict[str, list[tuple[float, float]]] | None = None
                ) -> StoreCheck:
    """Duplicated rows, torn rows, and gaps beyond ``windows`` (per cell, the run-time
    intervals in which it was not looked after) in a run's store; see the module docstring."""
    windows = windows or {}
    store = RunStore.open(run_dir)
    try:
        record = {s["id"]: float(s["params"].get("record_dt_s", 0.0)) for s in store.steps()}
    finally:
        store.close()
    conn = sqlite3.connect(f"file:{(run_dir / DB_NAME).as_posix()}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT cell, kind, step_id, step_count, n, t_first, t_last, data"
                            " FROM chunks ORDER BY id").fetchall()
    finally:
        conn.close()
    out = StoreCheck()
    series: dict[tuple[str, str], dict[str, list[np.ndarray]]] = {}
    for cell, kind, step_id, step_count, n, t_first, t_last, data in rows:
        names = SPECTRUM_COLUMNS if kind == "spectrum" else SERIES_COLUMNS
        out.rows += n
        if len(data) != 8 * n * len(names):
            out.torn += n
            out.notes.append(f"{cell}: a chunk of {n} rows holds {len(data)} bytes")
            continue
        block = np.frombuffer(data, dtype="<f8").reshape(len(names), n)
        t = block[names.index("test_time_s")]
        if n and (t[0] != t_first or t[-1] != t_last):
            out.torn += n
            out.notes.append(f"{cell}: a chunk's times are not what its row says")
            continue
        cols = series.setdefault((cell, kind), {k: [] for k in (*names, "step_id",
                                                                 "step_count")})
        for i, name in enumerate(names):
            cols[name].append(block[i])
        cols["step_id"].append(np.full(n, step_id))
        cols["step_count"].append(np.full(n, step_count))
    for (cell, kind), parts in series.items():
        c = {k: np.concatenate(v) for k, v in parts.items()}
        _check_rows(out, cell, kind, c, record, windows.get(cell, []))
    return out


def _check_rows(out: StoreCheck, cell: str, kind: str, c: dict[str, np.ndarray],
                record: dict[int, float], windows: list[tuple[float, float]]) -> None:
    """One cell's rows of one kind, in the order they were stored."""
    t, step_id, step_count = c["test_time_s"], c["step_id"], c["step_count"]
    torn = ~np.all([np.isfinite(c[name]) for name in TIME_COLUMNS], axis=0)
    for name in COUNTERS:
        torn[1:] |= np.diff(c[name]) < -(1e-12 + 1e-9 * np.abs(c[name][:-1]))
    torn[1:] |= np.diff(t) < 0   # time going back, also across steps
    same_step = np.diff(step_count) == 0   # a restarted step's attempts count as one step
    duplicated = np.zeros(len(t), dtype=bool)
    duplicated[1:] |= same_step & (np.diff(t) <= 0)
    seen: set[tuple[int, float]] = set()
    for k, key in enumerate(zip(step_id.tolist(), c["step_time_s"].tolist(), strict=True)):
        duplicated[k] |= key in seen
        seen.add(key)
    out.torn += int(np.sum(torn & ~duplicated))
    out.duplicated += int(np.sum(duplicated))
    for k in np.nonzero(torn | duplicated)[0][:3]:
        what = "duplicated" if duplicated[k] else "torn"
        out.notes.append(f"{cell} {kind}: a {what} row at test time {t[k]:.3f} s, step time"
                         f" {c['step_time_s'][k]:.3f} s (step count {int(step_count[k])})")
    if kind != "series":
        return
    # within a step, each Ah counter moves by its part of the trapezoid of the stored current
    within = np.diff(step_id) == 0
    flowed = 0.5 * (c["current_A"][1:] + c["current_A"][:-1]) * np.diff(t) / 3600.0
    off = within & np.zeros(len(flowed), dtype=bool)
    for name, part in (("charge_Ah", np.maximum(flowed, 0)),
                       ("discharge_Ah", np.maximum(-flowed, 0))):
        off |= within & (np.abs(np.diff(c[name]) - part) > 1e-12 + 1e-6 * np.abs(flowed))
    moved = np.diff(c["charge_Ah"]) + np.diff(c["discharge_Ah"])
    for k in np.nonzero(off)[0]:
        lo_t, hi_t = float(t[k]), float(t[k + 1])
        if hi_t - lo_t > record.get(int(step_id[k + 1]), 0.0) + 1e-6 and \
                any(min(hi_t, hi) > max(lo_t, lo) for lo, hi in windows):
            continue   # a gap over an outage: a continued step counts afresh from its new points
        out.counter_jumps += 1
        if out.counter_jumps <= 3:
            out.notes.append(f"{cell}: charge + discharge counters moved"
                             f" {moved[k] * 1e3:.5f} mAh between test times {lo_t:.1f} and"
                             f" {hi_t:.1f} s (step count {int(step_count[k])}); the stored"
                             f" current gives {flowed[k] * 1e3:+.5f} mAh")
    for k in np.nonzero(same_step)[0]:
        a, b = float(t[k]), float(t[k + 1])
        jump, every = b - a, record.get(int(step_id[k + 1]), 0.0)
        out.largest_gap_s = max(out.largest_gap_s, jump)
        # the last point stored before a kill may be a record interval older than the poll
        # that would have fetched the next one
        down = sum(max(0.0, min(b, hi) - max(a, lo - every)) for lo, hi in windows)
        excess = jump - every - down
        out.largest_excess_s = max(out.largest_excess_s, excess)
        if excess > 1e-6 * max(1.0, abs(b)):
            out.gaps += 1
            out.notes.append(f"{cell}: a jump of {jump:.1f} s at test time {a:.1f} s (step"
                             f" count {int(step_count[k])}), {excess:.1f} s more than the"
                             " record interval and the outages explain")


def outage_windows(run_dir: Path, soak: Soak, speed: float
                   ) -> dict[str, list[tuple[float, float]]]:
    """Per cell, each interruption in run time: from a poll interval before the kill to a poll
    interval after a later process next did something for the cell (a step re-attached,
    continued, restarted or started: the journal and the steps table say when)."""
    store = RunStore.open(run_dir)
    try:
        origin = float(store.meta()["manifest"]["started_utc"])
        moments: dict[str, list[float]] = {}
        for e in store.events():
            if e["cell"] is not None:
                moments.setdefault(e["cell"], []).append(e["t"])
        for s in store.steps():
            moments.setdefault(s["cell"], []).append(s["started_t"])
    finally:
        store.close()
    poll_s = max(HARDWARE_POLL_S, speed * MIN_WALL_POLL_S)
    out: dict[str, list[tuple[float, float]]] = {}
    for cell, times in moments.items():
        for i in soak.interruptions:
            killed = (i.kill_wall - origin) * speed
            after = [t for t in times if t > killed]
            out.setdefault(cell, []).append((killed - poll_s,
                                             min(after) + poll_s if after else math.inf))
    return out


# -- derived results ---------------------------------------------------------------------------

def derived(run_dir: Path) -> tuple[dict[tuple, float], list[str]]:
    """The run's derived results by (experiment, cell, quantity, conditions, occurrence), and
    the analysis' notes (what it could not derive, and why). The temperature a result is
    labelled with is the chamber's air rounded to a degree, measured: it is left out of the
    match (each experiment here has one set temperature)."""
    out: dict[tuple, float] = {}
    seen: Counter[tuple] = Counter()
    found = derive(run_dir)
    for r in found.results:
        if r.value is None:   # no physical number (its note is among the notes)
            continue
        conditions = {k: v for k, v in r.conditions.items() if k != "temperature_degC"}
        key = (r.experiment, r.cell, r.quantity, tuple(sorted(conditions.items())))
        seen[key] += 1
        out[(*key, seen[key])] = float(r.value)
    return out, found.notes


def label(key: tuple) -> str:
    _, cell, quantity, conditions, n = key
    cond = ", ".join(f"{k}={v}" for k, v in conditions)
    return f"{cell} {quantity} ({cond}) #{n}" if cond else f"{cell} {quantity} #{n}"


def compare(resumed: dict[tuple, float], reference: dict[tuple, float]
            ) -> tuple[dict[tuple[str, str], tuple[float, str]], list[str], list[str]]:
    """Per (cell, quantity), the largest relative difference over the results both runs hold
    and which result it is; and the results only the resumed run / only the reference holds."""
    worst: dict[tuple[str, str], tuple[float, str]] = {}
    for key in sorted(resumed.keys() & reference.keys()):
        a, b = resumed[key], reference[key]
        rel = abs(a - b) / abs(b) if b else (0.0 if a == b else math.inf)
        group = (key[1], key[2])
        if group not in worst or rel > worst[group][0]:
            worst[group] = (rel, f"{label(key)}: {a:.6g} vs {b:.6g}")
    only_resumed = sorted(label(k) for k in resumed.keys() - reference.keys())
    only_reference = sorted(label(k) for k in reference.keys() - resumed.keys())
    return worst, only_resumed, only_reference


def listed(items: list[str], most: int = 4) -> str:
    if not items:
        return "none"
    more = f", ... {len(items) - most} more" if len(items) > most else ""
    return f"{len(items)}: " + ", ".join(items[:most]) + more


def journal(run_dir: Path) -> tuple[Counter[str], str, dict[str, str]]:
    """Event kinds counted, the run's status, and each cell's state (with its fault)."""
    store = RunStore.open(run_dir)
    try:
        kinds = Counter(e["kind"] for e in store.events())
        states = {s["cell"]: s["state"] + (f" ({s['checkpoint']['fault']})"
                                           if s["checkpoint"].get("fault") else "")
                  for s in store.cell_states()}
        return kinds, store.meta()["status"], states
    finally:
        store.close()


# -- main --------------------------------------------------------------------------------------

def report(run_dir: Path, reference_dir: Path, soak: Soak, speed: float, planned: int,
           again: str | None = None) -> None:
    """Print the figures."""
    checked = check_store(run_dir, outage_windows(run_dir, soak, speed))
    control = check_store(reference_dir)
    kinds, final, states = journal(run_dir)
    ref_kinds, ref_final, ref_states = journal(reference_dir)
    early = sum(i.early and not i.first_second for i in soak.interruptions)
    first = sum(i.first_second for i in soak.interruptions)
    before_data = sum(i.first_second and not i.stored for i in soak.interruptions)
    print(f"interruptions survived: {soak.survived} of {len(soak.interruptions)}"
          f" ({first} in the run's first second, {before_data} of them before any data;"
          f" {early} during a resume's start-up;"
          f" {len(soak.interruptions) - early - first} after new data; {planned} planned)")
    print(f"final status: {final}; {'; '.join(f'{c} {s}' for c, s in states.items())}")
    print(f"reference: {ref_final}; {'; '.join(f'{c} {s}' for c, s in ref_states.items())}")
    for failure in soak.failures:
        print(f"  a process failed: {failure}")
    print(f"rows: {checked.rows} (reference {control.rows})")
    print(f"duplicated rows: {checked.duplicated} (reference {control.duplicated})")
    print(f"torn rows: {checked.torn} (reference {control.torn})")
    print(f"gaps beyond the interruption windows: {checked.gaps} (largest jump within a step"
          f" {checked.largest_gap_s:.0f} s of run time; reference {control.gaps}, largest"
          f" {control.largest_gap_s:.0f} s)")
    print(f"counter jumps (Ah moved unlike the stored current, within a step):"
          f" {checked.counter_jumps} (reference {control.counter_jumps})")
    for note in [*checked.notes[:10], *(f"reference: {n}" for n in control.notes[:5])]:
        print(f"  {note}")
    if ref_final in FINISHED and soak.completed:
        (resumed, notes), (reference, ref_notes) = derived(run_dir), derived(reference_dir)
        worst, only_resumed, only_reference = compare(resumed, reference)
        largest = max(worst.values(), default=None)
        shown = "n/a (no result in both)" if largest is None else \
            f"{100 * largest[0]:.3f} % ({largest[1]})"
        print(f"largest difference in derived results: {shown}; {len(resumed)} results,"
              f" reference {len(reference)}")
        for (cell, quantity), (rel, which) in worst.items():
            print(f"  {cell} {quantity}: largest difference {100 * rel:.3f} % ({which})")
        print(f"results only in the resumed run: {listed(only_resumed)}")
        print(f"results only in the reference: {listed(only_reference)}")
        for note in notes[:3]:
            print(f"  analysis: {note}")
        for note in ref_notes[:3]:
            print(f"  analysis of the reference: {note}")
    else:
        print("derived results not compared: a run did not complete")
    if soak.report_killed_after_s is not None:
        print(f"report: killed {soak.report_killed_after_s:.2f} s into it; {again}")
    elif soak.completed:
        print("report: it ended before its kill moment; not killed")
    print("journal: " + ", ".join(f"{k} {kinds[k]}" for k in (
        "run_interrupted", "run_resumed", "step_reattached", "step_restarted", "step_resumed",
        "adopt_failed", "resoak", "soak_failed", "cell_faulted", "run_aborted")) +
        f"; reference: run_interrupted {ref_kinds['run_interrupted']}")



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=50, help="SIGKILLs before the last resume")
    parser.add_argument("--speed", type=float, default=250.0,
                        help="simulated seconds per wall second at the served lab")
    parser.add_argument("--seed", type=int, default=1, help="the kill moments' and labs' seed")
    parser.add_argument("--jitter", type=float, default=1.5,
                        help="a kill comes up to this many seconds after new data")
    parser.add_argument("--early", type=float, default=0.2,
                        help="share of kills during a resume's start-up")
    parser.add_argument("--no-first-second", dest="first_second", action="store_false",
                        help="kill the run once it stored data, not in its first second")
    parser.add_argument("--keep", action="store_true", help="keep the run directories")
    args = parser.parse_args()
    wall = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="crash-soak-"))
    env = env_for(tmp)
    protocol = tmp / "crash-soak.yaml"
    protocol.write_text(PROTOCOL, encoding="utf-8")
    logs = tmp / "logs"
    logs.mkdir()
    expected_s = CAMPAIGN_S / args.speed
    print(f"campaign of {CAMPAIGN_S / 3600:.1f} h at x{args.speed:g}: about {expected_s:.0f} s"
          f" of wall time uninterrupted; {args.kills} kills", flush=True)
    labs = []
    try:
        labs.append(start_lab(protocol, tmp / "station.yaml", args.speed, args.seed, env))
        labs.append(start_lab(protocol, tmp / "reference-station.yaml", args.speed, args.seed,
                              env))
        reference_dir = tmp / "reference"
        reference = cellseq(["run", str(protocol), "--station", str(tmp / "reference-station.yaml"),
                             "--out", str(reference_dir), "--no-report"], logs / "reference.log",
                            env)
        try:
            soak = crash_soak(protocol, tmp / "station.yaml", tmp / "resumed", args.kills,
                              random.Random(args.seed), args.jitter, args.early, env, logs,
                              timeout_s=10 * expected_s + 120,
                              first_second=args.first_second)
            reference.wait(10 * expected_s + 120)
        finally:
            if reference.poll() is None:
                reference.kill()
                reference.wait()
    finally:
        for lab in labs:
            stop(lab)
    again = report_again(tmp / "resumed", env, logs) \
        if soak.report_killed_after_s is not None else None
    report(tmp / "resumed", reference_dir, soak, args.speed, args.kills, again)
    print(f"wall time: {time.perf_counter() - wall:.0f} s (the soak {soak.wall_s:.0f} s)")
    if args.keep:
        print(f"kept: {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
