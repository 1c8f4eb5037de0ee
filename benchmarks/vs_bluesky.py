"""Executor overhead per step: cellseq against Bluesky's RunEngine, measured in one run.

    python benchmarks/vs_bluesky.py [--steps 10000] [--repeat 1]

Needs the ``bench`` extra (``pip install -e .[bench]``: bluesky, ophyd); without it the script
says so and exits 0.

cellseq: the dry run of ``executor_overhead.py``: 10 000 one-second rests on one simulated
channel, in virtual time. A step is: plan entry, a transaction opening it (step row, cell state,
journal line), the technique started on the channel, polled to its end (the simulated cell gives
its points), points and checkpoint stored in the run store (SQLite, not synced to disk in a dry
run), the step ended, a journal line.

Bluesky: one RunEngine (defaults) runs a plan of as many null steps on ``ophyd.sim`` devices, a
``SynAxis`` motor and a ``SynGauss`` detector reading it, no delays. A step is ``checkpoint``,
``mv(motor, x)`` (set, wait for the status: the start) and ``trigger_and_read([det, motor])``
(trigger, wait, read, emit an event document: the poll and the store); also ``count([det])``
(checkpoint, trigger, read, event), the cheapest Bluesky step. The documents go to a callback
that drops them, to a list in memory, or to a JSON-lines file (a document store on disk, the
nearest to cellseq's run store; databroker/tiled are not used: they need a server or catalog
set-up, not a pip install).

Prints microseconds per step, wall and process CPU (all threads; CPU is less sensitive to other
load on the machine), and each Bluesky figure over cellseq's. cellseq's figure is the whole
``run_simulated`` call, planning and set-up included; the RunEngine's excludes building the
RunEngine and the devices. With ``--repeat`` each is measured that many times, interleaved, and
the best kept.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any, TextIO

from executor_overhead import PROTOCOL

from sequencer.runner import run_simulated

Timing = tuple[float, float]   # wall s, CPU s


def cellseq_step(steps: int) -> tuple[Timing, float]:
    """Wall and CPU time of the whole dry run, and the executor's own wall time."""
    with tempfile.TemporaryDirectory() as tmp:
        protocol = Path(tmp) / "overhead.yaml"
        protocol.write_text(PROTOCOL.format(half=steps // 2))
        wall, cpu = time.perf_counter(), time.process_time()
        outcome = run_simulated(protocol, Path(tmp) / "run", seed=1)
        timing = (time.perf_counter() - wall, time.process_time() - cpu)
    return timing, outcome.wall_s


def _load_bluesky() -> dict[str, Any] | None:
    """The Bluesky and ophyd modules, or None if they are not installed."""
    try:
        import bluesky.plan_stubs as bps
        import bluesky.plans as bp
        import bluesky.preprocessors as bpp
        from bluesky import RunEngine
        from ophyd.sim import SynAxis, SynGauss
    except ImportError:
        return None
    return {"bps": bps, "bp": bp, "bpp": bpp, "RunEngine": RunEngine, "SynAxis": SynAxis,
            "SynGauss": SynGauss}


class Bluesky:
    """One RunEngine and one motor and detector, reused by every variant."""

    def __init__(self, mods: dict[str, Any]) -> None:
        self.m = mods
        self.re = mods["RunEngine"]({})
        self.motor = mods["SynAxis"](name="motor")
        self.det = mods["SynGauss"]("det", self.motor, "motor", center=0.0, Imax=1.0, sigma=1.0)

    def mv_read_plan(self, steps: int) -> Iterator[Any]:
        """``steps`` x (checkpoint, mv, trigger_and_read) in one run."""
        bps, bpp = self.m["bps"], self.m["bpp"]

        @bpp.run_decorator(md={"plan_name": "null_steps"})
        def inner() -> Iterator[Any]:
            for i in range(steps):
                yield from bps.checkpoint()
                yield from bps.mv(self.motor, float(i % 2))
                yield from bps.trigger_and_read([self.det, self.motor])

        return (yield from inner())

    def count_plan(self, steps: int) -> Iterator[Any]:
        return (yield from self.m["bp"].count([self.det], num=steps))

    def time(self, plan: Iterator[Any], sink: Callable[[str, dict], None]) -> Timing:
        token = self.re.subscribe(sink)
        try:
            wall, cpu = time.perf_counter(), time.process_time()
            self.re(plan)
            return time.perf_counter() - wall, time.process_time() - cpu
        finally:
            self.re.unsubscribe(token)


def _json_default(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else str(value)


def _jsonl_sink(fh: TextIO) -> Callable[[str, dict], None]:
    def sink(name: str, doc: dict) -> None:
        fh.write(json.dumps([name, doc], default=_json_default))
        fh.write("\n")
    return sink


def bluesky_steps(bs: Bluesky, steps: int, folder: Path) -> dict[str, Timing]:
    """Wall and CPU time of each Bluesky variant."""
    def null(name: str, doc: dict) -> None:
        return None

    docs: list[tuple[str, dict]] = []
    out = {
        "count([det]), null callback": bs.time(bs.count_plan(steps), null),
        "mv + trigger_and_read, null callback": bs.time(bs.mv_read_plan(steps), null),
        "mv + trigger_and_read, documents to a list":
            bs.time(bs.mv_read_plan(steps), lambda name, doc: docs.append((name, doc))),
    }
    docs.clear()
    with (folder / "documents.jsonl").open("w", encoding="utf-8") as fh:
        out["mv + trigger_and_read, documents to a JSONL file"] = \
            bs.time(bs.mv_read_plan(steps), _jsonl_sink(fh))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    mods = _load_bluesky()
    if mods is None:
        print("bluesky and ophyd are not installed: pip install -e '.[bench]' (or"
              " pip install bluesky ophyd) to compare with Bluesky's RunEngine")
        return
    steps = args.steps - args.steps % 2   # the cellseq protocol loops over pairs of rests
    bs = Bluesky(mods)
    best_cellseq: tuple[Timing, float] | None = None
    best_bs: dict[str, Timing] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeat):
            ours = cellseq_step(steps)
            if best_cellseq is None or ours[0][0] < best_cellseq[0][0]:
                best_cellseq = ours
            for name, timing in bluesky_steps(bs, steps, Path(tmp)).items():
                if name not in best_bs or timing[0] < best_bs[name][0]:
                    best_bs[name] = timing
    assert best_cellseq is not None
    (wall, cpu), executor_wall = best_cellseq

    def us(seconds: float) -> float:
        return 1e6 * seconds / steps

    versions = ", ".join(f"{p} {metadata.version(p)}" for p in ("bluesky", "ophyd"))
    print(f"{steps} null steps each, best of {args.repeat}; us per step, wall and CPU")
    print(f"cellseq, 1 s rests on a simulated channel in virtual time:"
          f" {us(wall):7.0f} wall {us(cpu):7.0f} CPU"
          f"  (executor alone {us(executor_wall):.0f} wall)")
    print(f"Bluesky RunEngine on ophyd.sim devices ({versions}):")
    for name, (b_wall, b_cpu) in best_bs.items():
        print(f"  {name:<48} {us(b_wall):7.0f} wall {us(b_cpu):7.0f} CPU"
              f"  x{b_wall / wall:.1f} cellseq's wall, x{b_cpu / cpu:.1f} its CPU")


if __name__ == "__main__":
    main()
