"""The README's campaign, SIGKILLed at random moments and resumed each time, against an
uninterrupted run.

    python benchmarks/kill_resume_campaign.py [--kills 3] [--seed 1] [--keep]

First ``cellseq run protocols/aiose/campaign.yaml --sim --seed 1`` runs uninterrupted (with its
report). Then the same command runs again and is SIGKILLed at a random moment, ``cellseq
resume`` continues it and is killed in its turn, and so on ``--kills`` times; the last resume
runs to the end and writes the report. The moments are random fractions of the points the
uninterrupted run stored (so every kill falls inside the run, wherever the machine's load puts
it in time); with ``--early``, the first kill comes instead within the first second of the run,
before it has committed anything. Before each resume the protocol's original files are moved
away, so the resume can only use the run directory's copies.

Printed: each kill (when, how much was stored), each process's wall time, and the worst
difference between the derived results (``report/summary.json``) of the two runs, with the
results found on one side only. Target: 0 difference, none on one side only.
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
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CAMPAIGN = ROOT / "protocols" / "aiose"
POLL_WALL_S = 0.05


def cellseq(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "sequencer", *args], cwd=ROOT,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "COLUMNS": "120"})


def points(run_dir: Path) -> int:
    """Points committed in a run's store (0 while it has none)."""
    path = run_dir / "run.sqlite"
    if not path.is_file():
        return 0
    try:
        conn = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True, timeout=1)
        try:
            return int(conn.execute("SELECT COALESCE(SUM(n), 0) FROM chunks").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def run_until(proc: subprocess.Popen[bytes], run_dir: Path, stored: int | None,
              after_store_s: float | None) -> tuple[bool, float, int]:
    """Let ``proc`` run until the store holds ``stored`` points, or until ``after_store_s``
    after its store appeared (then SIGKILL it), or until it ends. Returns (killed, wall s
    from launch, points then)."""
    start, deadline = time.monotonic(), math.inf
    while proc.poll() is None:
        now = time.monotonic()
        if after_store_s is not None and deadline == math.inf and \
                (run_dir / "run.sqlite").exists():
            deadline = now + after_store_s
        if (stored is not None and points(run_dir) >= stored) or now >= deadline:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return proc.returncode == -signal.SIGKILL, now - start, points(run_dir)
        time.sleep(0.005 if deadline < math.inf else POLL_WALL_S)
    return False, time.monotonic() - start, points(run_dir)


def results(run_dir: Path) -> dict[tuple, float]:
    """Derived results by (experiment, cell, quantity, unit, conditions, occurrence)."""
    summary = json.loads((run_dir / "report" / "summary.json").read_text(encoding="utf-8"))
    out: dict[tuple, float] = {}
    seen: Counter[tuple] = Counter()
    for r in summary["results"]:
        key = (r["experiment"], r["cell"], r["quantity"], r["unit"],
               json.dumps(r.get("conditions", {}), sort_keys=True))
        seen[key] += 1
        out[(*key, seen[key])] = r["value"]
    return out


def difference(a: float | None, b: float | None) -> float:
    if a is None or b is None:
        return 0.0 if a is b else math.inf
    if a == b:
        return 0.0
    return abs(a - b) / abs(b) if b else math.inf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1, help="the campaign's and the kills' seed")
    parser.add_argument("--early", action="store_true",
                        help="the first kill within the first second of the run")
    parser.add_argument("--keep", action="store_true", help="keep the run directories")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="kill-resume-"))
    logs = tmp / "logs"
    logs.mkdir()
    protocol = tmp / "aiose"
    shutil.copytree(CAMPAIGN, protocol)   # its originals are moved away before each resume
    reference, killed = tmp / "reference", tmp / "killed"
    wall = time.perf_counter()

    proc = cellseq(["run", str(protocol / "campaign.yaml"), "--sim", "--seed", str(args.seed),
                    "--out", str(reference)], logs / "reference.log")
    start = time.monotonic()
    proc.wait()
    ref_s, total = time.monotonic() - start, points(reference)
    print(f"uninterrupted run: exit {proc.returncode}, {ref_s:.0f} s (with its report),"
          f" {total} points", flush=True)

    fractions = sorted(rng.uniform(0.02, 0.98) for _ in range(args.kills))
    first = ["run", str(protocol / "campaign.yaml"), "--sim", "--seed", str(args.seed),
             "--out", str(killed), "--no-report"]
    command = first
    for k in range(args.kills + 1):
        last = k == args.kills
        if last:
            command = ["resume", str(killed)]   # to the end, with the report
        early = args.early and k == 0
        target = None if last or early else int(fractions[k] * total)
        proc = cellseq(command, logs / f"{k}.log")
        was_killed, took, now = run_until(proc, killed, target,
                                          rng.uniform(0.0, 1.0) if early else None)
        what = (f"killed after {took:.1f} s at {now} points ({100 * now / total:.1f} % of the"
                " run)" if was_killed else f"ended by itself after {took:.1f} s, exit"
                f" {proc.returncode}")
        print(f"{command[0]} {k + 1}: {what}", flush=True)
        if not was_killed and not last:
            print("  (it ended before its kill moment; the remaining kills are skipped)")
            break
        # the originals go away: a resume reads only the run directory's copies
        moved = tmp / f"moved-{k}"
        shutil.move(protocol, moved)
        protocol = moved
        command = ["resume", str(killed), "--no-report"]
    if not (killed / "report" / "summary.json").is_file():
        proc = cellseq(["report", str(killed)], logs / "report.log")
        proc.wait()

    a, b = results(killed), results(reference)
    worst = max((difference(a.get(key), b.get(key)), key) for key in a.keys() & b.keys()) \
        if a.keys() & b.keys() else (math.nan, None)
    only_resumed, only_reference = sorted(a.keys() - b.keys()), sorted(b.keys() - a.keys())
    print(f"derived results: {len(a)} after the kills, {len(b)} uninterrupted")
    print(f"worst difference in derived results: {worst[0]:.3g}"
          + (f" ({worst[1][1]} {worst[1][2]})" if worst[0] else ""))
    print(f"results only after the kills: {len(only_resumed)}; only uninterrupted:"
          f" {len(only_reference)}")
    for key in [*only_resumed, *only_reference][:5]:
        print(f"  {key}")
    print(f"wall time: {time.perf_counter() - wall:.0f} s")
    if args.keep:
        print(f"kept: {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
