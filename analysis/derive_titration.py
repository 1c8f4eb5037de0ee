"""Titrations of a full cell: GITT diffusion coefficients and HPPC pulse resistances, each per
pulse against the state of charge, per direction and temperature.

A titration run is the consecutive steps one written ``gitt`` or ``hppc`` step became (a sweep
that repeats it at three temperatures makes three runs). Its state of charge is counted from the
charge passed since the run began, over the cell's nominal capacity: from 100 % for a run that
discharges, 0 % for one that charges (charge the cell fully, or empty it, before).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from analysis.derived import Derived, Shared, note_once, result
from analysis.errors import AnalysisError
from analysis.gitt import gitt_diffusion, gitt_length_scale
from analysis.hppc import Pulse, pulse_readings, state_of_charge_percent
from analysis.materials import molar_properties, particle_radius_m
from analysis.run_data import CellExperiment

# pandas is imported where a frame is made: a run's printed summary with nothing to derive
# loads neither it nor pyarrow (tests/test_startup_imports.py)
if TYPE_CHECKING:
    import pandas as pd

M2_S_TO_CM2_S = 1e4
M2_TO_CM2 = 1e4
STEP = "Step Count / 1"
DISCHARGED = "Discharging Capacity / Ah"
CHARGED = "Charging Capacity / Ah"

#: What the two bases of a GITT diffusion coefficient mean, for the results' ``basis``.
ELECTRODE_BASIS = "electrode"
PARTICLE_BASIS = "particle"


def titration_runs(ce: CellExperiment, written_kind: str) -> list[list[dict[str, Any]]]:
    """Consecutive steps of one written step of ``written_kind``, in the order they ran."""
    runs: list[list[dict[str, Any]]] = []
    previous: dict[str, Any] | None = None
    for s in sorted(ce.steps, key=lambda s: s["step_count"]):
        mine = (s.get("params") or {}).get("written_kind") == written_kind
        if mine and previous is not None and previous["step_index"] == s["step_index"] and \
                (previous.get("params") or {}).get("written_kind") == written_kind:
            runs[-1].append(s)
        elif mine:
            runs.append([s])
        previous = s
    return runs


def _net_discharged(rows: pd.DataFrame) -> np.ndarray:
    return (rows[DISCHARGED] - rows[CHARGED]).to_numpy(dtype=np.float64)


def _temperatures(ce: CellExperiment) -> dict[int, float | None]:
    return {o.step_count: o.temperature_degC for o in ce.outcomes()}


# -- GITT ---------------------------------------------------------------------------------------

def gitt(ce: CellExperiment, out: Derived, figures: bool, shared: Shared) -> None:
    runs = titration_runs(ce, "gitt")
    if ce.kind != "full_cell" or not runs:
        return
    cathode = str(ce.info.get("cathode", ""))
    props = molar_properties(cathode)
    electrode_L = gitt_length_scale(ce.info["active_mass_kg"], props.molar_volume_m3_per_mol,
                                    props.molar_mass_kg_per_mol, ce.info["electrode_area_m2"])
    radius = particle_radius_m(cathode)
    particle_L = radius / 3 if radius else None
    one_c = ce.info.get("capacity_Ah")
    temperatures = _temperatures(ce)
    per_pulse: list[dict[str, Any]] = []
    for k, run in enumerate(runs, 1):
        pulses = _gitt_run(ce, run, electrode_L, one_c, temperatures)
        for p in pulses:
            if len(runs) > 1:
                p["conditions"]["sequence"] = k
            per_pulse.append(p)
        if pulses and one_c:
            _note_start(ce, out, run, "GITT", pulses[0]["conditions"]["direction"] == "discharge")
        _note_pulses_ran_out(ce, out, run, pulses)
    d = np.array([p["d_m2_s"] for p in per_pulse], dtype=float) * M2_S_TO_CM2_S
    finite = np.isfinite(d) & (d > 0)
    if not finite.any():
        return
    invalid = [p for p, ok in zip(per_pulse, finite, strict=True) if ok and p["validity"]]
    median_note = ""
    if invalid:
        median_note = (f"{len(invalid)} of {int(finite.sum())} pulses fail the validity check of"
                       f" the short-time GITT formula ({invalid[0]['validity']}): D is likely"
                       " too low; use shorter pulses")
        note_once(out, f"{ce.experiment}/{ce.cell}: GITT: {median_note}; those pulses' results"
                  " carry a note")
    # the figure the paper quotes: the median over every pulse, on the electrode basis
    out.results.append(result(ce, "diffusion_coefficient", float(np.median(d[finite])), "cm2/s",
                              note=median_note, statistic="median over pulses",
                              pulses=int(finite.sum()), basis=ELECTRODE_BASIS))
    bases = [(ELECTRODE_BASIS, electrode_L)] + \
        ([(PARTICLE_BASIS, particle_L)] if particle_L else [])
    for p in per_pulse:
        if not (math.isfinite(p["d_m2_s"]) and p["d_m2_s"] > 0):
            continue
        for basis, length in bases:
            value = p["d_m2_s"] * (length / electrode_L) ** 2 * M2_S_TO_CM2_S
            conditions = {k: v for k, v in p["conditions"].items() if v is not None}
            note = (f"short-time GITT formula not valid for this pulse ({p['validity']}):"
                    " D is likely too low") if p["validity"] else ""
            out.results.append(result(ce, "diffusion_coefficient", value, "cm2/s", note=note,
                                      basis=basis, length_um=round(length * 1e6, 4),
                                      **conditions))
    if particle_L is None:
        note_once(out, f"{ce.experiment}/{ce.cell}: diffusion coefficients on the electrode"
                  f" basis only: the material library gives {cathode} no particle radius")
    if figures:
        from analysis import plots_titration  # matplotlib: only to draw
        out.figures.append((ce.experiment, f"{ce.cell}: GITT diffusion coefficient",
                            plots_titration.gitt_figure(per_pulse, bases, electrode_L,
                                                        title=ce.cell)))


def _gitt_run(ce: CellExperiment, run: list[dict[str, Any]], length_m: float,
              one_c: float | None, temperatures: dict[int, float | None]
              ) -> list[dict[str, Any]]:
    # the rest before the titration is the first pulse's relaxed start
    before = [s for s in ce.steps if s["step_count"] == run[0]["step_count"] - 1
              and s["kind"] == "rest"]
    rows = ce.rows_of(before + run).sort_values("Test Time / s", kind="stable")
    if rows.empty:
        return []
    t = rows["Test Time / s"].to_numpy()
    table = gitt_diffusion(t, rows["Voltage / V"].to_numpy(), rows["Current / A"].to_numpy(),
                           length_m=length_m)
    net = _net_discharged(rows)
    steps = rows[STEP].to_numpy()
    pulses = [s for s in run if s["kind"] == "constant_current"]
    discharging = not pulses or float(pulses[0]["params"].get("current_A", -1.0)) < 0
    out = []
    for row in table.itertuples(index=False):
        end = int(np.searchsorted(t, row.start_s + row.tau_s, side="right")) - 1
        start = int(np.searchsorted(t, row.start_s, side="left"))
        soc = state_of_charge_percent(net[end] - net[0], one_c, discharging) if one_c else None
        temperature = temperatures.get(int(steps[start]))
        out.append({"d_m2_s": float(row.diffusion_m2_s), "validity": str(row.validity),
                    "conditions": {
            "pulse": int(row.pulse) + 1,
            "direction": "charge" if row.current_A > 0 else "discharge",
            "soc_percent": None if soc is None else round(soc, 1),
            "relaxed_voltage_V": round(float(row.e_rest_after_V), 4),
            "temperature_degC": None if temperature is None else round(temperature)}})
    return out


def _note_pulses_ran_out(ce: CellExperiment, out: Derived, run: list[dict[str, Any]],
                         pulses: list[dict[str, Any]]) -> None:
    """A GITT that ran every pulse ``max_pulses`` allowed and never reached its
    ``until_voltage`` covers less of the capacity than was asked: said, not left to be
    read off the pulses' states of charge."""
    currents = [s for s in run if s["kind"] == "constant_current"]
    if not currents or any(s.get("end_reason") == "voltage" for s in currents) or \
            any(s.get("end_reason") not in ("duration", "step_time") for s in run):
        return   # it reached its voltage, or it was cut short (a fault says so itself)
    until = currents[-1]["params"].get("until_voltage_V")
    direction = "charge" if float(currents[-1]["params"].get("current_A", 0.0)) > 0 \
        else "discharge"
    last = pulses[-1]["conditions"] if pulses else {}
    where = f" at {last['relaxed_voltage_V']:g} V relaxed" if "relaxed_voltage_V" in last \
        else ""
    span = f" (soc_percent up to {last['soc_percent']:g})" \
        if direction == "charge" and last.get("soc_percent") is not None else \
        f" (soc_percent down to {last['soc_percent']:g})" \
        if last.get("soc_percent") is not None else ""
    note_once(out, f"{ce.experiment}/{ce.cell}: the {direction} GITT (step"
              f" {run[0]['step_index']}) ran all its {len(currents)} pulses (max_pulses) and"
              f" ended{where}{span} without reaching its until_voltage"
              f"{'' if until is None else f' of {until:g} V'}: it covers less of the capacity"
              " than the protocol asks; raise max_pulses, or lengthen the pulses")


def _note_start(ce: CellExperiment, out: Derived, run: list[dict[str, Any]], what: str,
                discharging: bool) -> None:
    """A titration's state of charge counts from a full cell (one that discharges) or an
    empty one (one that charges). Where no step right before it brought the cell there, its
    ``soc_percent`` is only the charge moved since it began: said, since a number that looks
    like a state of charge would otherwise be read as one."""
    why = _not_at_start(ce.steps, run[0]["step_count"], discharging)
    if why is None:
        return
    direction, state = ("discharge", "a full") if discharging else ("charge", "an empty")
    note_once(out, f"{ce.experiment}/{ce.cell}: the {direction} {what} (step"
              f" {run[0]['step_index']}) counts its state of charge from {state} cell, but"
              f" {why}: its soc_percent is the share of the nominal capacity moved since it"
              " began, not the cell's state of charge (end the step right before it at the"
              f" {'charge' if discharging else 'discharge'} cut-off)")


#: Steps that move no charge, passed over looking for the step that set the cell's state.
_NO_CHARGE = ("rest", "set_temperature", "peis", "geis")


def _not_at_start(steps: list[dict[str, Any]], first: int, discharging: bool) -> str | None:
    """Why the cell was not full (``discharging``) or empty when step ``first`` began, or
    None when the step before it (rests, soaks and spectra aside) ended at a cut-off in that
    direction: a CC (a GITT's last pulse included) on its voltage, or a CV hold after one."""
    before = sorted((s for s in steps if s["step_count"] < first
                     and s["kind"] not in _NO_CHARGE),
                    key=lambda s: s["step_count"], reverse=True)
    if not before:   # an as-made cell is empty (its cathode lithiated, its anode not)
        return "no step of the experiment charged the cell before it" if discharging else None
    last = before[0]
    cc = before[1] if last["kind"] == "constant_voltage" and len(before) > 1 and \
        before[1]["step_index"] == last["step_index"] else last
    sign = float((cc.get("params") or {}).get("current_A", 0.0))
    if cc["kind"] == "constant_current" and cc.get("end_reason") == "voltage" and \
            (sign > 0 if discharging else sign < 0):
        return None
    return (f"the step before it (step {last['step_index']},"
            f" {(last.get('params') or {}).get('written_kind') or last['kind']}) ended"
            f" {'on ' + last['end_reason'] if last.get('end_reason') else 'without an end reason'},"
            " not at a"
            f" {'charge' if discharging else 'discharge'} cut-off")


# -- HPPC ---------------------------------------------------------------------------------------

def hppc(ce: CellExperiment, out: Derived, figures: bool, shared: Shared) -> None:
    runs = titration_runs(ce, "hppc")
    if not runs:
        return
    one_c = ce.info.get("capacity_Ah")
    if not one_c:
        raise AnalysisError("pulse resistances need the cell's nominal capacity for the state"
                            " of charge")
    area = ce.info.get("electrode_area_m2") or ce.info.get("area_m2")
    temperatures = _temperatures(ce)
    readings: list[dict[str, Any]] = []
    missing: list[str] = []
    for k, run in enumerate(runs, 1):
        mine = _hppc_run(ce, run, one_c, temperatures)
        for r in mine:
            if len(runs) > 1:
                r["conditions"]["sequence"] = k
            readings.append(r)
        if mine:
            soc_steps = [s for s in run if s["kind"] == "constant_current"]
            _note_start(ce, out, run, "HPPC", not soc_steps or
                        float(soc_steps[0]["params"].get("current_A", -1.0)) < 0)
    for r in readings:
        c = {k: v for k, v in r["conditions"].items() if v is not None}
        if r["ohm"] is None:
            missing.append(r["why"])
            out.results.append(result(ce, "pulse_resistance", None, "Ohm", note=r["why"], **c))
            continue
        out.results.append(result(ce, "pulse_resistance", r["ohm"], "Ohm", **c))
        if area:
            out.results.append(result(ce, "pulse_resistance", r["ohm"] * area * M2_TO_CM2,
                                      "Ohm cm2", area_specific=True, **c))
    if missing:
        # the advice fits a reading without a point near its time, not a pulse a limit ended
        advice = "; record pulses every 0.1 s for the 0.1 s value" \
            if any(why.startswith("no point recorded") for why in missing) else ""
        note_once(out, f"{ce.experiment}/{ce.cell}: {len(missing)} pulse resistances not"
                  f" derived ({missing[0]}{advice}): reported as null")
    if figures and readings:
        from analysis import plots_titration  # matplotlib: only to draw
        out.figures.append((ce.experiment, f"{ce.cell}: pulse resistance against state of"
                            " charge", plots_titration.hppc_figure(readings, title=ce.cell)))


def _hppc_run(ce: CellExperiment, run: list[dict[str, Any]], one_c: float,
              temperatures: dict[int, float | None]) -> list[dict[str, Any]]:
    rows = ce.rows_of(run).sort_values("Test Time / s", kind="stable")
    if rows.empty:
        return []
    net0 = float(_net_discharged(rows.iloc[:1])[0])
    by_step = {int(k): g for k, g in rows.groupby(STEP, sort=False)}
    soc_steps = [s for s in run if s["kind"] == "constant_current"]
    discharging = not soc_steps or float(soc_steps[0]["params"].get("current_A", -1.0)) < 0
    out: list[dict[str, Any]] = []
    level, level_soc, previous = 1, None, None
    for s in run:
        count = int(s["step_count"])
        pulse_rows = by_step.get(count)
        if s["kind"] == "constant_current":
            level, level_soc = level + 1, None
        elif s["kind"] == "chronopotentiometry" and pulse_rows is not None and \
                previous is not None and previous in by_step:
            if level_soc is None:
                moved = float(_net_discharged(pulse_rows.iloc[:1])[0]) - net0
                level_soc = round(state_of_charge_percent(moved, one_c, discharging), 1)
            current = float(s["params"].get("current_A", 0.0))
            pulse = Pulse(pulse_rows["Step Time / s"].to_numpy(),
                          pulse_rows["Voltage / V"].to_numpy(), current,
                          float(by_step[previous]["Voltage / V"].iloc[-1]),
                          float(s["params"].get("duration_s", math.inf)),
                          s.get("end_reason") == "voltage")
            temperature = temperatures.get(count)
            for reading in pulse_readings(pulse):
                out.append({"ohm": reading.resistance_ohm, "why": reading.why_none,
                            "conditions": {
                                "soc_percent": level_soc, "level": level,
                                "direction": "charge" if current > 0 else "discharge",
                                "time_s": round(reading.time_s, 3),
                                "at_pulse_end": reading.at_end,
                                "temperature_degC": None if temperature is None
                                else round(temperature)}})
        previous = count
    return out
