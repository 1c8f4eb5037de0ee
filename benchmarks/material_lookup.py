"""What the material library costs a campaign's dry run, and an A/B against an older cellseq.

    python benchmarks/material_lookup.py [protocols/aiose/campaign.yaml]
    python benchmarks/material_lookup.py --ab OLD_TREE [--repeat 3]

The first form runs the campaign's dry run once in this process with the library's entry points
timed (process CPU time, so other load on the machine counts little): reading the library files,
resolving names (validation, the simulated lab, the analysis), and copying a material's
parameters for a new cell. It prints how often each ran, their CPU time beside the whole run's,
and the caches' hits: the library is read once per process (``builtin()``), and each name as
written is normalised once (``Library.find``).

The second form measures the dry run's CPU time (``run_simulated``, the run without summary and
report) alternately in OLD_TREE (a checkout of an older cellseq, e.g. the commit before the
material library: ``git worktree add /tmp/old <commit>``) and in this tree, each in a fresh
process whose ``PYTHONPATH`` and working directory are that tree, each with that tree's own copy
of the campaign file; it prints every run and the medians. Same interpreter, same session, so
the difference is the code's.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CAMPAIGN = Path("protocols") / "aiose" / "campaign.yaml"

_MEASURE = """
import sys, time
from pathlib import Path
import sequencer
assert Path(sequencer.__file__).resolve().is_relative_to(Path.cwd().resolve()), sequencer.__file__
from sequencer.runner import run_simulated
cpu = time.process_time()
run_simulated(Path(sys.argv[1]), Path(sys.argv[2]), seed=1)
print(time.process_time() - cpu)
"""


class Timed:
    """Counts the calls of one function and their CPU time (nested calls counted once)."""

    def __init__(self, label: str) -> None:
        self.label, self.calls, self.cpu_s, self._depth = label, 0, 0.0, 0

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            self._depth += 1
            start = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self.cpu_s += time.process_time() - start
        timed.__wrapped__ = fn  # type: ignore[attr-defined]
        return timed


def lookup_cost(protocol: Path) -> None:
    import materials.library as lib
    from sequencer.runner import run_simulated

    timers = {name: Timed(name) for name in
              ("read_material", "Library.resolve", "Library.find", "Material.params")}
    lib.read_material = timers["read_material"].wrap(lib.read_material)
    lib.Library.resolve = timers["Library.resolve"].wrap(lib.Library.resolve)
    lib.Library.find = timers["Library.find"].wrap(lib.Library.find)
    lib.Material.params = timers["Material.params"].wrap(lib.Material.params)
    lib.builtin.cache_clear()

    with tempfile.TemporaryDirectory() as tmp:
        start = time.process_time()
        run_simulated(protocol, Path(tmp) / "run", seed=1)
        total = time.process_time() - start

    library = lib.builtin()
    info = lib.builtin.cache_info()
    print(f"campaign dry run: {total:.2f} s CPU ({protocol})")
    for t in timers.values():
        print(f"  {t.label:<16} {t.calls:6d} calls  {1e3 * t.cpu_s:8.1f} ms CPU"
              f"  ({100 * t.cpu_s / total:.2f} % of the run)")
    spent = sum(t.cpu_s for k, t in timers.items() if k != "Library.find")
    print(f"  library read once per process: builtin() {info.hits} hits, {info.misses} miss")
    print(f"  names resolved: {library.lookups} lookups, {library.lookup_hits} answered from"
          f" the name cache ({library.lookups - library.lookup_hits} normalised)")
    print(f"material lookup: {1e3 * spent:.1f} ms CPU of {total:.1f} s"
          f" ({100 * spent / total:.2f} %), {library.lookup_hits} of {library.lookups}"
          " lookups cached")


def dry_run_cpu(tree: Path) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run([sys.executable, "-c", _MEASURE, str(tree / CAMPAIGN),
                               str(Path(tmp) / "run")], capture_output=True, text=True,
                              cwd=tree, env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
                              check=False)
    if proc.returncode != 0:
        sys.exit(f"{tree}: the dry run failed:\n{proc.stderr[-2000:]}")
    return float(proc.stdout.split()[-1])


def ab(old: Path, repeat: int) -> None:
    runs: dict[str, list[float]] = {"old": [], "new": []}
    for i in range(repeat):
        for label, tree in (("old", old), ("new", ROOT)):
            cpu = dry_run_cpu(tree)
            runs[label].append(cpu)
            print(f"  run {i + 1} {label}: {cpu:6.2f} s CPU ({tree})", flush=True)
    old_s, new_s = statistics.median(runs["old"]), statistics.median(runs["new"])
    print(f"campaign dry run CPU, median of {repeat}: before {old_s:.2f} s, now {new_s:.2f} s"
          f" ({100 * (new_s / old_s - 1):+.1f} %)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("protocol", nargs="?", type=Path, default=ROOT / CAMPAIGN)
    parser.add_argument("--ab", type=Path, metavar="OLD_TREE")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if args.ab is not None:
        ab(args.ab.resolve(), args.repeat)
    else:
        lookup_cost(args.protocol)


if __name__ == "__main__":
    main()
