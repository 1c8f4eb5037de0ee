"""CPU cost of the simulators alone: a technique's start and a poll on a simulated channel.

    python benchmarks/sim_steps.py [--cycles N] [--repeats R]

Cycles a paper full cell (NCM811 | AIOSE | Li, in a simulated chamber at 25 degC) and a
symmetric Li | AIOSE | Li cell on simulated channels, as a dry run drives them: CC charge to
4.3 V, CV to C/20, rest, CC discharge to 3.0 V, rest; plating and stripping pulses. Each step
is polled a few times before its end, the chamber read between polls, and the lab snapshotted
while every tenth step runs (a dry run's commits). No sequencer, no store: what the dry run's
profile calls "the simulators' share". Prints microseconds of CPU per step (start, polls, snapshot
share) and per stored point, the best of ``--repeats`` runs (CPU time, so that other load on
the machine matters less; compare two versions in the same session, alternating).
"""

from __future__ import annotations

import argparse
import time
import zlib

from drivers.clock import Clock
from drivers.points import Points
from drivers.techniques import ConstantCurrent, ConstantVoltage, OpenCircuit
from simulators.cells import build_cell
from simulators.lab import SimLab

POLLS_PER_STEP = 3
SNAPSHOT_EVERY_STEPS = 10


class _ManualClock(Clock):
    """Virtual time the benchmark moves by hand."""

    def __init__(self) -> None:
        self.origin_utc, self.t = 0.0, 0.0

    def now(self) -> float:
        return self.t

    async def sleep_until(self, t: float) -> None:
        self.t = max(self.t, t)


def _techniques(one_c_A: float, cycles: int) -> list[object]:
    steps: list[object] = []
    for _ in range(cycles):
        steps += [ConstantCurrent(one_c_A, 7200.0, 10.0, until_voltage_V=4.3),
                  ConstantVoltage(4.3, 7200.0, 10.0, until_abs_current_A=one_c_A / 20),
                  OpenCircuit(600.0, 10.0),
                  ConstantCurrent(-one_c_A, 7200.0, 10.0, until_voltage_V=3.0),
                  OpenCircuit(600.0, 10.0)]
    return steps


def _pulses(current_A: float, cycles: int) -> list[object]:
    steps: list[object] = []
    for _ in range(cycles):
        steps += [ConstantCurrent(current_A, 1800.0, 10.0),
                  ConstantCurrent(-current_A, 1800.0, 10.0),
                  OpenCircuit(300.0, 10.0)]
    return steps


def run_once(cycles: int, digest: list[int] | None = None) -> tuple[float, int, int]:
    """(CPU seconds, steps, points) of one benchmark run; ``digest``: a CRC of every point
    and snapshot is kept in it (to check that two versions give the same data)."""
    clock = _ManualClock()
    lab = SimLab(clock, seed=1)
    lab.add_chamber("chamber")
    cycler = lab.add_cycler("cycler", 2)
    full = build_cell("full_cell", "AIOSE", 300e-6, 2.0e-4,
                      cathode={"material": "NCM811", "active_mass_kg": 3e-6,
                               "capacity_Ah": 6e-4, "area_m2": 1.13e-4})
    symmetric = build_cell("symmetric_li", "AIOSE", 300e-6, 2.0e-4)
    lab.place(full, "cycler", 0, "chamber")
    lab.place(symmetric, "cycler", 1, "chamber")
    chamber = lab.chambers["chamber"]
    chamber.set_temperature_C(25.0)
    plans = [(cycler.channel(0), _techniques(6e-4, cycles)),
             (cycler.channel(1), _pulses(2e-5, cycles))]
    steps = points = 0
    start = time.process_time()
    for channel, techniques in plans:
        for technique in techniques:
            channel.start(technique)  # type: ignore[arg-type]
            t0 = clock.t
            readout = channel.poll()
            points += _count(readout.points, digest)
            end = readout.next_event_s
            while end is not None:
                # a few polls before the end (the executor's poll cap, a chamber watch)
                for k in range(1, POLLS_PER_STEP):
                    clock.t = t0 + (end - t0) * k / POLLS_PER_STEP
                    chamber.read()
                    points += _count(channel.poll().points, digest)
                    if k == 1 and steps % SNAPSHOT_EVERY_STEPS == 0:
                        _snapshot(lab, digest)   # a commit while the step runs
                clock.t = end
                readout = channel.poll()
                points += _count(readout.points, digest)
                end = readout.next_event_s
            steps += 1
    return time.process_time() - start, steps, points


def _snapshot(lab: SimLab, digest: list[int] | None) -> None:
    snap = lab.snapshot()
    if digest is not None:
        digest[0] = zlib.crc32(repr(snap).encode(), digest[0])


def _count(points: Points, digest: list[int] | None) -> int:
    if digest is not None:
        for column in points.columns().values():
            digest[0] = zlib.crc32(column.tobytes(), digest[0])
    return len(points)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--digest", action="store_true",
                        help="print a CRC of every point and snapshot instead of timing")
    args = parser.parse_args()
    if args.digest:
        digest = [0]
        run_once(args.cycles, digest)
        print(f"digest {digest[0]:08x}")
        return
    best = min(run_once(args.cycles) for _ in range(args.repeats))
    cpu, steps, points = best
    print(f"{steps} steps, {points} points: {cpu:.3f} s CPU (best of {args.repeats}),"
          f" {cpu / steps * 1e6:.0f} us per step, {cpu / points * 1e6:.2f} us per point")


if __name__ == "__main__":
    main()
