"""Dry-run speed of a 100-cycle CC-CV protocol: cellseq's simulators against PyBaMM's SPM.

    python benchmarks/vs_pybamm.py [--cycles 100] [--rate 1] [--repeat 1]

Needs the ``bench`` extra (``pip install -e .[bench]``: pybamm); without it the script says so
and exits 0.

The experiment: a fully discharged cell, then ``--cycles`` x (CC charge at ``--rate`` C to the
upper voltage, CV there until C/20 or 1 h, CC discharge at the same rate to the lower voltage),
a point every 60 s.

cellseq: ``run_simulated`` on a protocol the script writes: one NCM811|AIOSE|Li coin cell
(``full_cell``: MSMR open-circuit voltage, empirical rate capacity, a circuit, fade per cycle),
``cccv_charge`` to 4.35 V and ``cc_discharge`` to 2.8 V in a loop; timed from protocol file to
a closed run store (validation, planning, the dry run, every point written to SQLite).

PyBaMM: ``pybamm.lithium_ion.SPM()`` with the Chen2020 parameter set (LG M50, NMC811|graphite,
5 Ah) and ``pybamm.Experiment`` of the same steps and C-rates; its window is 2.5-4.2 V, so the
voltages are 4.2 V and 2.5 V; default solver, ``initial_soc=0``. Timed from building the
simulation (model, parameters, mesh, discretisation) to the solution in memory; importing
pybamm is not timed.

The models differ (a particle-diffusion model of a graphite cell against cellseq's closed-form
coin-cell model), so what is compared is the wall time to run the same experiment, not the
physics. Prints wall seconds, CPU seconds (user + system of this process, the solver's threads
included: the figure to compare on a loaded machine), simulated hours (the experiment's end
time) and simulated hours per wall second for each, and the ratios. With ``--repeat`` each is
run that many times, interleaved, and the fastest kept (wall and CPU each on its own).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import ModuleType

from sequencer.runner import run_simulated
from store import RunStore

PROTOCOL = """campaign: vs-pybamm
cells:
  - id: ncm811-1
    kind: full_cell             # NCM811 | AIOSE | Li
    electrolyte: AIOSE
    thickness: 300 um
    diameter: 16 mm
    cathode:
      material: NCM811
      loading: 1.9 mg/cm^2
      diameter: 12 mm
      specific_capacity: 200 mAh/g
    limits: {{max_voltage: 4.45 V, min_voltage: 2.5 V, max_current: 5 mA}}
experiments:
  - name: cycling
    cells: [ncm811-1]
    steps:
      - kind: loop
        count: {cycles}
        steps:
          - kind: cccv_charge
            current: {rate}C
            voltage: 4.35 V
            until_current: C/20
            hold_duration: 1 h
            record_every: 60 s
          - kind: cc_discharge
            current: {rate}C
            until_voltage: 2.8 V
            record_every: 60 s
"""


@dataclass(frozen=True)
class Result:
    wall_s: float
    cpu_s: float
    sim_hours: float
    detail: str

    @property
    def hours_per_s(self) -> float:
        return self.sim_hours / self.wall_s


def run_cellseq(cycles: int, rate: float) -> Result:
    with tempfile.TemporaryDirectory() as tmp:
        protocol = Path(tmp) / "cycling.yaml"
        protocol.write_text(PROTOCOL.format(cycles=cycles, rate=f"{rate:g}"), encoding="utf-8")
        start, cpu = time.perf_counter(), time.process_time()
        outcome = run_simulated(protocol, Path(tmp) / "run", seed=1)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        store = RunStore.open(outcome.run_dir)
        try:
            steps = store.steps()
            points = store.point_count()
        finally:
            store.close()
    hours = max(s["ended_t"] or s["started_t"] for s in steps) / 3600
    return Result(wall, cpu, hours, f"{len(steps)} steps, {points} points, dry run"
                  f" {outcome.wall_s:.2f} s of it")


def _load_pybamm() -> ModuleType | None:
    os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")   # no opt-in prompt
    try:
        import pybamm
    except ImportError:
        return None
    return pybamm


def run_pybamm(pybamm: ModuleType, cycles: int, rate: float) -> Result:
    cycle = (f"Charge at {rate:g}C until 4.2 V (60 second period)",
             "Hold at 4.2 V for 1 hour or until C/20 (60 second period)",
             f"Discharge at {rate:g}C until 2.5 V (60 second period)")
    start, cpu = time.perf_counter(), time.process_time()
    sim = pybamm.Simulation(pybamm.lithium_ion.SPM(),
                            experiment=pybamm.Experiment([cycle] * cycles),
                            parameter_values=pybamm.ParameterValues("Chen2020"))
    sim.build_for_experiment(initial_soc=0)
    built = time.perf_counter() - start
    solution = sim.solve(initial_soc=0)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return Result(wall, cpu, float(solution["Time [h]"].entries[-1]),
                  f"{len(solution.cycles)} cycles, {type(sim.solver).__name__}, set-up"
                  f" {built:.2f} s of it")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=100)
    parser.add_argument("--rate", type=float, default=1.0, help="C-rate of charge and discharge")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    pybamm = _load_pybamm()
    if pybamm is None:
        print("pybamm is not installed: pip install -e '.[bench]' (or pip install pybamm) to"
              " compare with PyBaMM")
        return
    ours: list[Result] = []
    theirs: list[Result] = []
    for _ in range(args.repeat):
        ours.append(run_cellseq(args.cycles, args.rate))
        theirs.append(run_pybamm(pybamm, args.cycles, args.rate))
    ours_cpu, theirs_cpu = min(r.cpu_s for r in ours), min(r.cpu_s for r in theirs)
    ours, theirs = min(ours, key=lambda r: r.wall_s), min(theirs, key=lambda r: r.wall_s)
    print(f"{args.cycles} cycles of CC-CV charge and CC discharge at {args.rate:g}C, a point"
          f" every 60 s, best of {args.repeat}")
    for name, r, cpu in (("cellseq simulators", ours, ours_cpu),
                         (f"PyBaMM {metadata.version('pybamm')} SPM, Chen2020", theirs,
                          theirs_cpu)):
        print(f"{name:<32} {r.wall_s:7.2f} s wall {cpu:7.3f} s CPU {r.sim_hours:7.1f} h"
              f" simulated {r.hours_per_s:8.0f} h per wall s  ({r.detail})")
    print(f"wall time: PyBaMM x{theirs.wall_s / ours.wall_s:.1f} cellseq's; simulated hours per"
          f" wall second: cellseq x{ours.hours_per_s / theirs.hours_per_s:.1f} PyBaMM's;"
          f" CPU time: PyBaMM x{theirs_cpu / ours_cpu:.1f} cellseq's")


if __name__ == "__main__":
    main()
