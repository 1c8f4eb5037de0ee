"""How long ``cellseq resume`` takes to carry on, against the size of the run it resumes.

    python benchmarks/resume_time.py [--rows 1000000 10000000]

For each size, a dry run of long 1C cycling with rests, recorded every second, is cut (a power
cut at a commit: the open transaction is lost, as in a crash) once its store holds that many
rows; then the run is resumed and timed from the call to the moment the interrupted step is
carrying on again (re-attached to its instrument). Resume reads the steps, events and
checkpoints and the last chunk of the open step; before it writes, it also checks the whole
store (SQLite's ``quick_check``, every chunk's size and checksum), so a damaged store is never
written to: that part grows with the store, at the speed the disk reads it (here from the
page cache, just written). Target: <= 1 s at 10 million rows.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from pathlib import Path

from sequencer.runner import resume_run, run_simulated
from sequencer.step_driver import StepDriver
from store import RunStore

PROTOCOL = """
campaign: resume-benchmark
cells:
  - id: ncm811-1
    kind: full_cell
    electrolyte: AIOSE
    thickness: 300 um
    diameter: 16 mm
    cathode: {material: NCM811, loading: 1.9 mg/cm^2, diameter: 12 mm,
              specific_capacity: 200 mAh/g}
experiments:
  - name: cycling
    cells: [ncm811-1]
    steps:
      - kind: loop
        count: 3000
        steps:
          - {kind: constant_current, direction: charge, current: 1C, until_voltage: 4.3 V,
             record_every: 1 s}
          - {kind: rest, duration: 1 h, record_every: 1 s}
          - {kind: constant_current, direction: discharge, current: 1C, until_voltage: 3.0 V,
             record_every: 1 s}
          - {kind: rest, duration: 1 h, record_every: 1 s}
"""


class PowerCut(BaseException):
    pass


class Carried(BaseException):
    pass


def cut_at_rows(rows: int) -> None:
    """Cut the power at the first commit after ``rows`` points were committed."""
    written = {"n": 0, "committed": 0}
    append, before_commit = RunStore.append, RunStore._before_commit

    def counting_append(self, step_id, chunk):
        written["n"] += len(chunk.columns["test_time_s"])
        append(self, step_id, chunk)

    def cutting_commit(self):
        if written["committed"] >= rows:
            self._conn.close()
            raise PowerCut
        before_commit(self)
        written["committed"] = written["n"]   # what this commit holds

    RunStore.append, RunStore._before_commit = counting_append, cutting_commit


def time_resume(run_dir: Path) -> float:
    """Seconds from resume_run() to the interrupted step carrying on."""
    reached: dict[str, float] = {}
    original = StepDriver.drive

    async def first_drive(self, *args, **kwargs):
        reached.setdefault("t", time.perf_counter())
        raise Carried

    StepDriver.drive = first_drive
    start = time.perf_counter()
    try:
        with contextlib.suppress(Carried):   # raised on purpose once the step carries on
            resume_run(run_dir)
    finally:
        StepDriver.drive = original
    return reached["t"] - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    args = parser.parse_args()
    append, before_commit = RunStore.append, RunStore._before_commit
    with tempfile.TemporaryDirectory() as tmp:
        protocol = Path(tmp) / "cycling.yaml"
        protocol.write_text(PROTOCOL, encoding="utf-8")
        print(f"{'rows':>12} {'store MB':>9} {'write s':>8} {'resume s':>9}")
        for rows in args.rows:
            run_dir = Path(tmp) / f"run-{rows}"
            cut_at_rows(rows)
            wall = time.perf_counter()
            try:
                run_simulated(protocol, run_dir, seed=1)
            except BaseException as exc:   # the cut, or what it broke on its way out
                if not isinstance(exc, PowerCut) and "closed database" not in str(exc):
                    raise
            wall = time.perf_counter() - wall
            RunStore.append, RunStore._before_commit = append, before_commit
            store = RunStore.open(run_dir)
            held = store.point_count()
            store.close()
            size = sum(f.stat().st_size for f in run_dir.glob("run.sqlite*")) / 1e6
            print(f"{held:>12,} {size:>9.0f} {wall:>8.1f} {time_resume(run_dir):>9.3f}",
                  flush=True)


if __name__ == "__main__":
    main()
