"""Wall time, CPU time and peak memory of the commands that read a run: ``status``,
``status --json``, ``report``, ``export --format parquet``, ``export --format csv`` and
``export --cycles``, on a run of millions of points.

The run is written by ``benchmarks/big_run.py`` (through the store's writer, not the
simulators), or given with ``--run``: the paper campaign's dry run, say. Each command runs in
its own process; its peak RSS is the largest resident size of that process and of any it
started (the report draws figures in worker processes), its CPU time theirs summed. The
targets: peak RSS <= 300 MB for each command at any run size; export >= 2 M rows/s to
Parquet and >= 0.5 M rows/s to CSV.

    python benchmarks/read_path.py                       # a 10 M-point run of 8 cells
    python benchmarks/read_path.py --points 10000000 --cells 1
    python benchmarks/read_path.py --run RUN_DIR --only report
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))   # big_run, beside this script
from big_run import write_run

RSS_LIMIT_MB = 300.0
RATE_TARGETS = {"export parquet": 2e6, "export csv": 0.5e6}

#: Runs one command and prints its wall time, CPU time and peak RSS (of its whole tree).
_MEASURE = r"""
import json, resource, subprocess, sys, time
t0 = time.perf_counter()
done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
wall = time.perf_counter() - t0
use = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"wall_s": wall, "cpu_s": use.ru_utime + use.ru_stime,
                  "rss_mb": use.ru_maxrss / 1024, "code": done.returncode,
                  "stderr": done.stderr.decode()[-2000:]}))
"""


def measure(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, "-c", _MEASURE, *args], capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout)


def commands(run: Path) -> dict[str, list[str]]:
    cli = [sys.executable, "-m", "sequencer.cli"]
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
        print(f"{'command':<16} {'wall s':>8} {'cpu s':>8} {'peak MB':>8}  verdict")
        for name, argv in commands(run).items():
            if args.only and name not in args.only:
                continue
            got = measure(argv)
            if got["code"] != 0:
                print(f"{name:<16} failed (exit {got['code']}): {got['stderr']}")
                continue
            verdict = [f"RSS {'<=' if got['rss_mb'] <= RSS_LIMIT_MB else '>'}"
                       f" {RSS_LIMIT_MB:g} MB"]
            if name in RATE_TARGETS:
                rate = points / got["wall_s"]
                target = RATE_TARGETS[name]
                verdict.append(f"{rate / 1e6:.2f} M rows/s wall,"
                               f" {points / got['cpu_s'] / 1e6:.2f} M rows/s of CPU"
                               f" ({'met' if rate >= target else 'NOT met'}: target"
                               f" {target / 1e6:g} M rows/s)")
            print(f"{name:<16} {got['wall_s']:>8.2f} {got['cpu_s']:>8.2f}"
                  f" {got['rss_mb']:>8.0f}  {'; '.join(verdict)}")
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
        else:
            shutil.rmtree(run / "export-bench", ignore_errors=True)


if __name__ == "__main__":
    main()
