"""Start-up time of the ``cellseq`` command: wall time of everyday commands, and what imports cost.

    python benchmarks/startup.py [--runs 7] [--top 15]

Each command runs ``--runs`` times as a fresh process (``cellseq`` as installed, else
``python -m sequencer``); the median wall time is printed against the 0.5 s target, with the
median CPU time (user and system) beside it: on a machine other work shares, wall time follows
the load and CPU time much less. Then each command runs once under ``python -X importtime``,
and the modules whose own import took longest are listed with the top-level package that pulled
them in. ``status`` reads the run directory of a quickstart dry run made first (without its
report); ``plan`` plans the quickstart and the AIOSE campaign (14 files, every kind of step).

A run's start-up is the time until its first step: a one-step dry run, with ``--no-report`` and
with the report, is timed until its ``run.log`` says the experiment started (an event, written
out at once), the process's CPU time read from ``/proc`` at that moment; that is the figure held
against the target, the whole command's times beside it (the run, its printed summary and, with
the report, the report's figures). Without ``/proc`` only the whole command is timed.

``--root`` measures the cellseq source tree given instead (another checkout); ``--compare OTHER``
measures OTHER and this tree (or ``--root``) alternately, run by run, and prints both median CPU
times (and a run's CPU time until its first step): on a loaded machine the only fair comparison.

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
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "protocols" / "examples" / "quickstart.yaml"
CAMPAIGN = ROOT / "protocols" / "aiose" / "campaign.yaml"
TARGET_S = 0.5
#: The line of ``run.log`` that marks a run's start-up done: its first experiment starting (an
#: event, flushed at once; the first step's own line follows it within the same millisecond).
FIRST_STEP = "experiment_started"
POLL_S = 0.002
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


class Sample(NamedTuple):
    """One fresh process: wall and CPU seconds of the whole command, and until its first step
    (None when it is not a run, or ``/proc`` is not there to read its CPU time)."""

    wall_s: float
    cpu_s: float
    first_wall_s: float | None
    first_cpu_s: float | None
    code: int


def _out_dir(argv: list[str]) -> Path | None:
    return Path(argv[argv.index("--out") + 1]) if "--out" in argv else None


def _process_cpu_s(pid: int) -> float | None:
    """User and system CPU seconds of a running process, from ``/proc`` (Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(argv: list[str], root: Path | None = None) -> Sample:
    """One fresh run of ``argv`` (a new ``--out`` folder for a run); for a run, also the wall
    and CPU time when its ``run.log`` first shows :data:`FIRST_STEP`."""
    argv = _fresh(argv)
    out = _out_dir(argv)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    first_wall = first_cpu = None
    with subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          env=_env(root), cwd=root or SOURCE["root"]) as proc:
        log = out / "run.log" if out is not None else None
        while log is not None and proc.poll() is None:
            try:
                seen = FIRST_STEP in log.read_text(encoding="utf-8", errors="replace")
            except OSError:
                seen = False
            if seen:
                first_wall = time.perf_counter() - start
                first_cpu = _process_cpu_s(proc.pid)
                break
            time.sleep(POLL_S)
        code = proc.wait()
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    if out is not None:
        shutil.rmtree(out, ignore_errors=True)
    return Sample(wall, cpu, first_wall if first_cpu is not None else None, first_cpu, code)


def median_of(samples: list[Sample]) -> Sample:
    """Each figure's median over the runs (the first step's over the runs that showed it);
    the last run's exit code."""
    def med(values: list[float | None]) -> float | None:
        known = [v for v in values if v is not None]
        return statistics.median(known) if known else None

    return Sample(statistics.median(s.wall_s for s in samples),
                  statistics.median(s.cpu_s for s in samples),
                  med([s.first_wall_s for s in samples]), med([s.first_cpu_s for s in samples]),
                  samples[-1].code)


_RUNS = iter(range(1 << 30))


def _fresh(argv: list[str]) -> list[str]:
    """``argv`` with a new ``--out`` folder each time (a dry run refuses an existing one)."""
    if "--out" not in argv:
        return argv
    i = argv.index("--out") + 1
    return [*argv[:i], f"{argv[i]}-{next(_RUNS)}", *argv[i + 1:]]


def _module_argv(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "sequencer", *args]


def compare(other: Path, commands: dict[str, list[str]], runs: int) -> None:
    """Median CPU time of each command in ``other`` and in the measured tree, run alternately
    (one warm-up run of each first, which also writes their bytecode); for a run, also the
    CPU time until its first step."""
    mine = SOURCE["root"]
    print(f"{'command':<40} {'other cpu s':>11} {'this cpu s':>10} {'ratio':>6}  ({runs} runs"
          f" each, alternated; load {os.getloadavg()[0]:.1f})")
    for label, argv in commands.items():
        samples: dict[Path, list[Sample]] = {other: [], mine: []}
        for i in range(runs + 1):
            for root in (other, mine):
                sample = measure(_module_argv(argv), root)
                if i:
                    samples[root].append(sample)
        a, b = median_of(samples[other]), median_of(samples[mine])
        print(f"{label:<40} {a.cpu_s:11.3f} {b.cpu_s:10.3f} {b.cpu_s / a.cpu_s:6.2f}")
        if a.first_cpu_s is not None and b.first_cpu_s is not None:
            print(f"{'  until its first step':<40} {a.first_cpu_s:11.3f} {b.first_cpu_s:10.3f}"
                  f" {b.first_cpu_s / a.first_cpu_s:6.2f}")
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
from protocols import load_campaign
campaign = load_campaign(Path(sys.argv[1]))
t3 = time.perf_counter()
from sequencer.station import simulated_station
plan = sequencer.plan.build_plan(campaign, simulated_station(campaign), "quickstart.yaml")
t4 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2, t4 - t3, "pint" in sys.modules)
"""


def validate_phases(runs: int) -> tuple[list[float], bool]:
    """Median seconds of each phase of ``validate`` in one process: the command line
    (typer, rich, pydantic), the plan's modules, loading the protocol (pint only for a unit
    :mod:`protocols.si_table` does not hold), and placing and planning it; and whether pint
    was imported."""
    samples, pint = [], False
    for _ in range(runs):
        done = subprocess.run([sys.executable, "-c", PHASES, str(QUICKSTART)],
                              capture_output=True, text=True, check=True, env=_env(),
                              cwd=SOURCE["root"])
        *seconds, loaded = done.stdout.split()
        samples.append([float(x) for x in seconds])
        pint = pint or loaded == "True"
    return [statistics.median(col) for col in zip(*samples, strict=True)], pint


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _verdict(m: Sample) -> str:
    """Met or not, on wall time: a run's until its first step, any other command's whole."""
    if m.code:
        return f"FAILED (exit {m.code})"
    seconds = m.wall_s if m.first_wall_s is None else m.first_wall_s
    return "met" if seconds <= TARGET_S else "not met"


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
            "cellseq plan aiose/campaign.yaml": ["plan", str(CAMPAIGN)],
            "cellseq status RUN": ["status", str(run_dir)],
            "cellseq status RUN --json": ["status", str(run_dir), "--json"],
            "cellseq run --help": ["run", "--help"],
            "cellseq resume --help": ["resume", "--help"],
            "cellseq report --help": ["report", "--help"],
            "cellseq export --help": ["export", "--help"],
            "cellseq run --sim --no-report (1 step)": ["run", str(one_step), "--sim",
                                                       "--no-report", "--out",
                                                       str(Path(tmp) / "dry")],
            "cellseq run --sim (1 step, report)": ["run", str(one_step), "--sim", "--out",
                                                   str(Path(tmp) / "reported")],
        }
        if args.only:
            commands = {label: argv for label, argv in commands.items()
                        if label.split()[1] in args.only or label in args.only}
        if args.compare is not None:
            compare(args.compare.resolve(), commands, args.runs)
            return
        print(f"median of {args.runs} runs each, seconds; a run's start-up is until its first"
              f" step (load {os.getloadavg()[0]:.1f})")
        print(f"{'command':<40} {'wall':>6} {'cpu':>6} {'start-up':>8} {'its cpu':>7}"
              f" {'target':>7}")
        for label, argv in commands.items():
            m = median_of([measure([*cellseq(), *argv]) for _ in range(args.runs)])
            print(f"{label:<40} {m.wall_s:6.3f} {m.cpu_s:6.3f} {_seconds(m.first_wall_s):>8}"
                  f" {_seconds(m.first_cpu_s):>7} {'<= ' + str(TARGET_S):>7}  {_verdict(m)}")
        python = median_of([measure([sys.executable, "-c", "pass"]) for _ in range(args.runs)])
        print(f"{'(python -c pass, for reference)':<40} {python.wall_s:6.3f}"
              f" {python.cpu_s:6.3f}")
        phases, pint = validate_phases(args.runs)
        names = ("command line (typer, rich, pydantic)", "the plan's modules",
                 "loading the protocol", "placing and planning")
        print("\nvalidate quickstart.yaml, phase by phase (median s, in one process; pint"
              f" {'imported' if pint else 'not imported'}):")
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
