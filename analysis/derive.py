"""Which analysis applies to which data: the campaign's figures, derived from a run's raw data.

Each (experiment, cell) pair is analysed by what its cell is and what its steps were:

- impedance spectra: the bulk resistance of every spectrum; for blocking cells the conductivity
  sigma = d / (S R_b) and, across temperatures, the activation energy (sigma = sigma0 e^(-Ea/kT));
  for Li|Li cells the interfacial resistance (over days, when the spectra span more than one);
- chronoamperometry between two spectra: the Bruce-Vincent transference number;
- galvanostatic half cycles on Li|Li cells: the overpotential per current density, and the
  critical current density where the cell shorted;
- Li||Cu cycling: the average coulombic efficiency (sum stripped / sum plated);
- LSV: the stability window, where |j| first exceeds 10 uA/cm^2 above the capacitive baseline;
- full cells: the discharge capacity of every cycle (with its C-rate and temperature), the
  capacity retention of long runs, and GITT diffusion coefficients.

Nothing here is given the answer: every number comes from the stored points.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from analysis import plots
from analysis.cycling import capacity_retention, cycle_table
from analysis.eis import (
    arrhenius_fit,
    blocking_total_resistance,
    bulk_resistance,
    conductivity_S_per_m,
)
from analysis.errors import AnalysisError
from analysis.full_cell import cycle_c_rates
from analysis.gitt import gitt_diffusion
from analysis.interface import interfacial_resistance_over_time
from analysis.lsv import stability_window
from analysis.materials import molar_properties
from analysis.plating import average_ce
from analysis.results import Result
from analysis.run_data import CellExperiment, RunData
from analysis.symmetric import (
    critical_current_density,
    critical_current_density_from_steps,
    overpotential_by_current_density,
    shorted_step,
)
from analysis.transference import ca_currents, interfacial_resistance, transference_number

S_PER_M_TO_MS_PER_CM = 10.0
M2_S_TO_CM2_S = 1e4
#: A cycling run this long or longer gets a capacity-retention result.
RETENTION_MIN_CYCLES = 20
#: Below this a "C-rate" is a rest's noise, not a discharge.
MIN_C_RATE = 0.005
#: A cycle that discharged less than this fraction of the cell's nominal capacity had no real
#: discharge (it ended at once, or only a rest's noise was counted): its capacity is null.
MIN_DISCHARGE_FRACTION = 1e-3
#: Coulombic efficiencies outside this band (percent) are not physical: null, with a note.
CE_PLAUSIBLE_PERCENT = (0.0, 150.0)
FARADAY_C_PER_MOL = 96485.33212
DAY_S = 86400.0


@dataclass
class Derived:
    results: list[Result] = field(default_factory=list)
    figures: list[tuple[str, str, Figure]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    damage: list[str] = field(default_factory=list)   # what of a damaged store was not read


def derive(run_dir: Path, figures: bool = False) -> Derived:
    data = RunData(run_dir)
    out = Derived()
    if data.manifest.get("mode") == "imported":   # how the files were read (cellseq import)
        out.notes.extend(f"imported: {note}" for note in data.manifest.get("notes", []))
    sigma_by_exp: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for ce in data.cell_experiments():
        for analyse in ANALYSES:
            try:
                analyse(ce, out, figures, sigma_by_exp)
            except AnalysisError as exc:
                out.notes.append(f"{ce.experiment}/{ce.cell}: {analyse.__name__}: {exc}")
    if figures:
        _arrhenius_figures(data, out, sigma_by_exp)
    out.damage = data.damage
    return out


def _result(ce: CellExperiment, quantity: str, value: float | None, unit: str,
            material: str = "", note: str = "", **conditions: float | int | str) -> Result:
    return Result(ce.experiment, ce.cell, material or ce.material, quantity, value, unit,
                  conditions, note)


# -- impedance ---------------------------------------------------------------------------------

def _impedance(ce: CellExperiment, out: Derived, figures: bool,
               sigma_by_exp: dict[tuple[str, str], list[tuple[float, float]]]) -> None:
    if not ce.spectra or ce.steps_of("chronoamperometry"):
        return
    electrolyte = str(ce.info.get("electrolyte", ""))
    traces, r_bulks = [], {}
    for sp in ce.spectra:
        r_b = bulk_resistance(sp.frequency_Hz, sp.z_real_ohm, sp.z_imag_ohm)
        # a spectrum is labelled by its set temperature, where the run knows it
        t_c = round(sp.temperature_C) if math.isfinite(sp.temperature_C) else None
        # imported spectra may have no temperature: their start time tells them apart
        at = {"temperature_degC": t_c} if t_c is not None else \
            {"time_s": round(sp.test_time_s, 1)}
        out.results.append(_result(ce, "bulk_resistance", r_b, "Ohm", electrolyte, **at))
        if ce.kind == "blocking" and not _has_geometry(ce, out, "ionic conductivity"):
            pass
        elif ce.kind == "blocking":
            r_total, basis = _membrane_resistance(sp, r_b)
            sigma = conductivity_S_per_m(r_total, ce.info["thickness_m"], ce.info["area_m2"])
            out.results.append(_result(ce, "ionic_conductivity", sigma * S_PER_M_TO_MS_PER_CM,
                                       "mS/cm", electrolyte, basis=basis, **at))
            if t_c is not None:
                sigma_by_exp.setdefault((ce.experiment, ce.cell), []).append(
                    (sp.temperature_C, sigma * S_PER_M_TO_MS_PER_CM))
        label = f"{t_c:g} degC" if len(ce.spectra) < 12 and t_c is not None else \
            f"{sp.test_time_s / 3600:.1f} h"
        traces.append((label, sp.frequency_Hz, sp.z_real_ohm, sp.z_imag_ohm))
        r_bulks[label] = r_b
    points = sigma_by_exp.get((ce.experiment, ce.cell), [])
    if len({round(t) for t, _ in points}) >= 3:
        ea, _ = arrhenius_fit([t for t, _ in points], [s for _, s in points])
        out.results.append(_result(ce, "activation_energy", ea, "eV", electrolyte))
    if ce.kind in ("symmetric_li", "li_cu") and len(ce.spectra) >= 3:
        _interface_over_time(ce, out, figures, electrolyte)
    if figures:
        shown = traces if len(traces) <= 12 else traces[:: max(1, len(traces) // 8)]
        # a blocking cell's capacitive spike dwarfs the part that matters: zoom to the intercept
        zoom = 8 * max(r_bulks.values()) if ce.kind == "blocking" else None
        out.figures.append((ce.experiment, f"{ce.cell}: Nyquist plots",
                            plots.nyquist(shown, f"{ce.cell} ({electrolyte})",
                                          {t[0]: r_bulks[t[0]] for t in shown}, max_ohm=zoom)))


def _has_geometry(ce: CellExperiment, out: Derived, what: str) -> bool:
    """Whether the cell's thickness and area are known (an imported cell may lack them);
    if not, one note per experiment says what could not be derived."""
    if "thickness_m" in ce.info and "area_m2" in ce.info:
        return True
    note = (f"{ce.experiment}/{ce.cell}: {what} not derived: the cell's thickness and area"
            " are not known (cellseq import --thickness and --area or --diameter)")
    if note not in out.notes:
        out.notes.append(note)
    return False


def _membrane_resistance(sp, r_bulk: float) -> tuple[float, str]:
    """The membrane's total ionic resistance, on which its conductivity is quoted: the bulk
    intercept, or where the spectrum shows a grain-boundary arc before the blocking spike
    (ceramics), the spike extrapolated to the real axis."""
    total = blocking_total_resistance(sp.frequency_Hz, sp.z_real_ohm, sp.z_imag_ohm)
    if total is None or total <= r_bulk:
        return r_bulk, "bulk"
    return total, "bulk+grain boundary"


def _interface_over_time(ce: CellExperiment, out: Derived, figures: bool,
                         electrolyte: str) -> None:
    spectra = {"step_count": [], "test_time_s": [], "frequency_Hz": [], "z_real_ohm": [],
               "z_imag_ohm": []}
    for sp in ce.spectra:
        n = len(sp.frequency_Hz)
        spectra["step_count"].append(np.full(n, sp.step_count))
        spectra["test_time_s"].append(np.full(n, sp.test_time_s))
        spectra["frequency_Hz"].append(sp.frequency_Hz)
        spectra["z_real_ohm"].append(sp.z_real_ohm)
        spectra["z_imag_ohm"].append(sp.z_imag_ohm)
    table = interfacial_resistance_over_time({k: np.concatenate(v) for k, v in spectra.items()},
                                             on_error="skip")
    if table["day"].max() < 1:
        return
    for row in table.itertuples(index=False):
        out.results.append(_result(ce, "interfacial_resistance", row.r_interface_ohm, "Ohm",
                                   electrolyte, day=round(float(row.day), 2)))
    if figures:
        out.figures.append((ce.experiment, f"{ce.cell}: interfacial resistance at rest",
                            plots.generic_xy([(ce.cell, table["day"].to_numpy(),
                                               table["r_interface_ohm"].to_numpy())],
                                             "time / day", "R_int / Ohm", markers=True)))


def _transference(ce: CellExperiment, out: Derived, figures: bool, _: object) -> None:
    holds = ce.steps_of("chronoamperometry")
    if not holds or len(ce.spectra) < 2:
        return
    hold = holds[0]
    before = [s for s in ce.spectra if s.step_count < hold["step_count"]]
    after = [s for s in ce.spectra if s.step_count > hold["step_count"]]
    if not before or not after:
        raise AnalysisError("a transference number needs a spectrum before and after the hold")
    _, r0 = interfacial_resistance(before[-1].frequency_Hz, before[-1].z_real_ohm,
                                   before[-1].z_imag_ohm)
    _, rs = interfacial_resistance(after[0].frequency_Hz, after[0].z_real_ohm,
                                   after[0].z_imag_ohm)
    rows = ce.rows_of([hold])
    t = rows["Step Time / s"].to_numpy()
    i = rows["Current / A"].to_numpy()
    dv = float(np.median(rows["Voltage / V"].to_numpy()))
    i0, iss = ca_currents(t, np.abs(i))
    electrolyte = str(ce.info.get("electrolyte", ""))
    t_plus = transference_number(i0, iss, abs(dv), r0, rs)
    out.results.append(_result(ce, "transference_number", t_plus, "1", electrolyte))
    out.results.append(_result(ce, "interfacial_resistance", r0, "Ohm", electrolyte,
                               stage="before polarisation"))
    out.results.append(_result(ce, "interfacial_resistance", rs, "Ohm", electrolyte,
                               stage="after polarisation"))
    if figures:
        out.figures.append((ce.experiment, f"{ce.cell}: current decay under {dv * 1e3:.0f} mV",
                            plots.ca_decay(t, np.abs(i), i0, iss)))


# -- galvanostatic cycling ---------------------------------------------------------------------

def _symmetric(ce: CellExperiment, out: Derived, figures: bool, _: object) -> None:
    if ce.kind != "symmetric_li":
        return
    steps = ce.steps_of("constant_current")
    if not steps or ("area_m2" not in ce.info and
                     not _has_geometry(ce, out, "overpotential and critical current density")):
        return
    rows = ce.rows_of(steps)
    t = rows["Test Time / s"].to_numpy()
    v = rows["Voltage / V"].to_numpy()
    i = rows["Current / A"].to_numpy()
    area = ce.info["area_m2"]
    electrolyte = str(ce.info.get("electrolyte", ""))
    shorted = shorted_step(steps)
    # a shorted cell's |I| R_short is no overpotential: half cycles from the short on are out
    before = [s for s in steps if shorted is None or s["step_count"] < shorted["step_count"]]
    if before:
        kept = ce.rows_of(before)
        table = overpotential_by_current_density(kept["Test Time / s"].to_numpy(),
                                                 kept["Voltage / V"].to_numpy(),
                                                 kept["Current / A"].to_numpy(), area)
        for row in table.itertuples(index=False):
            out.results.append(_result(
                ce, "overpotential", row.overpotential_V * 1e3, "mV", electrolyte,
                current_density_mA_cm2=round(row.current_density_mA_cm2, 3)))
    _critical_current_density(ce, out, steps, shorted, electrolyte, (t, v, i))
    if figures:
        hours = (t - t[0]) / 3600
        span = hours[-1] if len(hours) else 0.0
        windows = [(w0, min(w0 + 5, span)) for w0 in (0.0, span / 2, max(span - 5, 0.0))
                   if span > 10]
        out.figures.append((ce.experiment, f"{ce.cell}: voltage during plating/stripping",
                            plots.voltage_vs_time(hours, v, windows, title=ce.cell)))


def _critical_current_density(ce: CellExperiment, out: Derived, steps: list[dict],
                              shorted: dict | None, electrolyte: str,
                              series: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    """The CCD of a ramp (half cycles at more than one current density) comes only from a
    short the run detected: the step that ended ``short``. A CCD ramp that ended otherwise says
    why in a note, and gives no value: "no short before the trip at 5 mA/cm2" is not
    "CCD = 5"."""
    area = ce.info["area_m2"]
    levels = {round(abs(float(s["params"].get("current_A", 0.0))) / area * 0.1, 6)
              for s in steps if s["params"].get("current_A")}
    if len(levels) < 2:
        return   # plating/stripping at one current density: a short there is no CCD
    where = f"{ce.experiment}/{ce.cell}: critical current density"
    if shorted is not None:
        out.results.append(_result(ce, "critical_current_density",
                                   critical_current_density_from_steps([shorted], area),
                                   "mA/cm2", electrolyte))
        return
    ramp = [s for s in steps if s["params"].get("written_kind") == "ccd_ramp"]
    if not ramp:
        return   # current steps that were no CCD ramp: no short was looked for a CCD
    last = max(ramp, key=lambda s: s["step_count"])
    j_last = abs(float(last["params"].get("current_A", 0.0))) / area * 0.1
    if last.get("end_reason") == "safety_limit":
        note = (f"{where}: no short detected before the trip (a safety limit ended the ramp at"
                f" {j_last:.3g} mA/cm2); no value reported")
    elif last.get("end_reason") == "duration":
        note = (f"{where}: no short detected up to the ramp's last level, {j_last:.3g}"
                " mA/cm2; the CCD is above it, no value reported")
    else:
        note = (f"{where}: no short detected; the ramp ended at {j_last:.3g} mA/cm2"
                f" ({last.get('end_reason') or 'unfinished'}); no value reported")
    collapse = critical_current_density(*series, area)
    if collapse is not None:
        note += (f"; the voltage looks collapsed at {collapse:.3g} mA/cm2 in the data, which"
                 " the run did not detect as a short")
    out.notes.append(note)


def _li_cu(ce: CellExperiment, out: Derived, figures: bool, _: object) -> None:
    if ce.kind != "li_cu" or not ce.steps_of("constant_current"):
        return
    rows = ce.rows_of(ce.steps_of("constant_current"))
    if rows["Cycle Count / 1"].max() < 1:
        return
    ce_percent = 100 * average_ce(rows)
    electrolyte = str(ce.info.get("electrolyte", ""))
    if CE_PLAUSIBLE_PERCENT[0] <= ce_percent <= CE_PLAUSIBLE_PERCENT[1]:
        out.results.append(_result(ce, "coulombic_efficiency", ce_percent, "%", electrolyte,
                                   method="average"))
        return
    note = (f"average coulombic efficiency {ce_percent:.4g} % is outside"
            f" {CE_PLAUSIBLE_PERCENT[0]:g}-{CE_PLAUSIBLE_PERCENT[1]:g} %: not a physical value")
    out.results.append(_result(ce, "coulombic_efficiency", None, "%", electrolyte,
                               note=note, method="average"))
    out.notes.append(f"{ce.experiment}/{ce.cell}: {note}; reported as null")


def _lsv(ce: CellExperiment, out: Derived, figures: bool, _: object) -> None:
    if ce.steps_of("lsv") and "area_m2" not in ce.info and "electrode_area_m2" not in ce.info:
        _has_geometry(ce, out, "stability window")
        return
    for step in ce.steps_of("lsv"):
        rows = ce.rows_of([step])
        v = rows["Voltage / V"].to_numpy()
        i = rows["Current / A"].to_numpy()
        area = ce.info.get("electrode_area_m2", ce.info["area_m2"])
        window = stability_window(v, i, area)
        out.results.append(_result(ce, "stability_window", window, "V",
                                   str(ce.info.get("electrolyte", ""))))
        if figures:
            out.figures.append((ce.experiment, f"{ce.cell}: linear sweep",
                                plots.generic_xy([(ce.cell, v, i / area * 0.1)],
                                                 "E / V vs Li", "j / mA cm-2")))


def _full_cell(ce: CellExperiment, out: Derived, figures: bool, _: object) -> None:
    mass = ce.info.get("active_mass_kg")
    if ce.kind == "full_cell" and not mass and ce.steps_of("constant_current"):
        out.notes.append(f"{ce.experiment}/{ce.cell}: no capacities: the cathode's mass and"
                         " capacity are not known (cellseq import --cathode, --loading,"
                         " --cathode-diameter, --specific-capacity)")
    if ce.kind != "full_cell" or not mass or ce.series.empty:
        return
    cycling = [s for s in ce.steps_of("constant_current", "constant_voltage", "rest")
               if s["params"].get("written_kind") != "gitt" and s["cycle"] > 0]
    series = ce.rows_of(cycling)
    if series.empty:
        return
    table = cycle_table(series, mass)
    one_c = ce.info["capacity_Ah"]
    # a cycle that never reached a discharge step (the cell faulted, the loop ended) and
    # discharged nothing of note has no discharge capacity to report, null or not
    discharged = {s["cycle"] for s in cycling if s["kind"] == "constant_current"
                  and float(s["params"].get("current_A", 0.0)) < 0}
    table = table[table["cycle"].isin(discharged) | (
        table["discharge_capacity_mAh_g"] >= MIN_DISCHARGE_FRACTION * one_c / mass)
    ].reset_index(drop=True)
    rates = cycle_c_rates(series, one_c).set_index("cycle")["c_rate"]
    current = series["Current / A"]
    cycle_min = current.groupby(series["Cycle Count / 1"]).transform("min")
    discharging = series[(current < 0) & (current < 0.2 * cycle_min)]   # not rest noise
    temperature = discharging.groupby("Cycle Count / 1")["Temperature T1 / degC"].mean()
    checks = _CapacityChecks(ce, one_c / mass, out)
    capacity = table["discharge_capacity_mAh_g"].to_numpy()
    ce_percent = 100 * table["coulombic_efficiency"].to_numpy()
    problems = [checks.capacity_problem(int(c), q)
                for c, q in zip(table["cycle"], capacity, strict=True)]
    capacity_ok = np.array([p is None for p in problems], dtype=bool)
    ce_ok = capacity_ok & (ce_percent >= CE_PLAUSIBLE_PERCENT[0]) & \
        (ce_percent <= CE_PLAUSIBLE_PERCENT[1])
    labels = []
    for k, row in enumerate(table.itertuples(index=False)):
        rate = float(rates.get(row.cycle, np.nan))
        conditions: dict[str, float | int] = {"cycle": int(row.cycle)}
        if np.isfinite(rate) and rate >= MIN_C_RATE:
            conditions["c_rate"] = _round_rate(rate)
        if np.isfinite(temperature.get(row.cycle, np.nan)):
            conditions["temperature_degC"] = round(float(temperature[row.cycle]))
        problem = problems[k]
        if problem is None:
            labels.append((conditions.get("c_rate"), conditions.get("temperature_degC")))
            out.results.append(_result(ce, "discharge_capacity", row.discharge_capacity_mAh_g,
                                       "mAh/g", **conditions))
        else:
            out.results.append(_result(ce, "discharge_capacity", None, "mAh/g", note=problem,
                                       **conditions))
        if not np.isfinite(row.coulombic_efficiency):
            continue   # nothing charged in this cycle (one that discharges first)
        if ce_ok[k]:
            out.results.append(_result(ce, "coulombic_efficiency",
                                       100 * row.coulombic_efficiency, "%", **conditions))
        else:
            note = problem or checks.ce_problem(int(row.cycle), 100 * row.coulombic_efficiency)
            out.results.append(_result(ce, "coulombic_efficiency", None, "%", note=note,
                                       **conditions))
    checks.summarise()
    valid = table[capacity_ok].reset_index(drop=True)
    block = _longest_block(labels)
    if block is not None:
        first, last = block
        part = valid.iloc[first:last + 1]
        rate, temp = labels[first]
        conditions = {"cycles": len(part), "first_cycle": int(part["cycle"].iloc[0]),
                      "last_cycle": int(part["cycle"].iloc[-1])}
        if rate is not None:
            conditions["c_rate"] = rate
        if temp is not None:
            conditions["temperature_degC"] = temp
        out.results.append(_result(ce, "capacity_retention", capacity_retention(part), "%",
                                   **conditions))
    if figures and len(table):
        # only physical numbers are drawn: a left-out cycle is a gap, said in the notes
        cycles = table["cycle"].to_numpy()
        out.figures.append((ce.experiment, f"{ce.cell}: capacity and coulombic efficiency",
                            plots.capacity_and_ce(cycles, np.where(capacity_ok, capacity, np.nan),
                                                  np.where(ce_ok, ce_percent, np.nan),
                                                  title=ce.cell)))
        out.figures.append((ce.experiment, f"{ce.cell}: voltage against capacity",
                            plots.voltage_vs_capacity(_discharge_curves(series, mass, rates),
                                                      title=ce.cell)))


class _CapacityChecks:
    """Whether a cycle's numbers are physical: a real discharge (not one that ended at once,
    nor a rest's noise counted as one), no more than the cathode's theoretical capacity, a
    coulombic efficiency within 0-150 %. Each failure is collected for one note per kind."""

    def __init__(self, ce: CellExperiment, nominal_mAh_g: float, out: Derived) -> None:
        self.ce, self.nominal, self.out = ce, nominal_mAh_g, out
        self.theoretical = _theoretical_capacity_mAh_g(str(ce.info.get("cathode", "")))
        self.no_discharge: list[str] = []
        self.above: list[str] = []
        self.bad_ce: list[str] = []

    def capacity_problem(self, cycle: int, q: float) -> str | None:
        if q < MIN_DISCHARGE_FRACTION * self.nominal:
            self.no_discharge.append(f"{cycle} ({q:.3g} mAh/g)")
            return (f"no real discharge: {q:.3g} mAh/g is under {MIN_DISCHARGE_FRACTION:.1%}"
                    f" of the nominal {self.nominal:.4g} mAh/g (the discharge ended at once)")
        if self.theoretical is not None and q > self.theoretical:
            self.above.append(f"{cycle} ({q:.4g} mAh/g)")
            return (f"{q:.4g} mAh/g is above the theoretical capacity of"
                    f" {self.ce.info.get('cathode')} ({self.theoretical:.4g} mAh/g)")
        return None

    def ce_problem(self, cycle: int, ce_percent: float) -> str:
        self.bad_ce.append(f"{cycle} ({ce_percent:.4g} %)")
        return (f"coulombic efficiency {ce_percent:.4g} % is outside"
                f" {CE_PLAUSIBLE_PERCENT[0]:g}-{CE_PLAUSIBLE_PERCENT[1]:g} %")

    def summarise(self) -> None:
        where = f"{self.ce.experiment}/{self.ce.cell}"
        for cycles, what in (
                (self.no_discharge, "no real discharge (under"
                 f" {MIN_DISCHARGE_FRACTION:.1%} of the nominal {self.nominal:.4g} mAh/g):"
                 " discharge capacity and coulombic efficiency"),
                (self.above, "discharge capacity above the cathode's theoretical"
                 f" {self.theoretical or 0:.4g} mAh/g: discharge capacity and coulombic"
                 " efficiency"),
                (self.bad_ce, "coulombic efficiency outside"
                 f" {CE_PLAUSIBLE_PERCENT[0]:g}-{CE_PLAUSIBLE_PERCENT[1]:g} %: coulombic"
                 " efficiency")):
            if cycles:
                self.out.notes.append(f"{where}: {_cycles_text(cycles)}: {what} reported as"
                                      " null, left out of the plots and of the retention")


def _cycles_text(cycles: list[str]) -> str:
    shown = ", ".join(cycles[:8])
    more = f" and {len(cycles) - 8} more" if len(cycles) > 8 else ""
    return f"cycle{'s' if len(cycles) > 1 else ''} {shown}{more}"


def _theoretical_capacity_mAh_g(cathode: str) -> float | None:
    """One Li per formula unit: F / (3.6 M) mAh/g, M in g/mol (NCM811: 275 mAh/g; LFP: 170);
    None for a cathode whose molar mass the analysis does not know."""
    try:
        molar_mass_g = molar_properties(cathode).molar_mass_kg_per_mol * 1e3
    except AnalysisError:
        return None
    return FARADAY_C_PER_MOL / 3.6 / molar_mass_g


def _round_rate(rate: float) -> float:
    """Set points are round numbers: 0.0999 -> 0.1, 2.003 -> 2."""
    return float(f"{rate:.2g}")


def _longest_block(labels: list[tuple[object, object]]) -> tuple[int, int] | None:
    """The longest run of consecutive cycles at one C-rate and temperature: the long-cycling
    part of a test whose retention the paper quotes (not across formation or rate steps)."""
    best, start = None, 0
    for k in range(1, len(labels) + 1):
        if k == len(labels) or labels[k] != labels[start]:
            if k - start >= RETENTION_MIN_CYCLES and (best is None or
                                                      k - start > best[1] - best[0] + 1):
                best = (start, k - 1)
            start = k
    return best


def _discharge_curves(series, mass: float, rates) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """The first discharge at each C-rate (and temperature), capacity counted from its start."""
    curves, seen = [], set()
    for cycle, rows in series.groupby("Cycle Count / 1"):
        current = rows["Current / A"]
        dis = rows[current < 0.2 * current.min()]   # the discharge itself, not rest noise
        rate = rates.get(cycle, np.nan)
        temp = float(dis["Temperature T1 / degC"].mean()) if len(dis) else math.nan
        key = (round(float(rate), 2) if np.isfinite(rate) else None,
               round(temp) if math.isfinite(temp) else None)
        if cycle < 1 or len(dis) < 3 or key in seen:
            continue
        seen.add(key)
        q = (dis["Discharging Capacity / Ah"] - dis["Discharging Capacity / Ah"].iloc[0]) / mass
        curves.append((f"{key[0]:g}C, {key[1]} degC" if key[0] else f"cycle {cycle}",
                       q.to_numpy(), dis["Voltage / V"].to_numpy()))
    return curves[:12]


def _gitt(ce: CellExperiment, out: Derived, figures: bool, _: object) -> None:
    gitt_steps = [s for s in ce.steps if s["params"].get("written_kind") == "gitt"]
    if ce.kind != "full_cell" or not gitt_steps:
        return
    pulses = [s for s in gitt_steps if s["kind"] == "constant_current"]
    rests = [s for s in gitt_steps if s["kind"] == "rest"]
    props = molar_properties(str(ce.info.get("cathode", "")))
    rows = ce.rows_of(sorted(pulses + rests, key=lambda s: s["step_count"]))
    table = gitt_diffusion(rows["Test Time / s"].to_numpy(), rows["Voltage / V"].to_numpy(),
                           rows["Current / A"].to_numpy(),
                           active_mass_kg=ce.info["active_mass_kg"],
                           molar_volume_m3_per_mol=props.molar_volume_m3_per_mol,
                           molar_mass_kg_per_mol=props.molar_mass_kg_per_mol,
                           area_m2=ce.info["electrode_area_m2"])
    d = table["diffusion_m2_s"].to_numpy() * M2_S_TO_CM2_S
    d = d[np.isfinite(d) & (d > 0)]
    if d.size:
        out.results.append(_result(ce, "diffusion_coefficient", float(np.median(d)), "cm2/s",
                                   statistic="median over pulses", pulses=int(d.size)))
        if figures:
            out.figures.append((ce.experiment, f"{ce.cell}: GITT diffusion coefficient",
                                plots.generic_xy([(ce.cell, np.arange(1, d.size + 1), d)],
                                                 "pulse", "D / cm2 s-1", markers=True,
                                                 logy=True, integer_x=True)))


def _arrhenius_figures(data: RunData, out: Derived,
                       sigma_by_exp: dict[tuple[str, str], list[tuple[float, float]]]) -> None:
    by_exp: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    fits: dict[str, dict[str, tuple[float, float]]] = {}
    for (exp, cell), points in sigma_by_exp.items():
        if len({round(t) for t, _ in points}) < 3:
            continue
        t = np.array([p[0] for p in points])
        s = np.array([p[1] for p in points])
        label = f"{cell} ({data.cells.get(cell, {}).get('electrolyte', '')})"
        by_exp.setdefault(exp, {})[label] = (t, s)
        fits.setdefault(exp, {})[label] = arrhenius_fit(t, s)
    for exp, series in by_exp.items():
        out.figures.append((exp, "Arrhenius plot of the ionic conductivity",
                            plots.arrhenius(series, fits[exp])))


Analysis = Callable[[CellExperiment, Derived, bool, dict], None]
ANALYSES: tuple[Analysis, ...] = (_impedance, _transference, _symmetric, _li_cu, _lsv,
                                  _full_cell, _gitt)
