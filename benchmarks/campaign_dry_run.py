"""Dry-run speed and memory of a whole campaign, and of the same campaign made longer.

    python benchmarks/campaign_dry_run.py [protocols/aiose/campaign.yaml] [--scales 1,2,4,8]

Prints, for the campaign and for copies whose loop counts and cycle counts are multiplied by
each scale (default 1 and 2): wall time, CPU time (less sensitive to other load on the
machine), simulated cell-hours, cell-hours per wall second, stored points and peak RSS of the
process running it (the run, without the summary and report ``cellseq run`` derives after it),
then each scale's peak RSS against the campaign's. Each run is a separate process so its peak
RSS is its own; run the benchmark alone (two at once gave both versions the same inflated
peaks at x4 and x8). Targets (2 cores): full campaign <= 10 s wall, <= 300 MB peak RSS, every
longer copy's RSS within 10 % of the single one (memory stays flat as runs get longer: it
follows one cell or one chunk, not the run).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "protocols" / "aiose" / "campaign.yaml"
SCALED_KEYS = ("count", "cycles", "max_pulses")

_MEASURE = """
import resource, sys, time
from pathlib import Path
from sequencer.runner import run_simulated
t, cpu = time.perf_counter(), time.process_time()
outcome = run_simulated(Path(sys.argv[1]), Path(sys.argv[2]), seed=1)
wall, cpu = time.perf_counter() - t, time.process_time() - cpu
print(wall, cpu, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def scaled_copy(protocol: Path, folder: Path, scale: int) -> Path:
    """Copy the protocol and its includes with every loop and cycle count times ``scale``."""
    def scaled(node: object) -> object:
        if isinstance(node, dict):
            return {k: (scale * v if k in SCALED_KEYS and isinstance(v, int) else scaled(v))
                    for k, v in node.items()}
        if isinstance(node, list):
            return [scaled(v) for v in node]
        return node

    def copy(path: Path) -> None:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        (folder / path.name).write_text(yaml.safe_dump(scaled(doc), sort_keys=False),
                                        encoding="utf-8")
        for ref in doc.get("include", []):
            copy(path.parent / ref)

    copy(protocol)
    return folder / protocol.name


def cell_hours(run_dir: Path) -> tuple[float, int]:
    from store import RunStore

    store = RunStore.open(run_dir)
    try:
        hours = sum((s["ended_t"] or s["started_t"]) - s["started_t"]
                    for s in store.steps()) / 3600
        return hours, store.point_count()
    finally:
        store.close()


def measure(protocol: Path, label: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", _MEASURE, str(protocol), str(run_dir)],
                              capture_output=True, text=True, cwd=ROOT, check=False)
        total = time.perf_counter() - start
        if proc.returncode != 0:
            sys.exit(f"{label}: the dry run failed:\n{proc.stderr[-2000:]}")
        wall, cpu, rss_kb = proc.stdout.split()[-3:]
        hours, points = cell_hours(run_dir)
    figures = {"wall_s": float(wall), "cpu_s": float(cpu), "process_s": total,
               "cell_hours": hours,
               "cell_hours_per_s": hours / float(wall), "points": points,
               "peak_rss_MB": int(rss_kb) / 1024}
    print(f"{label:>9}: {figures['wall_s']:7.1f} s wall ({total:.1f} s with start-up),"
          f" {figures['cpu_s']:6.1f} s CPU,"
          f" {hours:10.0f} cell-h, {figures['cell_hours_per_s']:9.0f} cell-h/s,"
          f" {points:>10} points, peak RSS {figures['peak_rss_MB']:6.0f} MB")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("protocol", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("--scales", default="1,2",
                        help="loop and cycle counts times each of these (default 1,2)")
    args = parser.parse_args()
    try:
        scales = sorted({int(x) for x in args.scales.split(",")})
    except ValueError:
        sys.exit(f"--scales {args.scales!r}: give whole numbers separated by commas")
    if not scales or scales[0] < 1:
        sys.exit(f"--scales {args.scales!r}: the scales must be at least 1")
    figures: dict[str, dict[str, float]] = {}
    for scale in scales:
        label = "campaign" if scale == 1 else f"x{scale}"
        if scale == 1:
            figures[label] = measure(args.protocol, label)
            continue
        with tempfile.TemporaryDirectory() as tmp:
            figures[label] = measure(scaled_copy(args.protocol, Path(tmp), scale), label)
    base = next(iter(figures.values()))
    growth = {label: f["peak_rss_MB"] / base["peak_rss_MB"] - 1 for label, f in figures.items()}
    print("peak RSS by scale: " + ", ".join(
        f"{label} {f['peak_rss_MB']:.0f} MB ({f['points']} points)"
        for label, f in figures.items()))
    worst = max(growth.values())
    print(f"largest RSS growth against x{scales[0]}: {100 * worst:+.1f} % (target within 10 %:"
          f" {'met' if worst <= 0.10 else 'NOT met'})")
    print(json.dumps({"figures": figures, "rss_growth": growth}))


if __name__ == "__main__":
    main()
