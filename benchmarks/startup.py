"""Start-up time of the ``cellseq`` command: wall time of everyday commands, and what imports cost.

    python benchmarks/startup.py [--runs 7] [--top 15]

Each command runs ``--runs`` times as a fresh process (``cellseq`` as installed, else
``python -m sequencer``); the median wall time is printed against the 0.5 s target, with the
median CPU time (user and system) beside it: on a machine other work shares, wall time follows
the load and CPU time much less. Then each command runs once under ``python -X importtime``,
and the modules whose own import took longest are listed with the top-level package that pulled
them in. ``status`` reads the run directory of a quickstart dry run made first (without its
report); ``run --sim`` dry-runs a one-step protocol without a report (start-up, the run, and
the printed summary). ``--root`` measures the cellseq source tree given instead (another
checkout); ``--compare OTHER`` measures OTHER and this tree (or ``--root``) alternately, run by
run, and prints both median CPU times: on a loaded machine the only fair comparison.

Every process may write bytecode (``PYTHONDONTWRITEBYTECODE`` is dropped from its environment):
an installed cellseq has its ``.pyc`` files, and compiling the sources at every start would add
about 0.13 s of CPU to ``validate``.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "protocols" / "examples" / "quickstart.yaml"
TARGET_S = 0.5
_IMPORT = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)$")


#: The source tree measured (``--root``): first on the path of every process started here.
SOURCE = {"root": ROOT}


def _env(root: Path | None = None) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(root or SOURCE["root"]), *filter(None, [os.environ.get("PYTHONPATH")])])}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def cellseq() -> list[str]:
    """How to start the command: the installed script beside this Python, or the module (the
    module when another source tree is measured)."""
    script = Path(sys.executable).with_name("cellseq")
    if script.exists() and SOURCE["root"] == ROOT:
        return [str(script)]
    return [sys.executable, "-m", "sequencer"]


def wall_s(argv: list[str], runs: int) -> tuple[float, float, int]:
    """Median wall time and median CPU time (user and system) of ``runs`` runs, and the exit
    code of the last."""
    times, cpus, code = [], [], 0
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        code = subprocess.run(_fresh(argv), capture_output=True, check=False, env=_env(),
                              cwd=SOURCE["root"]).returncode
        times.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return statistics.median(times), statistics.median(cpus), code


_RUNS = iter(range(1 << 30))


def _fresh(argv: list[str]) -> list[str]:
    """``argv`` with a new ``--out`` folder each time (a dry run refuses an existing one)."""
    if "--out" not in argv:
        return argv
    i = argv.index("--out") + 1
    return [*argv[:i], f"{argv[i]}-{next(_RUNS)}", *argv[i + 1:]]


def cpu_s(root: Path, args: list[str]) -> float:
    """CPU time (user and system) of one ``cellseq args`` run from the source tree ``root``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-m", "sequencer", *_fresh(args)], capture_output=True,
                   check=False, env=_env(root), cwd=root)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def compare(other: Path, commands: dict[str, list[str]], runs: int) -> None:
    """Median CPU time of each command in ``other`` and in the measured tree, run alternately
    (one warm-up run of each first, which also writes their bytecode)."""
    mine = SOURCE["root"]
    print(f"{'command':<36} {'other cpu s':>11} {'this cpu s':>10} {'ratio':>6}  ({runs} runs"
          f" each, alternated; load {os.getloadavg()[0]:.1f})")
    for label, argv in commands.items():
        samples: dict[Path, list[float]] = {other: [], mine: []}
        for i in range(runs + 1):
            for root in (other, mine):
                seconds = cpu_s(root, argv)
                if i:
                    samples[root].append(seconds)
        a, b = statistics.median(samples[other]), statistics.median(samples[mine])
        print(f"{label:<36} {a:11.3f} {b:10.3f} {b / a:6.2f}")
    print(f"(load {os.getloadavg()[0]:.1f} at the end)")


def import_costs(args: list[str]) -> list[tuple[float, str, str]]:
    """(own import s, module, the module that pulled it in) for every module one run of
    ``cellseq args`` imports; the puller is the outermost import below ``sequencer.cli`` (or
    the lazy import inside the command), as ``-X importtime`` nests them."""
    code = ("import sys; from sequencer.cli import main;"
            " sys.argv = ['cellseq', *sys.argv[1:]]; main()")
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", code, *args],
                          capture_output=True, text=True, check=False, env=_env(),
                          cwd=SOURCE["root"])
    rows = []
    for line in done.stderr.splitlines():
        m = _IMPORT.match(line)
        if m is not None:
            rows.append((int(m[1]) / 1e6, len(m[3]) // 2, m[4]))
    # importtime prints a module after the modules it imported: read backwards, each line's
    # ancestors are the last lines seen at each smaller depth
    out, chain = [], []
    for own, depth, name in reversed(rows):
        del chain[depth:]
        chain.append(name)
        via = chain[1] if len(chain) > 1 and chain[0] == "sequencer.cli" else chain[0]
        out.append((own, name, via))
    return out


ONE_STEP = """campaign: one-step
cells:
  - {id: s1, kind: symmetric_li, electrolyte: AIOSE, thickness: 300 um, diameter: 16 mm}
experiments:
  - name: e
    cells: [s1]
    steps:
      - {kind: rest, duration: 1 min}
"""

PHASES = """
import sys, time
from pathlib import Path
t0 = time.perf_counter()
import sequencer.cli
import typer._adapters
t1 = time.perf_counter()
import sequencer.plan
t2 = time.perf_counter()
from protocols.units import registry
registry()
t3 = time.perf_counter()
from protocols import load_campaign
campaign = load_campaign(Path(sys.argv[1]))
t4 = time.perf_counter()
from sequencer.station import simulated_station
plan = sequencer.plan.build_plan(campaign, simulated_station(campaign), "quickstart.yaml")
t5 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)
"""


def validate_phases(runs: int) -> list[float]:
    """Median seconds of each phase of ``validate`` in one process: the command line
    (typer, rich, pydantic), the plan's modules, pint's unit registry, loading the protocol,
    and placing and planning it."""
    samples = []
    for _ in range(runs):
        done = subprocess.run([sys.executable, "-c", PHASES, str(QUICKSTART)],
                              capture_output=True, text=True, check=True, env=_env(),
                              cwd=SOURCE["root"])
        samples.append([float(x) for x in done.stdout.split()])
    return [statistics.median(col) for col in zip(*samples, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--root", type=Path, default=ROOT,
                        help="the cellseq source tree to measure (default: this one)")
    parser.add_argument("--only", action="append", help="measure only these commands"
                        " (their first words after cellseq: validate, status, ...)")
    parser.add_argument("--compare", type=Path, default=None, metavar="OTHER",
                        help="another cellseq source tree: CPU times of both, alternated")
    args = parser.parse_args()
    SOURCE["root"] = args.root.resolve()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        made = subprocess.run([*cellseq(), "run", str(QUICKSTART), "--sim", "--out",
                               str(run_dir), "--no-report"], capture_output=True, text=True,
                              check=False, env=_env(), cwd=SOURCE["root"])
        if made.returncode != 0:
            sys.exit(f"the quickstart dry run failed: {made.stderr}")
        one_step = Path(tmp) / "one-step.yaml"
        one_step.write_text(ONE_STEP, encoding="utf-8")
        commands = {
            "cellseq --help": ["--help"],
            "cellseq validate quickstart.yaml": ["validate", str(QUICKSTART)],
            "cellseq plan quickstart.yaml": ["plan", str(QUICKSTART)],
            "cellseq status RUN": ["status", str(run_dir)],
            "cellseq status RUN --json": ["status", str(run_dir), "--json"],
            "cellseq run --help": ["run", "--help"],
            "cellseq resume --help": ["resume", "--help"],
            "cellseq report --help": ["report", "--help"],
            "cellseq export --help": ["export", "--help"],
            "cellseq run --sim (one step)": ["run", str(one_step), "--sim", "--no-report",
                                             "--out", str(Path(tmp) / "dry")],
        }
        if args.only:
            commands = {label: argv for label, argv in commands.items()
                        if label.split()[1] in args.only or label in args.only}
        if args.compare is not None:
            compare(args.compare.resolve(), commands, args.runs)
            return
        print(f"{'command':<36} {'median s':>9} {'cpu s':>7}  target {TARGET_S} s wall"
              f"  ({args.runs} runs each)")
        results = {}
        for label, argv in commands.items():
            median, cpu, code = wall_s([*cellseq(), *argv], args.runs)
            results[label] = median
            verdict = "met" if median <= TARGET_S and code == 0 else \
                ("FAILED (exit {code})" if code else "not met")
            print(f"{label:<36} {median:9.3f} {cpu:7.3f}  {verdict.format(code=code)}")
        python, python_cpu, _ = wall_s([sys.executable, "-c", "pass"], args.runs)
        print(f"{'(python -c pass, for reference)':<36} {python:9.3f} {python_cpu:7.3f}")
        phases = validate_phases(args.runs)
        names = ("command line (typer, rich, pydantic)", "the plan's modules",
                 "pint's unit registry", "loading the protocol", "placing and planning")
        print("\nvalidate, phase by phase (median s, in one process):")
        for name, seconds in zip(names, phases, strict=True):
            print(f"  {seconds:6.3f}  {name}")
        for label, argv in commands.items():
            costs = import_costs(_fresh(argv))
            total = sum(c[0] for c in costs)
            print(f"\n{label}: {len(costs)} modules, {total:.3f} s of imports; the largest"
                  " (own time, and the import that pulled it in):")
            for own, name, via in sorted(costs, reverse=True)[:args.top]:
                print(f"  {own * 1000:7.1f} ms  {name:<44} <- {via}")
            packages: dict[str, float] = {}
            for own, name, _ in costs:
                packages[name.split(".")[0]] = packages.get(name.split(".")[0], 0.0) + own
            heavy = sorted(packages.items(), key=lambda kv: -kv[1])[:8]
            print("  by package: " + ", ".join(f"{p} {s * 1000:.0f} ms" for p, s in heavy))
    shutil.rmtree(run_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
