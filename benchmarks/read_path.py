"""Wall time, CPU time and peak memory of the commands that read a run: ``status``,
``status --json``, ``report``, ``export --format parquet``, ``export --format csv`` and
``export --cycles``, on a run of millions of points.

The run is written by ``benchmarks/big_run.py`` (through the store's writer, not the
simulators), or given with ``--run``: the paper campaign's dry run, say. Each command runs in
its own process; its peak RSS is the largest resident size of that process and of any it
started (the report draws figures in worker processes), its CPU time theirs summed. The
targets: peak RSS <= 300 MB for each command at any run size; export >= 2 M rows/s to
Parquet and >= 0.5 M rows/s to CSV.

The exports' rates are printed three ways, since a shared machine's wall time says more
about its load than about the export:

- rows per wall second, with the load average while the command ran;
- rows per CPU second (user + system, every thread and process): the rate one idle core would
  reach, threads or not (the figure to trust on a loaded machine, and the verdict's);
- rows per second of the busiest thread, and the idle bound: no idle machine with the cores
  this one has can write faster than max(busiest thread, CPU / cores) allows (the export
  reads in one thread while others write: the slower side is its critical path).

``--repeat N`` measures each command N times, alternated, and prints the medians.

    python benchmarks/read_path.py                       # a 10 M-point run of 8 cells
    python benchmarks/read_path.py --points 10000000 --cells 1
    python benchmarks/read_path.py --run RUN_DIR --only report
    python benchmarks/read_path.py --run RUN_DIR --only "export parquet" --repeat 5
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))   # big_run, beside this script
from big_run import write_run

RSS_LIMIT_MB = 300.0
RATE_TARGETS = {"export parquet": 2e6, "export csv": 0.5e6}

#: Runs one command and prints its wall time, CPU time and peak RSS (of its whole tree), the
#: load average over it, and the CPU time of each thread of the command's own process.
_MEASURE = r"""
import json, os, resource, subprocess, sys, tempfile, time
fd, threads = tempfile.mkstemp(suffix=".json")
os.close(fd)
t0 = time.perf_counter()
done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                      env={**os.environ, "READ_PATH_THREADS": threads})
wall = time.perf_counter() - t0
use = resource.getrusage(resource.RUSAGE_CHILDREN)
try:
    with open(threads) as f:
        per_thread = json.load(f)
except ValueError:
    per_thread = {}
os.unlink(threads)
print(json.dumps({"wall_s": wall, "cpu_s": use.ru_utime + use.ru_stime,
                  "rss_mb": use.ru_maxrss / 1024, "code": done.returncode,
                  "load": os.getloadavg()[0], "threads": per_thread,
                  "stderr": done.stderr.decode()[-2000:]}))
"""

#: Runs ``python -m MODULE ARGS`` and writes each of its threads' CPU seconds (as the thread
#: ends; the main thread's at exit) to the file named by READ_PATH_THREADS.
_THREADS = r"""
import atexit, json, os, runpy, sys, threading, time
spent, _run = {}, threading.Thread.run
def run(self):
    try:
        _run(self)
    finally:
        spent[f"{self.name} #{threading.get_ident()}"] = time.thread_time()
threading.Thread.run = run
@atexit.register
def _write():
    spent["main"] = time.thread_time()
    with open(os.environ["READ_PATH_THREADS"], "w") as f:
        json.dump(spent, f)
sys.argv = sys.argv[1:]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""


def measure(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, "-c", _MEASURE, *args], capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout)


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
        os.cpu_count() or 1


def commands(run: Path) -> dict[str, list[str]]:
    cli = [sys.executable, "-c", _THREADS, "sequencer.cli"]
    out = run / "export-bench"
    return {
        "status": [*cli, "status", str(run)],
        "status --json": [*cli, "status", str(run), "--json"],
        "report": [*cli, "report", str(run)],
        "export parquet": [*cli, "export", str(run), "--format", "parquet", "--to", str(out)],
        "export csv": [*cli, "export", str(run), "--format", "csv", "--to", str(out)],
        "export --cycles": [*cli, "export", str(run), "--cycles", "--to", str(out)],
    }


def point_count(run: Path) -> int:
    from store import RunStore

    store = RunStore.open(run)
    try:
        return store.point_count()
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=10_000_000)
    parser.add_argument("--cells", type=int, default=8)
    parser.add_argument("--chunk", type=int, default=200)
    parser.add_argument("--run", type=Path, help="measure this run instead of writing one")
    parser.add_argument("--only", action="append", help="measure only these commands")
    parser.add_argument("--repeat", type=int, default=1,
                        help="measure each command this many times (alternated); medians")
    args = parser.parse_args()
    scratch = None
    if args.run is None:
        scratch = Path(tempfile.mkdtemp(prefix="cellseq-read-path-"))
        run = scratch / "run"
        run.mkdir()
        t0 = time.perf_counter()
        written = write_run(run, args.points, args.cells, args.chunk)
        print(f"wrote {written} points of {args.cells} cells ({args.chunk} a chunk) in"
              f" {time.perf_counter() - t0:.1f} s: {run}")
    else:
        run = args.run
    try:
        points = point_count(run)
        chosen = {name: argv for name, argv in commands(run).items()
                  if not args.only or name in args.only}
        got: dict[str, list[dict]] = {name: [] for name in chosen}
        for _ in range(max(1, args.repeat)):
            for name, argv in chosen.items():
                got[name].append(measure(argv))
        print(f"{points} points; {cores()} cores; medians of {max(1, args.repeat)}")
        print(f"{'command':<16} {'wall s':>7} {'load':>5} {'cpu s':>7} {'thread s':>8}"
              f" {'peak MB':>7}  verdict")
        for name, runs in got.items():
            failed = [r for r in runs if r["code"] != 0]
            if failed:
                print(f"{name:<16} failed (exit {failed[0]['code']}): {failed[0]['stderr']}")
                continue
            print(report_line(name, runs, points))
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
        else:
            shutil.rmtree(run / "export-bench", ignore_errors=True)


def report_line(name: str, runs: list[dict], points: int) -> str:
    """One command's medians and verdicts: RSS for all, the rates for an export."""
    def median(key: str) -> float:
        return statistics.median(r[key] for r in runs)

    wall, cpu, rss = median("wall_s"), median("cpu_s"), max(r["rss_mb"] for r in runs)
    busiest = statistics.median(max(r["threads"].values(), default=0.0) for r in runs)
    verdict = [f"RSS {'<=' if rss <= RSS_LIMIT_MB else '>'} {RSS_LIMIT_MB:g} MB"]
    if name in RATE_TARGETS:
        target = RATE_TARGETS[name]
        bound = max(busiest, cpu / cores())
        per_cpu = points / cpu
        verdict.append(
            f"{points / wall / 1e6:.2f} M rows/s wall, {per_cpu / 1e6:.2f} M rows per CPU-s,"
            f" {points / busiest / 1e6:.2f} M rows per busiest-thread s, idle bound"
            f" {points / bound / 1e6:.2f} M rows/s"
            f" ({'met' if per_cpu >= target else 'NOT met'} per CPU-s: target"
            f" {target / 1e6:g} M rows/s)")
    return (f"{name:<16} {wall:>7.2f} {median('load'):>5.1f} {cpu:>7.2f} {busiest:>8.2f}"
            f" {rss:>7.0f}  {'; '.join(verdict)}")


if __name__ == "__main__":
    main()
