"""A long run of millions of points, written straight through the run store's writer, for the
read path's benchmarks (``benchmarks/read_path.py``).

A 50-day run on hardware records tens of millions of points; the simulators would take hours
to make one. This writes what such a run stores, through the same writer API the executor
uses (:meth:`RunStore.begin_step`, :meth:`RunStore.append`, :meth:`RunStore.end_step`,
:meth:`RunStore.set_cell_state`): full cells (NCM811 coin cells, 0.43 mAh) cycled at 1C,
CC-CV charge, rest, CC discharge, rest, a point every 10 s, polled in chunks of ``--chunk``
points, with noisy voltage, current and temperature and the cumulative counters a channel
keeps. The numbers are shaped like a cycling run's (a sloping charge and discharge, a CV
tail, a slow fade), not a model's: they exercise the reading, not the physics.

    python benchmarks/big_run.py RUN_DIR --points 10000000 --cells 8
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from store import Chunk, RunStore

CAPACITY_AH = 4.2977e-4            # a 12 mm NCM811 disc at 1.9 mg/cm^2, 200 mAh/g
ACTIVE_MASS_KG = 2.1488e-6
RECORD_S = 10.0
#: (kind, technique, written kind, points) of one cycle's steps
CYCLE = (("constant_current", "ConstantCurrent", "cccv_charge", 330),
         ("constant_voltage", "ConstantVoltage", "cccv_charge", 120),
         ("rest", "OpenCircuit", "rest", 60),
         ("constant_current", "ConstantCurrent", "cc_discharge", 330),
         ("rest", "OpenCircuit", "rest", 60))
POINTS_PER_CYCLE = sum(p for *_, p in CYCLE)


def cell_info() -> dict:
    return {"kind": "full_cell", "electrolyte": "AIOSE", "thickness_m": 3e-4,
            "area_m2": 2.0106e-4, "electrode_area_m2": 1.13097e-4, "cathode": "NCM811",
            "active_mass_kg": ACTIVE_MASS_KG, "capacity_Ah": CAPACITY_AH, "anode": "Li",
            "np_ratio": 1.1}


def write_run(run_dir: Path, points: int, cells: int, chunk: int, seed: int = 0) -> int:
    """Write the run; returns the points written."""
    ids = [f"ncm811-long-{k + 1}" for k in range(cells)]
    experiment = "long-cycling-1c"
    meta = {"manifest": {"campaign": "read-path-benchmark", "mode": "simulated", "seed": seed,
                         "protocol": {"file": "generated"}},
            "cells": {c: cell_info() for c in ids},
            "experiments": [{"name": experiment, "cells": ids}],
            "expected": [], "status": "running"}
    store = RunStore.create(run_dir, durable=False, meta=meta)
    rng = np.random.default_rng(seed)
    origin = 1.8e9
    written = 0
    try:
        cycles = max(1, round(points / cells / POINTS_PER_CYCLE))
        for cell in ids:
            t, step_count = 0.0, 0
            counters = dict.fromkeys(("charge_Ah", "discharge_Ah", "charge_Wh",
                                      "discharge_Wh"), 0.0)
            for cycle in range(1, cycles + 1):
                fade = 1.0 - 0.15 * cycle / cycles
                for index, (kind, technique, written_kind, n) in enumerate(CYCLE, 1):
                    step_count += 1
                    current = {"cccv_charge": CAPACITY_AH, "cc_discharge": -CAPACITY_AH
                               }.get(written_kind, 0.0) if kind == "constant_current" else 0.0
                    params = {"technique": technique, "record_dt_s": RECORD_S,
                              "written_kind": written_kind, "tag": ""}
                    if current:
                        params["current_A"] = current
                    with store.transaction():
                        step_id = store.begin_step(cell, experiment, step_count, index, kind,
                                                   cycle, t, params)
                        columns = _step_points(kind, written_kind, n, t, fade, counters, rng)
                        for lo in range(0, n, chunk):
                            part = {k: v[lo:lo + chunk] for k, v in columns.items()}
                            part["utc_s"] = origin + part["test_time_s"]
                            store.append(step_id, Chunk(cell, step_count, index, cycle,
                                                        "series", part))
                        t = float(columns["test_time_s"][-1]) + RECORD_S
                        for name in counters:
                            counters[name] = float(columns[name][-1])
                        store.end_step(step_id, t, "voltage" if current else "duration",
                                       dict(counters))
                        store.set_cell_state(cell, "running", t, experiment=experiment,
                                             step_count=step_count, step_index=index,
                                             step_kind=kind, cycle=cycle,
                                             checkpoint={"counters": counters, "fault": None})
                    written += n
            with store.transaction():
                store.set_cell_state(cell, "completed", t, experiment=experiment)
        with store.transaction():
            store.set_meta("status", "completed")
            store.event(0.0, origin, None, "run_finished", "completed")
        store.commit()
    finally:
        store.close()
    return written


def _step_points(kind: str, written_kind: str, n: int, t0: float, fade: float,
                 counters: dict[str, float], rng: np.random.Generator
                 ) -> dict[str, np.ndarray]:
    t = t0 + RECORD_S * np.arange(n)
    x = np.linspace(0.0, 1.0, n)
    if written_kind == "cccv_charge" and kind == "constant_current":
        v, i = 3.45 + 0.75 * x ** 0.6, np.full(n, CAPACITY_AH * fade ** 0.2)
    elif kind == "constant_voltage":
        v, i = np.full(n, 4.2), CAPACITY_AH * 0.3 * np.exp(-4 * x)
    elif written_kind == "cc_discharge":
        v, i = 4.1 - 0.6 * x ** 1.5 - 0.3 * x ** 8, np.full(n, -CAPACITY_AH * fade ** 0.2)
    else:
        v, i = np.full(n, 3.7), np.zeros(n)
    v = v + rng.normal(0.0, 2e-4, n)
    i = i + rng.normal(0.0, 2e-9, n)
    out = {"test_time_s": t, "step_time_s": t - t0, "voltage_V": v, "current_A": i,
           "temperature_C": 25.0 + rng.normal(0.0, 0.03, n)}
    dq = np.abs(i) * RECORD_S / 3600.0
    de = dq * v
    charging, discharging = i > 0, i < 0
    for name, step, mask in (("charge_Ah", dq, charging), ("discharge_Ah", dq, discharging),
                             ("charge_Wh", de, charging), ("discharge_Wh", de, discharging)):
        out[name] = counters[name] + np.cumsum(np.where(mask, step, 0.0))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--points", type=int, default=10_000_000)
    parser.add_argument("--cells", type=int, default=8)
    parser.add_argument("--chunk", type=int, default=200, help="points per stored chunk")
    args = parser.parse_args()
    args.run_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    n = write_run(args.run_dir, args.points, args.cells, args.chunk)
    print(f"{n} points of {args.cells} cells written to {args.run_dir} in"
          f" {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
