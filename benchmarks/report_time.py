"""Wall time, CPU time and peak memory of ``cellseq report``, and where its time goes.

    python benchmarks/report_time.py RUN_DIR [--repeat N] [--no-phases] [--no-critical-path]
                                     [--with-run PROTOCOL]

(``--repeat 0``: the phases only.)

RUN_DIR is a finished run, e.g. the README's main job (``cellseq run
protocols/aiose/campaign.yaml --sim --seed 1 --out RUN_DIR``). The report is rewritten in place
(``RUN_DIR/report``).

A report analyses each cell once: what it made of a cell is kept in ``report/cells`` and
taken by the next report while the cell's data and the code are the same, and ``cellseq run``
analyses each cell beside the run as soon as its experiments have finished
(``analysis.while_running``). So the measurements are:

- ``cellseq report RUN_DIR --fresh`` (every cell analysed again) and ``cellseq report RUN_DIR``
  (every cell's analysis kept: a report of a run that ended, as a user runs it after
  ``cellseq run``), ``--repeat`` times each, alternated, each in a fresh process: wall time,
  CPU time (the command and its worker processes, user + system) and the peak RSS of the
  largest single process of the tree (the target is per process: 300 MB). Target on 2 cores:
  5 s wall.
- with ``--with-run PROTOCOL``: ``cellseq run PROTOCOL --sim --seed 1`` ``--repeat`` times,
  its wall time split into the run and what follows it (the report, the cells that finished
  last analysed then) as the command prints them, and how many cells were analysed while the
  run went on.
- the same report, every cell analysed, made on one core in one process, its time split into
  phases by wrapping the functions that do each: ``load`` (opening the store, reading steps,
  chunks and spectra), ``fits`` (equivalent-circuit fits of impedance spectra), ``derive``
  (every other analysis), ``figures: build`` (the plotting functions), ``figures: draw``
  (``analysis.render._png``: layout, rasterising, PNG), ``write`` (``summary.json``,
  ``index.html``, the PNG files). Wall and CPU per phase; one core so that the CPU of every
  phase is in the one process.
- the critical path of the report with every cell analysed: ``cellseq report RUN_DIR
  --fresh`` as a user runs it, in one process tree, with the CPU time of each of its parts:
  the command's own process (start-up and imports, before the cells are handed out, the
  imports it makes once for the workers before forking them, forking and collecting while
  they run, after them), each worker process (the cells it analysed and drew, the figures it
  drew, the pickling of its answers), and the exits (the tree's CPU time no record holds). The
  idle-machine wall time is about the main process's CPU until its first fork, plus the
  workers scheduled on the cores as they were started (with the main process's own work in
  between sharing the cores), plus the main process's CPU after them and its exit: that
  estimate holds under load, where wall time does not.

The machine's load average is printed beside the figures: where other work shares the cores,
wall time says little and CPU time is the figure to compare (A/B in one session).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WALL_TARGET_S = 5.0
RSS_LIMIT_MB = 300.0

#: Runs ``cellseq report`` and prints its wall time, CPU time and peak RSS (of its whole tree).
_WHOLE = r"""
import json, resource, subprocess, sys, time
t0 = time.perf_counter()
done = subprocess.run([sys.executable, "-m", "sequencer.cli", "report", *sys.argv[1:]],
                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
wall = time.perf_counter() - t0
use = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"wall_s": wall, "cpu_s": use.ru_utime + use.ru_stime,
                  "rss_mb": use.ru_maxrss / 1024, "code": done.returncode,
                  "stderr": done.stderr.decode()[-2000:]}))
"""

#: Runs ``cellseq run PROTOCOL --sim --seed 1 --out RUN`` and prints what it printed, its CPU
#: time and the peak RSS of its largest process.
_WHOLE_RUN = r"""
import json, resource, subprocess, sys
done = subprocess.run([sys.executable, "-m", "sequencer.cli", "run", sys.argv[2], "--sim",
                       "--seed", "1", "--out", sys.argv[3]], capture_output=True, text=True)
if done.returncode != 0:
    raise SystemExit(done.stderr[-3000:])
use = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"stdout": done.stdout, "cpu_s": use.ru_utime + use.ru_stime,
                  "rss_mb": use.ru_maxrss / 1024}))
"""

#: Makes the report on one core, timing each phase (see the module docstring).
_PHASES = r"""
import json, os, resource, sys, time
from pathlib import Path

os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

import matplotlib.figure
import analysis.derive, analysis.derive_impedance, analysis.plots, analysis.plots_series
import analysis.plots_titration, analysis.replicates, analysis.report, analysis.report_html
import analysis.render, analysis.run_data
import store.run_store

# in this process, not in a forked one per cell (as the report does even on one core), so
# that every phase's CPU is counted here
analysis.derive.can_fork = lambda: False

wall = {}
cpu = {}
stack = []

def _enter(phase):
    now = (time.perf_counter(), time.process_time())
    if stack:   # the enclosing phase pauses
        outer, (w0, c0) = stack[-1]
        wall[outer] = wall.get(outer, 0.0) + now[0] - w0
        cpu[outer] = cpu.get(outer, 0.0) + now[1] - c0
    stack.append((phase, now))

def _leave():
    phase, (w0, c0) = stack.pop()
    now = (time.perf_counter(), time.process_time())
    wall[phase] = wall.get(phase, 0.0) + now[0] - w0
    cpu[phase] = cpu.get(phase, 0.0) + now[1] - c0
    if stack:   # the enclosing phase resumes
        stack[-1] = (stack[-1][0], now)

def timed(owner, name, phase, generator=False):
    original = getattr(owner, name)
    if generator:
        def wrapper(*args, **kwargs):
            it = original(*args, **kwargs)
            while True:
                _enter(phase)
                try:
                    item = next(it)
                except StopIteration:
                    return
                finally:
                    _leave()
                yield item
    else:
        def wrapper(*args, **kwargs):
            _enter(phase)
            try:
                return original(*args, **kwargs)
            finally:
                _leave()
    setattr(owner, name, wrapper)

RS = store.run_store.RunStore
for name in ("open", "read", "steps", "meta", "cell_states", "step_owners", "chunk_cells",
             "close"):
    timed(RS, name, "load")
timed(RS, "chunks", "load", generator=True)
timed(RS, "chunk_blocks", "load", generator=True)   # read directly by the step fold
timed(analysis.derive_impedance, "fit_cell_spectrum", "fits")
for name in ("nyquist", "arrhenius", "ca_decay", "voltage_vs_time", "voltage_vs_capacity",
             "capacity_and_ce", "generic_xy"):
    timed(analysis.plots, name, "figures: build")
for module in (analysis.plots_series, analysis.plots_titration):
    for name in dir(module):
        f = getattr(module, name)
        if (callable(f) and not name.startswith("_") and getattr(f, "__module__", "")
                == module.__name__ and not isinstance(f, type)):
            timed(module, name, "figures: build")
timed(analysis.render, "_png", "figures: draw")
timed(analysis.report, "write_report", "write")
timed(analysis.report, "derive", "derive")

t, c = time.perf_counter(), time.process_time()
_enter("other")
analysis.report.make_report(Path(sys.argv[1]), fresh=True)
_leave()
total = (time.perf_counter() - t, time.process_time() - c)
print(json.dumps({"wall": wall, "cpu": cpu, "total_wall_s": total[0], "total_cpu_s": total[1],
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

#: Runs ``cellseq report`` in this process, recording the CPU time of the main process at each
#: stage (the imports made once before the workers are forked apart) and of every worker
#: process at the end of each task and when it is done (a forked worker's CPU time starts at 0,
#: so that last record is its whole CPU time, the pickling of its answers included).
_CRITICAL = r"""
import json, os, sys, time
log = sys.argv[2]
main = os.getpid()
import sequencer.cli, analysis.derive, analysis.forked, analysis.render
marks = {"imports": time.process_time()}

def record(entry):
    with open(log, "a") as f:
        f.write(json.dumps(entry) + "\n")

def timed_task(original, what):
    def task(*args, **kwargs):
        c0, started = time.process_time(), time.time()
        try:
            return original(*args, **kwargs)
        finally:
            if os.getpid() != main:
                c1 = time.process_time()
                record({"pid": os.getpid(), "task": what(args), "cpu_s": c1 - c0,
                        "cpu_total_s": c1, "started": started})
    # sent to the workers by name: the name must lead to this wrapper
    task.__module__, task.__qualname__ = original.__module__, original.__qualname__
    return task

analysis.derive._cell_in_worker = timed_task(analysis.derive._cell_in_worker,
                                             lambda a: a[0])
analysis.render._png = timed_task(analysis.render._png, lambda a: "figure")
child = analysis.forked._child
def whole_child(*args, **kwargs):
    started = time.time()
    try:
        return child(*args, **kwargs)
    finally:   # after its last answer is pickled and sent
        record({"pid": os.getpid(), "done_cpu_s": time.process_time(), "started": started,
                "ended": time.time()})
analysis.forked._child = whole_child

def staged(original, before, after):
    def stage(*args, **kwargs):
        marks[before] = time.process_time()
        try:
            return original(*args, **kwargs)
        finally:
            marks[after] = time.process_time()
    return stage

parallel = analysis.derive._derive_in_parallel
preload, warm_up = analysis.derive._preload, analysis.derive.warm_up
analysis.derive._derive_in_parallel = staged(parallel, "before the workers",
                                             "with the workers")
analysis.derive._preload = staged(preload, "preload", "preloaded")
analysis.derive.warm_up = staged(warm_up, "warm up", "warmed up")
sys.stdout = open(os.devnull, "w")
sys.argv = ["cellseq", "report", sys.argv[1], "--fresh"]
try:
    sequencer.cli.main()   # as the command runs it, its way to the exit included
except SystemExit as exc:
    if exc.code:
        raise
finally:
    marks["end"] = time.process_time()
    record({"pid": main, "marks": marks})
"""

PHASE_ORDER = ("load", "fits", "derive", "figures: build", "figures: draw", "write", "other")


def _run(code: str, run_dir: Path, *options: str) -> dict:
    # in the run's folder: the code measured is the installed cellseq (or PYTHONPATH's), not
    # whatever checkout the current folder happens to be
    out = subprocess.run([sys.executable, "-c", code, str(run_dir.resolve()), *options],
                         capture_output=True, text=True, cwd=run_dir)
    if out.returncode != 0:
        raise SystemExit(f"the measurement failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min), {five:.1f} (5 min)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-phases", action="store_true")
    parser.add_argument("--no-critical-path", action="store_true")
    parser.add_argument("--with-run", type=Path, metavar="PROTOCOL",
                        help="also time `cellseq run PROTOCOL --sim --seed 1`: the run and"
                        " the report after it")
    args = parser.parse_args()
    if not (args.run_dir / "run.sqlite").is_file():
        raise SystemExit(f"{args.run_dir}: not a run directory (no run.sqlite)")
    cores = len(os.sched_getaffinity(0))
    import analysis

    print(f"cellseq report {args.run_dir} on {cores} cores, code from"
          f" {Path(analysis.__file__).parent.parent}; {_load()}")
    runs: dict[str, list[dict]] = {"every cell analysed (--fresh)": [],
                                   "every cell's analysis kept": []}
    for k in range(args.repeat):
        for (what, done), options in zip(runs.items(), (["--fresh"], []), strict=True):
            r = _run(_WHOLE, args.run_dir, *options)
            if r["code"] not in (0,):
                print(f"  exit {r['code']}: {r['stderr']}")
            done.append(r)
            print(f"  {k + 1}, {what}: wall {r['wall_s']:.2f} s, CPU {r['cpu_s']:.2f} s,"
                  f" peak RSS {r['rss_mb']:.0f} MB (largest process); {_load()}")
    for what, done in runs.items():
        if done:
            _summary(what, done)
    if args.with_run is not None:
        _with_run(args.with_run, args.repeat)
    if not args.no_phases:
        _phases(args.run_dir)
    if not args.no_critical_path:
        _critical_path(args.run_dir)


def _summary(what: str, runs: list[dict]) -> None:
    walls = [r["wall_s"] for r in runs]
    cpus = [r["cpu_s"] for r in runs]
    rss = max(r["rss_mb"] for r in runs)
    print(f"report, {what}: wall min {min(walls):.2f} s, median {statistics.median(walls):.2f} s"
          f" (target {WALL_TARGET_S:g} s: {'met' if min(walls) <= WALL_TARGET_S else 'NOT met'});"
          f" CPU min {min(cpus):.2f} s, median {statistics.median(cpus):.2f} s;"
          f" peak RSS {rss:.0f} MB (limit {RSS_LIMIT_MB:g} MB:"
          f" {'met' if rss <= RSS_LIMIT_MB else 'NOT met'})")


#: What ``cellseq run`` prints at its end (sequencer/cli.py).
_WALL_LINE = re.compile(r"wall time ([\d.]+) s \(the run itself ([\d.]+) s\)")
_BESIDE_LINE = re.compile(r"(\d+) of (\d+) cells analysed while the run went on")


def _with_run(protocol: Path, repeat: int) -> None:
    """``cellseq run PROTOCOL --sim --seed 1``: the run, then the report after it."""
    print(f"cellseq run {protocol} --sim --seed 1, the run and the report after it:")
    after = []
    for k in range(max(repeat, 1)):
        with tempfile.TemporaryDirectory() as tmp:
            r = _run(_WHOLE_RUN, Path(tmp), str(protocol.resolve()), str(Path(tmp) / "run"))
        wall, run = map(float, _WALL_LINE.search(r["stdout"]).groups())   # type: ignore[union-attr]
        beside = _BESIDE_LINE.search(r["stdout"])
        after.append(wall - run)
        print(f"  {k + 1}: {wall:.2f} s in all, the run {run:.2f} s, after it {wall - run:.2f} s"
              f" (start-up, the report, the summary); cells analysed while the run went on:"
              f" {f'{beside[1]} of {beside[2]}' if beside else 'none'}; CPU"
              f" {r['cpu_s']:.2f} s; peak RSS {r['rss_mb']:.0f} MB; {_load()}")
    print(f"  after the run: min {min(after):.2f} s, median {statistics.median(after):.2f} s"
          f" (target {WALL_TARGET_S:g} s: {'met' if min(after) <= WALL_TARGET_S else 'NOT met'})")


def _phases(run_dir: Path) -> None:
    p = _run(_PHASES, run_dir)
    print(f"phases, one core, one process ({_load()}):")
    print(f"  {'phase':16} {'wall / s':>9} {'CPU / s':>9}")
    for phase in PHASE_ORDER:
        print(f"  {phase:16} {p['wall'].get(phase, 0.0):9.2f} {p['cpu'].get(phase, 0.0):9.2f}")
    print(f"  {'total':16} {p['total_wall_s']:9.2f} {p['total_cpu_s']:9.2f}"
          f"   peak RSS {p['rss_mb']:.0f} MB")


def _critical_path(run_dir: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "tasks.jsonl"
        tree_cpu_s = _cpu_of_tree([sys.executable, "-c", _CRITICAL, str(run_dir.resolve()),
                                   str(log)], run_dir)
        entries = [json.loads(line) for line in log.read_text().splitlines()]
    marks = next(e["marks"] for e in entries if "marks" in e)
    workers: dict[int, list[dict]] = {}
    whole: dict[int, dict] = {}
    for e in entries:
        if "task" in e:
            workers.setdefault(e["pid"], []).append(e)
        elif "done_cpu_s" in e:
            whole[e["pid"]] = e
    before = marks.get("before the workers", marks["end"])
    with_workers = marks.get("with the workers", before)
    # the imports made once before the first fork: serial, no worker runs yet
    prefork = sum(marks[a] - marks[b] for b, a in (("preload", "preloaded"),
                                                    ("warm up", "warmed up")) if b in marks)
    waiting = with_workers - before - prefork   # forking, collecting the answers
    after = marks["end"] - with_workers
    processes = []
    for pid, tasks in workers.items():
        total = whole[pid]["done_cpu_s"] if pid in whole else \
            max(t["cpu_total_s"] for t in tasks)
        cells = [t for t in tasks if t["task"] != "figure"]
        figures = [t for t in tasks if t["task"] == "figure"]
        processes.append((min(t["started"] for t in tasks), total, cells, figures))
    worker_cpu = sum(p[1] for p in processes)
    # what the process tree spent that no record above holds: the main process's exit (its
    # objects freed, its modules torn down) and the workers' (their memory unmapped)
    exit_s = max(0.0, tree_cpu_s - marks["end"] - worker_cpu)
    cores = len(os.sched_getaffinity(0))
    print(f"critical path, all cores, CPU time per process ({_load()}):")
    print(f"  main process: start-up and imports {marks['imports']:.2f} s, then up to the"
          f" workers {before - marks['imports']:.2f} s, the imports made before forking"
          f" {prefork:.2f} s, forking and collecting while the workers run {waiting:.2f} s,"
          f" after them {after:.2f} s, exits (main's and the workers') {exit_s:.2f} s")
    print(f"  {len(processes)} worker processes, {worker_cpu:.2f} s in all (their answers'"
          " pickling included); the longest:")
    for _, total, cells, figures in sorted(processes, key=lambda p: -p[1])[:5]:
        names = ", ".join(t["task"] for t in cells)
        print(f"    {total:.2f} s: {names or '-'} ({len(figures)} figures,"
              f" {sum(t['cpu_s'] for t in figures):.2f} s of it)")
    # serial: everything the main process does before the first fork (one core idle), then
    # the workers as they were started, each on the first core free, and the main process's
    # own work between them sharing the cores; then the main process alone again
    serial_before = before + prefork
    free = [0.0] * cores
    for _, total, _, _ in sorted(processes, key=lambda p: p[0]):
        k = free.index(min(free))
        free[k] += total
    span = max(max(free), (worker_cpu + waiting) / cores)
    serial_after = after + exit_s
    estimate = serial_before + span + serial_after
    idle = cores * estimate - (serial_before + worker_cpu + waiting + serial_after)
    print(f"  estimated wall time on an idle machine: {estimate:.2f} s = main alone before the"
          f" first fork {serial_before:.2f} s + the workers on {cores} cores {span:.2f} s"
          f" + main alone after them {serial_after:.2f} s; target {WALL_TARGET_S:g} s:"
          f" {'met' if estimate <= WALL_TARGET_S else 'NOT met'}")
    print(f"  idle core time in it: {idle:.2f} core-s ({(cores - 1) * serial_before:.2f} before"
          f" the first fork, {(cores - 1) * serial_after:.2f} after the workers, the rest the"
          " workers' uneven ends)")


def _cpu_of_tree(command: list[str], cwd: Path) -> float:
    """Run ``command``; the CPU time (user + system) of it and every process it waited for."""
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    assert process.stderr is not None
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"the measurement failed:\n{stderr.decode()[-3000:]}")
    return usage.ru_utime + usage.ru_stime

if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"({time.perf_counter() - t0:.0f} s)")
