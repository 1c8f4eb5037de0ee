"""Full cells: capacity, coulombic efficiency and retention per cycle and per series.

Cycles and series are :mod:`analysis.cycles`' (a charge and the discharge after it, however the
loops nest; a series is the cycles of one tag, C-rate and temperature). Every result carries its
cycle's ``series`` (numbered from 1 in the order series first appear in the experiment), ``tag``
where the steps had one, ``c_rate`` and ``temperature_degC``; retention compares a series' last
cycle with its first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from analysis.cycle_steps import numbered_cycles
from analysis.cycles import Cycle, Series, series_of
from analysis.derived import Derived, Shared, note_once, result
from analysis.errors import AnalysisError
from analysis.materials import molar_properties
from analysis.run_data import CellExperiment

#: A series whose cycles span this many cycle numbers or more gets a capacity retention: a
#: long test, or check-ups spread over one (not three formation cycles).
RETENTION_MIN_CYCLES = 20
#: Below this a "C-rate" is a rest's noise, not a discharge.
MIN_C_RATE = 0.005
#: A cycle that discharged less than this fraction of the cell's nominal capacity had no real
#: discharge (it ended at once, or only a rest's noise was counted): its capacity is null.
MIN_DISCHARGE_FRACTION = 1e-3
#: Coulombic efficiencies outside this band (percent) are not physical: null, with a note.
CE_PLAUSIBLE_PERCENT = (0.0, 150.0)
#: Above this a plausible efficiency (percent) says the charge began on a cell that was not
#: empty: a note names the cycles (measurement noise and lithium inventory effects stay below).
CE_TOPPED_UP_PERCENT = 101.0
FARADAY_C_PER_MOL = 96485.33212


def cell_cycles(ce: CellExperiment, shared: Shared | None = None) -> list[Cycle]:
    """The cycles of one cell in one experiment, numbered on from its earlier experiments'
    (``shared.cycles_before``; imported runs keep the cycles their files give), made once per
    experiment where ``shared`` keeps them."""
    key = (ce.experiment, ce.cell)
    if shared is not None and key in shared.cycles:
        return shared.cycles[key]
    before = shared.cycles_before.get(ce.cell, 0) if shared is not None else 0
    cycles = numbered_cycles(ce.outcomes(), ce.steps, ce.kind, before)
    if shared is not None:
        shared.cycles[key] = cycles
    return cycles


#: A cell known by its nominal capacity alone (an imported commercial cell): its capacities
#: are the cell's own, in mAh (the charge in Ah over this divisor), not per gram of cathode.
PER_CELL_DIVISOR, PER_CELL_UNIT = 1e-3, "mAh"


def capacity_unit(mass_kg: float | None) -> tuple[float, str]:
    """(divisor of the charge in Ah, unit) of a full cell's capacities: per gram of cathode
    where its mass is known, else the whole cell's (known by its nominal capacity)."""
    return (mass_kg, "mAh/g") if mass_kg else (PER_CELL_DIVISOR, PER_CELL_UNIT)


def full_cell(ce: CellExperiment, out: Derived, figures: bool, shared: Shared) -> None:
    mass = ce.info.get("active_mass_kg")
    one_c = ce.info.get("capacity_Ah")
    if ce.kind == "full_cell" and not mass and not one_c and ce.steps_of("constant_current"):
        out.notes.append(f"{ce.experiment}/{ce.cell}: no capacities: the cathode's mass and"
                         " capacity are not known (cellseq import --nominal-capacity, or"
                         " --cathode, --loading, --cathode-diameter, --specific-capacity)")
    if ce.kind != "full_cell" or not (mass or one_c) or not ce.has_points:
        return
    divisor, unit = capacity_unit(mass)
    _note_ended_at_once(ce, out)
    cycles = [c for c in cell_cycles(ce, shared) if c.discharges]
    if not cycles:
        return
    series = series_of(cycles, one_c)
    series_of_cycle = {c.number: s for s in series for c in s.cycles}
    checks = CapacityChecks(ce, (one_c or 0.0) / divisor, out, unit, per_gram=bool(mass))
    capacity, efficiency, valid = {}, {}, {}
    for c in cycles:
        conditions = _conditions(c, series_of_cycle[c.number], one_c)
        q = c.discharge_Ah / divisor
        verdict = checks.judge(c, q, bool(one_c))
        valid[c.number] = verdict.capacity_problem is None
        if verdict.capacity_problem is None:
            capacity[c.number] = q
            out.results.append(result(ce, "discharge_capacity", q, unit, **conditions))
        else:
            out.results.append(result(ce, "discharge_capacity", None, unit,
                                      note=verdict.capacity_problem, **conditions))
        if c.coulombic_efficiency is None:
            continue   # nothing charged in this cycle (one that discharges first)
        if verdict.ce_percent is not None:
            efficiency[c.number] = verdict.ce_percent
        out.results.append(result(ce, "coulombic_efficiency", verdict.ce_percent, "%",
                                  note=verdict.ce_note, **conditions))
    checks.summarise()
    for s in series:
        _retention(ce, out, s, [c for c in s.cycles if valid[c.number]], one_c)
    if figures:
        _figures(ce, out, series, capacity, efficiency, divisor, unit)


def _note_ended_at_once(ce: CellExperiment, out: Derived) -> None:
    """Say which steps ended at once, their voltage cut-off met before any current, which
    therefore count as no half of a cycle: a discharge-first protocol on a fresh half cell
    must not show a cycle that discharged nothing, nor lose it without a word."""
    at_once = [s for s in ce.outcomes() if s.ended_at_start and (s.current_A or 0.0) != 0]
    if not at_once:
        return
    shown = ", ".join(f"{s.step_count} ({'charge' if (s.current_A or 0) > 0 else 'discharge'})"
                      for s in at_once[:8])
    more = f" and {len(at_once) - 8} more" if len(at_once) > 8 else ""
    many = len(at_once) > 1
    note_once(out, f"{ce.experiment}/{ce.cell}: step count{'s' if many else ''} {shown}{more}"
              " ended at once: the cell was already at the voltage cut-off when the step"
              " began (run.log: step_ended_at_start), so no current was applied and"
              f" {'they count' if many else 'it counts'} as no cycle")


def _conditions(c: Cycle, s: Series, one_c: float | None) -> dict[str, float | int | str]:
    conditions: dict[str, float | int | str] = {"cycle": c.number, "series": s.number}
    if s.key.tag:
        conditions["tag"] = s.key.tag
    rate = c.c_rate(one_c)
    if rate is not None and rate >= MIN_C_RATE:
        conditions["c_rate"] = rate
    if s.key.temperature_degC is not None:
        conditions["temperature_degC"] = s.key.temperature_degC
    return conditions


def _retention(ce: CellExperiment, out: Derived, s: Series, valid: list[Cycle],
               one_c: float | None) -> None:
    """Last over first of a series spanning at least RETENTION_MIN_CYCLES cycles."""
    if len(valid) < 2 or valid[-1].number - valid[0].number + 1 < RETENTION_MIN_CYCLES:
        return
    first, last = valid[0], valid[-1]
    conditions = _conditions(first, s, one_c)
    del conditions["cycle"]
    conditions.update(cycles=len(valid), first_cycle=first.number, last_cycle=last.number)
    out.results.append(result(ce, "capacity_retention",
                              100.0 * last.discharge_Ah / first.discharge_Ah, "%",
                              **conditions))


def _figures(ce: CellExperiment, out: Derived, series: list[Series],
             capacity: dict[int, float], efficiency: dict[int, float], divisor: float,
             unit: str) -> None:
    from analysis import plots, plots_series  # matplotlib: only to draw

    # only physical numbers are drawn: a left-out cycle is a gap, said in the notes
    traces = []
    for s in series:
        numbers = np.array([c.number for c in s.cycles], dtype=float)
        traces.append((str(s.key), numbers,
                       np.array([capacity.get(int(n), np.nan) for n in numbers]),
                       np.array([efficiency.get(int(n), np.nan) for n in numbers])))
    out.figures.append((ce.experiment, f"{ce.cell}: capacity and coulombic efficiency",
                        plots_series.capacity_and_ce_series(traces, title=ce.cell,
                                                            unit=unit)))
    curves = _discharge_curves(ce, series, divisor)
    if curves:
        out.figures.append((ce.experiment, f"{ce.cell}: voltage against capacity",
                            plots.voltage_vs_capacity(curves, title=ce.cell, unit=unit)))


def _discharge_curves(ce: CellExperiment, series: list[Series], divisor: float
                      ) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """The first discharge of each series, capacity counted from its start (Ah over
    ``divisor``: the cathode's mass, or :data:`PER_CELL_DIVISOR`)."""
    curves = []
    for s in series[:12]:
        first = s.cycles[0]
        counts = {st.step_count for st in first.discharges}
        rows = ce.rows_of([s for s in ce.steps if s["step_count"] in counts],
                          ("Discharging Capacity / Ah", "Voltage / V"))
        if len(rows) < 3:
            continue
        q = (rows["Discharging Capacity / Ah"] - rows["Discharging Capacity / Ah"].iloc[0]) \
            / divisor
        curves.append((str(s.key), q.to_numpy(), rows["Voltage / V"].to_numpy()))
    return curves


@dataclass(frozen=True)
class CycleVerdict:
    """:meth:`CapacityChecks.judge`'s answer for one cycle."""

    capacity_problem: str | None   # why its discharge capacity is reported as null
    ce_percent: float | None       # the coulombic efficiency reported, None where not physical
    ce_note: str                   # the note on its coulombic efficiency's record ("" none)


class CapacityChecks:
    """Whether a cycle's numbers are physical: a real discharge (not one that ended at once,
    nor a rest's noise counted as one), no more than the cathode's theoretical capacity, a
    coulombic efficiency within 0-150 %. Each failure is collected for one note per kind."""

    def __init__(self, ce: CellExperiment, nominal: float, out: Derived, unit: str = "mAh/g",
                 per_gram: bool = True) -> None:
        """``nominal`` in ``unit``: mAh/g of cathode, or (``per_gram`` false: a cell known by
        its nominal capacity) the cell's mAh, with no theoretical capacity to hold it to."""
        self.ce, self.nominal, self.out, self.unit = ce, nominal, out, unit
        self.theoretical = _theoretical_capacity_mAh_g(str(ce.info.get("cathode", ""))) \
            if per_gram else None
        self.no_discharge: list[str] = []
        self.above: list[str] = []
        self.bad_ce: list[str] = []
        self.topped_up: list[str] = []

    def capacity_problem(self, cycle: int, q: float) -> str | None:
        if q < MIN_DISCHARGE_FRACTION * self.nominal:
            self.no_discharge.append(f"{cycle} ({q:.3g} {self.unit})")
            return (f"no real discharge: {q:.3g} {self.unit} is under"
                    f" {MIN_DISCHARGE_FRACTION:.1%} of the nominal {self.nominal:.4g}"
                    f" {self.unit} (the discharge ended at once)")
        if self.theoretical is not None and q > self.theoretical:
            self.above.append(f"{cycle} ({q:.4g} mAh/g)")
            return (f"{q:.4g} mAh/g is above the theoretical capacity of"
                    f" {self.ce.info.get('cathode')} ({self.theoretical:.4g} mAh/g)")
        return None

    def ce_above_one(self, cycle: int, ce_percent: float) -> str:
        """Why a plausible efficiency above :data:`CE_TOPPED_UP_PERCENT` is not the cell's: kept
        (a lab may have meant it), with a note on the record and one for the experiment."""
        if ce_percent <= CE_TOPPED_UP_PERCENT:
            return ""
        self.topped_up.append(f"{cycle} ({ce_percent:.4g} %)")
        return (f"{ce_percent:.4g} %: more charge came out than went in, so the charge began"
                " on a cell that was not empty; not the cell's efficiency")

    def ce_problem(self, cycle: int, ce_percent: float) -> str:
        self.bad_ce.append(f"{cycle} ({ce_percent:.4g} %)")
        return (f"coulombic efficiency {ce_percent:.4g} % is outside"
                f" {CE_PLAUSIBLE_PERCENT[0]:g}-{CE_PLAUSIBLE_PERCENT[1]:g} %")

    def judge(self, c: Cycle, q: float, check_capacity: bool) -> CycleVerdict:
        """What the report makes of cycle ``c`` whose discharge is ``q`` (in the unit): the
        capacity's problem (``check_capacity``: a nominal capacity to hold it to), the
        coulombic efficiency it reports (None where it is not physical) and that record's
        note. ``cellseq export --cycles`` gives the same notes beside its raw numbers."""
        problem = self.capacity_problem(c.number, q) if check_capacity else None
        ratio = c.coulombic_efficiency
        if ratio is None:
            return CycleVerdict(problem, None, "")
        percent = 100 * ratio
        if problem is None and CE_PLAUSIBLE_PERCENT[0] <= percent <= CE_PLAUSIBLE_PERCENT[1]:
            return CycleVerdict(None, percent, self.ce_above_one(c.number, percent))
        return CycleVerdict(problem, None, problem or self.ce_problem(c.number, percent))

    def summarise(self) -> None:
        where = f"{self.ce.experiment}/{self.ce.cell}"
        for cycles, what in (
                (self.no_discharge, "no real discharge (under"
                 f" {MIN_DISCHARGE_FRACTION:.1%} of the nominal {self.nominal:.4g}"
                 f" {self.unit}):"
                 " discharge capacity and coulombic efficiency"),
                (self.above, "discharge capacity above the cathode's theoretical"
                 f" {self.theoretical or 0:.4g} mAh/g: discharge capacity and coulombic"
                 " efficiency"),
                (self.bad_ce, "coulombic efficiency outside"
                 f" {CE_PLAUSIBLE_PERCENT[0]:g}-{CE_PLAUSIBLE_PERCENT[1]:g} %: coulombic"
                 " efficiency")):
            if cycles:
                note_once(self.out, f"{where}: {_cycles_text(cycles)}: {what} reported as"
                          " null, left out of the plots and of the retention")
        if self.topped_up:
            note_once(self.out, f"{where}: {_cycles_text(self.topped_up)}: coulombic efficiency"
                      f" above {CE_TOPPED_UP_PERCENT:g} %: more charge came out than went in, so"
                      " the cycle's charge began on a cell that was not empty (a top-up charge"
                      " before the first discharge, a cell stored or started part-charged, a"
                      " charge cut short): kept, but it is not the cell's efficiency")


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
    if not math.isfinite(molar_mass_g) or molar_mass_g <= 0:
        return None
    return FARADAY_C_PER_MOL / 3.6 / molar_mass_g
