"""How close cellseq's simulated full cells come to PyBaMM's DFN with the same parameter sets.

For each published cell of ``benchmarks/data/pybamm_cells.yaml`` (Chen2020 NMC811 | graphite-SiOx,
Prada2013 LFP | graphite, Marquis2019 LiCoO2 | graphite) and each case (C/10, 1C and 2C at
25 degC; 1C at 0 and 45 degC) both models run the same protocol from the set's initial state: CC
charge at C/2 to the upper cutoff, CV there until C/50, rest 1 h, CC discharge to the lower
cutoff. The discharge is compared: its capacity (difference in % of PyBaMM's) and the voltage RMSE
over the discharged capacity both reach.

Needs the ``bench`` extra (``pip install -e '.[bench]'``). ``--write-reference`` stores PyBaMM's
curves, small, in tests/data/pybamm_reference.json, which the tests compare cellseq against (CI
has no PyBaMM). The last line reads
``fidelity: N cases at C/10-1C, worst capacity difference X %, worst RMSE Y mV``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from drivers.techniques import ConstantCurrent, ConstantVoltage, OpenCircuit  # noqa: E402
from simulators.cells.published_cell import published_cell  # noqa: E402

CELLS_FILE = ROOT / "benchmarks" / "data" / "pybamm_cells.yaml"
REFERENCE_FILE = ROOT / "tests" / "data" / "pybamm_reference.json"
#: (C-rate, temperature degC) of each case; the first three are the targets' C/10-1C range only
#: where the rate is at most 1C.
CASES = ((0.1, 25.0), (1.0, 25.0), (2.0, 25.0), (1.0, 0.0), (1.0, 45.0))
CHARGE_C_RATE = 0.5
CV_CUTOFF_C_RATE = 0.02
REST_S = 3600.0
REFERENCE_POINTS = 41


def load_designs() -> dict[str, dict]:
    with CELLS_FILE.open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)["cells"]


def cellseq_discharge(design: dict, c_rate: float, temperature_C: float
                      ) -> tuple[np.ndarray, np.ndarray]:
    """(discharged capacity Ah, voltage V) of cellseq's cell over the protocol's discharge."""
    cell = published_cell(design)
    one_c = float(design["capacity_Ah"])
    v_min, v_max = float(design["v_min_V"]), float(design["v_max_V"])

    def run(technique):  # type: ignore[no-untyped-def]
        seg = cell.begin(technique, temperature_C)
        seg.finish(seg.duration_s)
        return seg

    run(ConstantCurrent(current_A=CHARGE_C_RATE * one_c, duration_s=6 * 3600.0,
                        record_dt_s=10.0, until_voltage_V=v_max))
    run(ConstantVoltage(voltage_V=v_max, duration_s=10 * 3600.0, record_dt_s=10.0,
                        until_abs_current_A=CV_CUTOFF_C_RATE * one_c))
    run(OpenCircuit(duration_s=REST_S, record_dt_s=60.0))
    current = c_rate * one_c
    seg = cell.begin(ConstantCurrent(current_A=-current, duration_s=1.5 * 3600.0 / c_rate,
                                     record_dt_s=1.0, until_voltage_V=v_min), temperature_C)
    t = np.linspace(0.0, seg.duration_s, 2001)
    v, _ = seg.sample(t)
    seg.finish(seg.duration_s)
    return t * current / 3600.0, v


def pybamm_discharge(name: str, design: dict, c_rate: float, temperature_C: float
                     ) -> tuple[np.ndarray, np.ndarray]:
    import pybamm

    params = pybamm.ParameterValues(name)
    kelvin = temperature_C + 273.15
    params.update({"Ambient temperature [K]": kelvin, "Initial temperature [K]": kelvin,
                   "Reference temperature [K]": 298.15})
    v_min, v_max = float(design["v_min_V"]), float(design["v_max_V"])
    experiment = pybamm.Experiment([
        f"Charge at {CHARGE_C_RATE}C until {v_max} V",
        f"Hold at {v_max} V until {CV_CUTOFF_C_RATE}C",
        f"Rest for {REST_S / 3600.0} hours",
        f"Discharge at {c_rate}C until {v_min} V",
    ])
    sim = pybamm.Simulation(pybamm.lithium_ion.DFN(), parameter_values=params,
                            experiment=experiment)
    sol = sim.solve()
    step = sol.cycles[-1].steps[-1]  # each experiment line is a cycle of its own
    t = step["Time [s]"].entries
    current = step["Current [A]"].entries
    q = np.concatenate(([0.0], np.cumsum(np.diff(t) * (current[1:] + current[:-1]) / 2)))
    return q / 3600.0, step["Voltage [V]"].entries


def compare(q_a: np.ndarray, v_a: np.ndarray, q_ref: np.ndarray, v_ref: np.ndarray
            ) -> tuple[float, float]:
    """(capacity difference %, voltage RMSE mV over the capacity both reach)."""
    cap_a, cap_ref = float(q_a[-1]), float(q_ref[-1])
    grid = np.linspace(0.0, min(cap_a, cap_ref), 400)
    rmse = float(np.sqrt(np.mean((np.interp(grid, q_a, v_a) - np.interp(grid, q_ref, v_ref))
                                 ** 2)))
    return 100.0 * (cap_a - cap_ref) / cap_ref, 1e3 * rmse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write-reference", action="store_true",
                        help=f"store PyBaMM's curves in {REFERENCE_FILE.relative_to(ROOT)}")
    args = parser.parse_args()
    designs = load_designs()
    reference: dict[str, dict] = {}
    worst_cap = worst_rmse = 0.0
    n_target = 0
    print(f"{'cell':<12} {'case':<12} {'Q PyBaMM/Ah':>11} {'Q cellseq/Ah':>12} {'dQ %':>7}"
          f" {'RMSE mV':>8} {'cellseq s':>9}")
    for name, design in designs.items():
        for c_rate, temp in CASES:
            q_ref, v_ref = pybamm_discharge(name, design, c_rate, temp)
            t0 = time.perf_counter()
            q, v = cellseq_discharge(design, c_rate, temp)
            wall = time.perf_counter() - t0
            d_cap, rmse = compare(q, v, q_ref, v_ref)
            case = f"{c_rate:g}C {temp:g}degC"
            print(f"{name:<12} {case:<12} {q_ref[-1]:>11.4f} {q[-1]:>12.4f} {d_cap:>+7.2f}"
                  f" {rmse:>8.1f} {wall:>9.2f}", flush=True)
            if c_rate <= 1.0 and temp == 25.0:
                n_target += 1
                worst_cap = max(worst_cap, abs(d_cap))
                worst_rmse = max(worst_rmse, rmse)
            frac = np.linspace(0.0, 1.0, REFERENCE_POINTS)
            reference[f"{name} {case}"] = {
                "cell": name, "c_rate": c_rate, "temperature_C": temp,
                "capacity_Ah": round(float(q_ref[-1]), 6),
                "voltage_V": [round(float(x), 5) for x in
                              np.interp(frac * q_ref[-1], q_ref, v_ref)]}
    if args.write_reference:
        REFERENCE_FILE.write_text(json.dumps({
            "about": "PyBaMM DFN discharges (benchmarks/vs_pybamm_fidelity.py): voltage at"
                     f" {REFERENCE_POINTS} evenly spaced fractions of the discharged capacity",
            "cases": reference}, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {REFERENCE_FILE.relative_to(ROOT)}")
    print(f"fidelity: {n_target} cases at C/10-1C, worst capacity difference {worst_cap:.1f} %,"
          f" worst RMSE {worst_rmse:.0f} mV")


if __name__ == "__main__":
    main()
