"""Impedance spectra and DC polarisations of a cell experiment.

- Every spectrum: the bulk resistance (high-frequency intercept; from a fit of the bulk arc where
  the spectrum has not reached the real axis at its top, or null with a note where that arc is
  not resolved either: ``analysis.eis_bulk``). Its conditions tell spectra
  apart: the temperature; ``sequence`` (1, 2, ...) where a temperature comes back (a sweep's
  heating and cooling legs both pass 25 degC); and in an experiment that cycles, ``cycle`` (the
  cycles completed before the spectrum; 0 before the first) and ``time_s``.
- Blocking cells: the ionic conductivity, on one basis for the whole cell: ``bulk+grain
  boundary`` (the total) when any of its spectra shows a grain-boundary arc, else ``bulk``.
  Across temperatures, the activation energy. DC polarisation: the electronic conductivity.
- Cells with electrodes (full cells): R_ohm and R_ct per spectrum from a circuit fit, with its
  quality (``analysis.eis_cells``), against cycle and time.
- Li|Li and Li||Cu cells: the interfacial resistance over days; with a polarisation between two
  spectra, the transference number.

Nyquist legends name what tells the spectra apart: the cycle, the temperature (with its
sequence where it repeats) or the time.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from analysis.derive_cycling import cell_cycles
from analysis.derived import Derived, Shared, note_once, result
from analysis.eis import (
    arrhenius_fit,
    blocking_total_resistance,
    conductivity_S_per_m,
)
from analysis.eis_bulk import ARC_FIT, BulkReading, bulk_reading
from analysis.eis_cells import fit_cell_spectrum
from analysis.errors import AnalysisError
from analysis.interface import interfacial_resistance_over_time
from analysis.polarisation import electronic_conductivity
from analysis.run_data import CellExperiment, Spectrum
from analysis.transference import ca_currents, interfacial_resistance, transference_number

S_PER_M_TO_MS_PER_CM = 10.0
S_PER_M_TO_S_PER_CM = 0.01
TOTAL_BASIS = "bulk+grain boundary"
BULK_BASIS = "bulk"


def has_geometry(ce: CellExperiment, out: Derived, what: str) -> bool:
    """Whether the cell's thickness and area are known (an imported cell may lack them);
    if not, one note per experiment says what could not be derived."""
    if "thickness_m" in ce.info and "area_m2" in ce.info:
        return True
    note_once(out, f"{ce.experiment}/{ce.cell}: {what} not derived: the cell's thickness and"
              " area are not known (cellseq import --thickness and --area or --diameter)")
    return False


def _labels(ce: CellExperiment, shared: Shared
            ) -> tuple[list[dict[str, float | int]], list[str]]:
    """Each spectrum's conditions and its legend label (see the module docstring)."""
    temps = [round(sp.temperature_C) if math.isfinite(sp.temperature_C) else None
             for sp in ce.spectra]
    repeats = Counter(temps)
    ends: list[tuple[int, int]] = []
    if ce.steps_of("constant_current", "constant_voltage"):
        try:
            ends = [(max(s.step_count for s in c.steps), c.number)
                    for c in cell_cycles(ce, shared)]
        except AnalysisError:
            ends = []
    seen: Counter[int | None] = Counter()
    conditions, labels = [], []
    for sp, t in zip(ce.spectra, temps, strict=True):
        seen[t] += 1
        c: dict[str, float | int] = {}
        label = []
        if t is not None:
            c["temperature_degC"] = t
        if repeats[t] > 1 and t is not None:
            c["sequence"] = seen[t]
        if ends:
            done = [n for e, n in ends if e < sp.step_count]
            cycle = done[-1] if done else shared.cycles_before.get(ce.cell, 0)
            c["cycle"] = cycle
            c["time_s"] = round(sp.test_time_s, 1)
            label.append(f"after cycle {cycle}" if cycle else "before cycling")
            if len(repeats) > 1 and t is not None:
                label.append(f"{t:g} degC")
        elif t is not None:
            label.append(f"{t:g} degC" + (f" ({seen[t]})" if repeats[t] > 1 else ""))
        else:
            c["time_s"] = round(sp.test_time_s, 1)
            label.append(f"{sp.test_time_s / 3600:.1f} h")
        labels.append(", ".join(label))
        conditions.append(c)
    counts = Counter(labels)
    k: Counter[str] = Counter()
    for i, label in enumerate(labels):   # two spectra between the same cycles
        if counts[label] > 1:
            k[label] += 1
            labels[i] = f"{label} ({k[label]})"
    return conditions, labels


def impedance(ce: CellExperiment, out: Derived, figures: bool, shared: Shared) -> None:
    if not ce.spectra or (ce.kind != "blocking" and ce.steps_of("chronoamperometry")):
        return
    electrolyte = str(ce.info.get("electrolyte", ""))
    conditions, labels = _labels(ce, shared)
    readings = [bulk_reading(sp.frequency_Hz, sp.z_real_ohm, sp.z_imag_ohm,
                             fit_arc=ce.kind == "blocking") for sp in ce.spectra]
    r_bulks = [r.value_ohm for r in readings]
    if ce.kind == "blocking":
        readings = _grain_boundary_above(ce, labels, readings)
    fitted, missing = [], []
    for c, label, reading in zip(conditions, labels, readings, strict=True):
        out.results.append(result(ce, "bulk_resistance", reading.value_ohm, "Ohm", electrolyte,
                                  note=reading.note, **c))
        if reading.method == ARC_FIT:
            fitted.append(label)
        elif reading.value_ohm is None:
            missing.append(f"{label}: {reading.note}")
    if fitted:
        note_once(out, f"{ce.experiment}/{ce.cell}: bulk resistance from a fit of the bulk arc"
                  f" at {', '.join(fitted)}: the arc is not finished at the highest frequency,"
                  " so Re Z there is not R_b")
    if missing:
        note_once(out, f"{ce.experiment}/{ce.cell}: bulk resistance not derived (null) for"
                  f" {len(missing)} spectra; {missing[0]}")
    if ce.kind == "blocking" and has_geometry(ce, out, "ionic conductivity"):
        _conductivity(ce, out, shared, conditions, r_bulks, electrolyte)
    if ce.kind == "full_cell":
        _cell_fits(ce, out, figures, conditions, r_bulks)
    if ce.kind in ("symmetric_li", "li_cu") and len(ce.spectra) >= 3:
        _interface_over_time(ce, out, figures, electrolyte)
    if figures:
        traces = [(label, sp.frequency_Hz, sp.z_real_ohm, sp.z_imag_ohm)
                  for label, sp in zip(labels, ce.spectra, strict=True)]
        keep = list(range(len(traces))) if len(traces) <= 12 else \
            sorted({*range(0, len(traces), max(1, len(traces) // 8)), len(traces) - 1})
        # a blocking cell's capacitive spike dwarfs the part that matters: zoom to the intercept
        known = [r for r in r_bulks if r is not None]
        zoom = 8 * max(known) if ce.kind == "blocking" and known else None
        marks = {labels[i]: r for i in keep if (r := r_bulks[i]) is not None}
        from analysis import plots  # matplotlib: only to draw
        out.figures.append((ce.experiment, f"{ce.cell}: Nyquist plots",
                            plots.nyquist([traces[i] for i in keep], f"{ce.cell} ({electrolyte})",
                                          marks, max_ohm=zoom)))


def _totals(ce: CellExperiment, r_bulks: list[float | None]) -> list[float | None]:
    """Each spectrum's bulk plus grain-boundary resistance where its grain-boundary arc shows
    (beyond the bulk), else None."""
    totals = [blocking_total_resistance(sp.frequency_Hz, sp.z_real_ohm, sp.z_imag_ohm)
              for sp in ce.spectra]
    return [t if t is not None and (r_b is None or t > r_b) else None
            for t, r_b in zip(totals, r_bulks, strict=True)]


def _grain_boundary_above(ce: CellExperiment, labels: list[str],
                          readings: list[BulkReading]) -> list[BulkReading]:
    """The bulk readings with null (and a note) where the cell's grain-boundary arc, which
    shows in its other spectra, lies above the highest frequency: the intercept, or the one
    arc in the window, is then the bulk plus the grain boundary, not the bulk (a Li6PS5Cl
    pellet at 80 degC: about 40 % above it). The ionic conductivity takes it as the total."""
    totals = _totals(ce, [r.value_ohm for r in readings])
    shown = [label for label, t in zip(labels, totals, strict=True) if t is not None]
    if not shown:
        return readings
    return [BulkReading(None, "", "no grain-boundary arc shows in this spectrum, though it"
                        f" does at {', '.join(shown)}: it lies above the highest frequency"
                        " here, so Re Z there is the bulk plus the grain boundary (the total"
                        " the ionic conductivity takes), not the bulk")
            if t is None and r.value_ohm is not None else r
            for r, t in zip(readings, totals, strict=True)]


def _conductivity(ce: CellExperiment, out: Derived, shared: Shared,
                  conditions: list[dict[str, float | int]], r_bulks: list[float | None],
                  electrolyte: str) -> None:
    """One basis for the cell: the total where any spectrum shows a grain-boundary arc; a
    spectrum of such a cell without a visible arc counts its intercept as the total (the arcs
    have moved above the window), and a note says at which temperatures."""
    totals = _totals(ce, r_bulks)
    basis = TOTAL_BASIS if any(t is not None for t in totals) else BULK_BASIS
    without_arc = []
    for sp, c, r_b, total in zip(ce.spectra, conditions, r_bulks, totals, strict=True):
        if basis == TOTAL_BASIS and total is None:
            without_arc.append(f"{c.get('temperature_degC', '?')} degC")
        r = total if basis == TOTAL_BASIS and total is not None else r_b
        if r is None:   # the bulk resistance's null result says why
            note_once(out, f"{ce.experiment}/{ce.cell}: no ionic conductivity at"
                      f" {c.get('temperature_degC', '?')} degC: its bulk resistance is not"
                      " resolved")
            continue
        sigma = conductivity_S_per_m(r, ce.info["thickness_m"], ce.info["area_m2"]) \
            * S_PER_M_TO_MS_PER_CM
        out.results.append(result(ce, "ionic_conductivity", sigma, "mS/cm", electrolyte,
                                  basis=basis, **c))
        if "temperature_degC" in c:
            shared.sigma_by_exp.setdefault((ce.experiment, ce.cell), []).append(
                (sp.temperature_C, sigma))
    if without_arc:
        note_once(out, f"{ce.experiment}/{ce.cell}: no grain-boundary arc shows at"
                  f" {', '.join(without_arc)}: the intercept is taken as the total there (the"
                  " arcs lie above the highest frequency)")
    points = shared.sigma_by_exp.get((ce.experiment, ce.cell), [])
    if len({round(t) for t, _ in points}) >= 3:
        ea, _ = arrhenius_fit([t for t, _ in points], [s for _, s in points])
        out.results.append(result(ce, "activation_energy", ea, "eV", electrolyte, basis=basis))


def _cell_fits(ce: CellExperiment, out: Derived, figures: bool,
               conditions: list[dict[str, float | int]], r_bulks: list[float | None]) -> None:
    """R_ohm and R_ct of each spectrum, with the fit's circuit and misfit."""
    rows = []
    for sp, c, r_b in zip(ce.spectra, conditions, r_bulks, strict=True):
        try:
            fit = fit_cell_spectrum(sp.frequency_Hz, sp.z_real_ohm, sp.z_imag_ohm)
        except AnalysisError as exc:
            note_once(out, f"{ce.experiment}/{ce.cell}: circuit fit of the spectrum of step"
                      f" {sp.step_count}: {exc}")
            continue
        quality = {"circuit": fit.circuit, "fit_rmse_percent": round(100 * fit.rmse_rel, 3)}
        out.results.append(result(ce, "ohmic_resistance", fit.r_ohm, "Ohm", **c, **quality))
        out.results.append(result(ce, "charge_transfer_resistance", fit.r_ct_ohm, "Ohm", **c,
                                  **quality))
        rows.append((c.get("cycle"), sp.test_time_s, math.nan if r_b is None else r_b,
                     fit.r_ohm, fit.r_ct_ohm))
    if figures and len(rows) >= 2:
        cycled = all(r[0] is not None for r in rows)
        x = np.array([r[0] if cycled else r[1] / 3600 for r in rows], dtype=float)
        from analysis import plots  # matplotlib: only to draw
        out.figures.append((ce.experiment, f"{ce.cell}: resistances from its spectra",
                            plots.generic_xy(
                                [(name, x, np.array([r[k] for r in rows], dtype=float))
                                 for k, name in ((2, "R_b (intercept)"), (3, "R_ohm (fit)"),
                                                 (4, "R_ct (fit)"))],
                                "cycle" if cycled else "time / h", "R / Ω",
                                title=f"{ce.cell}: resistances per spectrum",
                                markers=True, integer_x=cycled)))


def _interface_over_time(ce: CellExperiment, out: Derived, figures: bool,
                         electrolyte: str) -> None:
    spectra: dict[str, list[np.ndarray]] = {
        "step_count": [], "test_time_s": [], "frequency_Hz": [], "z_real_ohm": [],
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
        out.results.append(result(ce, "interfacial_resistance", row.r_interface_ohm, "Ohm",
                                  electrolyte, day=round(float(row.day), 2)))
    if figures:
        at_rest = not ce.steps_of("constant_current", "constant_voltage")
        what = "at rest" if at_rest else "while cycling"
        from analysis import plots  # matplotlib: only to draw
        out.figures.append((ce.experiment, f"{ce.cell}: interfacial resistance {what}",
                            plots.generic_xy([(ce.cell, table["day"].to_numpy(),
                                               table["r_interface_ohm"].to_numpy())],
                                             "time / day", "R_int / Ohm",
                                             title=f"{ce.cell}: interfacial resistance {what}",
                                             markers=True)))


def transference(ce: CellExperiment, out: Derived, figures: bool, shared: Shared) -> None:
    holds = ce.steps_of("chronoamperometry")
    if ce.kind == "blocking" or not holds or len(ce.spectra) < 2:
        return
    hold = holds[0]
    before = [s for s in ce.spectra if s.step_count < hold["step_count"]]
    after = [s for s in ce.spectra if s.step_count > hold["step_count"]]
    if not before or not after:
        raise AnalysisError("a transference number needs a spectrum before and after the hold")
    _, r0 = _arc(before[-1])
    _, rs = _arc(after[0])
    rows = ce.rows_of([hold])
    t = rows["Step Time / s"].to_numpy()
    i = rows["Current / A"].to_numpy()
    dv = float(np.median(rows["Voltage / V"].to_numpy()))
    i0, iss = ca_currents(t, np.abs(i))
    electrolyte = str(ce.info.get("electrolyte", ""))
    t_plus = transference_number(i0, iss, abs(dv), r0, rs)
    out.results.append(result(ce, "transference_number", t_plus, "1", electrolyte))
    out.results.append(result(ce, "interfacial_resistance", r0, "Ohm", electrolyte,
                              stage="before polarisation"))
    out.results.append(result(ce, "interfacial_resistance", rs, "Ohm", electrolyte,
                              stage="after polarisation"))
    if figures:
        from analysis import plots  # matplotlib: only to draw
        out.figures.append((ce.experiment, f"{ce.cell}: current decay under {dv * 1e3:.0f} mV",
                            plots.ca_decay(t, np.abs(i), i0, iss)))


def _arc(sp: Spectrum) -> tuple[float, float]:
    return interfacial_resistance(sp.frequency_Hz, sp.z_real_ohm, sp.z_imag_ohm)


def dc_polarisation(ce: CellExperiment, out: Derived, figures: bool, shared: Shared) -> None:
    """sigma_e = I_ss d / (V S) of every potentiostatic hold on a blocking cell."""
    holds = ce.steps_of("chronoamperometry")
    if ce.kind != "blocking" or not holds or not has_geometry(ce, out, "electronic"
                                                              " conductivity"):
        return
    electrolyte = str(ce.info.get("electrolyte", ""))
    traces = []
    for k, hold in enumerate(holds, 1):
        rows = ce.rows_of([hold])
        t = rows["Step Time / s"].to_numpy()
        found = electronic_conductivity(t, rows["Current / A"].to_numpy(),
                                        rows["Voltage / V"].to_numpy(),
                                        ce.info["thickness_m"], ce.info["area_m2"])
        temperature = rows["Temperature T1 / degC"].mean()
        c: dict[str, float | int] = {"voltage_V": round(found.voltage_V, 4)}
        if math.isfinite(temperature):
            c["temperature_degC"] = round(float(temperature))
        if len(holds) > 1:
            c["sequence"] = k
        out.results.append(result(ce, "electronic_conductivity",
                                  found.sigma_S_per_m * S_PER_M_TO_S_PER_CM, "S/cm",
                                  electrolyte, **c))
        traces.append((f"{found.voltage_V * 1e3:.0f} mV", t, np.abs(rows["Current / A"])))
    if figures and traces:
        from analysis import plots  # matplotlib: only to draw
        out.figures.append((ce.experiment, f"{ce.cell}: DC polarisation current",
                            plots.generic_xy(traces, "time / s", "|I| / A",
                                             title=f"{ce.cell}: DC polarisation", logy=True)))
