"""Which analysis applies to which data: the campaign's figures, derived from a run's raw data.

Each (experiment, cell) pair is analysed by what its cell is and what its steps were:

- impedance spectra (:mod:`analysis.derive_impedance`): the bulk resistance of every spectrum;
  for blocking cells the conductivity sigma = d / (S R) on one basis per cell and, across
  temperatures, the activation energy (sigma = sigma0 e^(-Ea/kT)); a DC polarisation's
  electronic conductivity; for cells with electrodes R_ohm and R_ct from a circuit fit; for
  Li|Li cells the interfacial resistance (over days, when the spectra span more than one);
- chronoamperometry between two spectra: the Bruce-Vincent transference number;
- galvanostatic half cycles on Li|Li cells: the overpotential per current density, and the
  critical current density where the cell shorted;
- Li||Cu cycling: the average coulombic efficiency (sum stripped / sum plated);
- LSV: the stability window, where |j| first exceeds 10 uA/cm^2 above the capacitive baseline;
- full cells (:mod:`analysis.derive_cycling`): the discharge capacity and coulombic efficiency
  of every cycle, per series (tag, C-rate, temperature), the capacity retention of each series;
  titrations (:mod:`analysis.derive_titration`): GITT diffusion coefficients and HPPC pulse
  resistances per pulse against the state of charge;
- replicates (:mod:`analysis.replicates`): cells of one role, mean and standard deviation.

Nothing here is given the answer: every number comes from the stored points.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

from analysis.cell_cache import CellCache, CellPart
from analysis.derive_cycling import cell_cycles, full_cell
from analysis.derive_impedance import dc_polarisation, has_geometry, impedance, transference
from analysis.derive_titration import gitt, hppc
from analysis.derived import Derived, Shared, result
from analysis.eis import arrhenius_fit
from analysis.errors import AnalysisError
from analysis.forked import can_fork, run_forked
from analysis.lsv import stability_window
from analysis.plating import average_ce
from analysis.render import FIGURE_DPI, cores, render_png, warm_up
from analysis.replicates import band_figures, replicate_summary
from analysis.run_data import CellExperiment, RunData
from analysis.symmetric import (
    critical_current_density,
    critical_current_density_from_steps,
    overpotential_by_current_density,
    shorted_step,
)

#: Coulombic efficiencies outside this band (percent) are not physical: null, with a note.
CE_PLAUSIBLE_PERCENT = (0.0, 150.0)

__all__ = ["ANALYSES", "Derived", "Shared", "derive"]


def derive(run_dir: Path, figures: bool = False, data: RunData | None = None,
           drawn: bool = False, kept: CellCache | None = None) -> Derived:
    """Every result of the run; ``data``: the run's :class:`RunData` where the caller has it
    already (read once, not twice). With ``drawn``, a figure may come back as its PNG (drawn
    by the worker that made it: the report's way), else each is a ``Figure``. With ``kept``
    (figures drawn, an intact store), a cell whose analysis is kept under its key now is not
    analysed again (:mod:`analysis.cell_cache`; listed in ``Derived.reused``), and each cell
    analysed here is kept."""
    data = data if data is not None else RunData(run_dir)
    out = Derived()
    if data.manifest.get("mode") == "imported":   # how the files were read (cellseq import)
        out.notes.extend(f"imported: {note}" for note in data.manifest.get("notes", []))
    # the plan's warnings (steps a cell's safety limit stops before their cut-off)
    out.notes.extend(f"warning: {w}" for w in data.manifest.get("warnings", []))
    cells = data.cells_with_points()
    if not (figures and drawn) or data.damage:
        kept = None   # only whole analyses (figures drawn) of an intact store are kept
    if figures:   # the run's own figures need them, whatever is kept
        _import_plotting(drawn)
    parts: dict[str, CellPart] = {}
    if kept is not None and kept.reuse:
        keys = kept.keys(cells)
        # what analysed cells beside the run that just ended went on taking them while this
        # process got here; it stops now, before anything kept is read
        kept.settle()
        parts = _kept_parts(kept, keys)
    elif kept is not None:   # nothing kept is taken: each cell's process takes its key
        kept.settle()
    todo = [cell for cell in cells if cell not in parts]
    parts.update(_analyse(data, todo, figures, drawn, kept))
    out.reused = [cell for cell in cells if cell not in todo]
    shared = Shared()
    for cell in cells:   # joined in the order one process would have made them
        part = parts.pop(cell)
        out.results.extend(part.derived.results)
        out.notes.extend(part.derived.notes)
        out.figures.extend(part.derived.figures)
        shared.sigma_by_exp.update(part.sigma)
        data.damage.extend(d for d in part.damage if d not in data.damage)
    out.replicates = replicate_summary(data.experiments, data.cells, out.results)
    if figures:
        _arrhenius_figures(data, out, shared.sigma_by_exp)
        out.figures.extend(band_figures(out.replicates))
    out.damage = data.damage
    return out


def _analyse(data: RunData, cells: list[str], figures: bool, drawn: bool,
             kept: CellCache | None) -> dict[str, CellPart]:
    """:func:`_cell_part` of each cell, in forked processes where processes fork (even on one
    core: each cell's memory goes with its process)."""
    if can_fork() and cells:
        return _derive_in_parallel(data, cells, figures, min(cores(), len(cells)), drawn,
                                   kept)
    return {cell: _cell_part(data, cell, figures, drawn, kept) for cell in cells}


def analyse_and_keep(data: RunData, cells: list[str], kept: CellCache,
                     more_cells: Callable[[], bool] | None = None) -> None:
    """Analyse ``cells`` one after another as the report would (figures drawn, in forked
    processes that each take cells until they have grown, where processes fork) and keep
    each in ``kept``: the report will take them from there. ``more_cells``: asked before
    each cell; once it says False, the cells not begun are left."""
    if can_fork():
        _derive_in_parallel(data, cells, True, 1, True, kept, more_cells)
    else:
        for cell in cells:
            if more_cells is not None and not more_cells():
                break
            _cell_part(data, cell, True, True, kept)


def _kept_parts(kept: CellCache, keys: dict[str, str | None]) -> dict[str, CellPart]:
    """The cells whose kept analysis holds for their data and the code now (``keys``)."""
    parts = {}
    for cell, key in keys.items():
        part = kept.load(cell, key) if key is not None else None
        if part is not None:
            parts[cell] = part
    return parts


def _derive_cell(data: RunData, cell: str, out: Derived, figures: bool, shared: Shared
                 ) -> None:
    """Every analysis of one cell's experiments, in order (a cell's cycles are numbered on
    from its earlier experiments')."""
    for ce in data.cell_experiments(only=cell):
        for analyse in ANALYSES:
            try:
                analyse(ce, out, figures, shared)
            except AnalysisError as exc:
                out.notes.append(f"{ce.experiment}/{ce.cell}: {analyse.__name__}: {exc}")
        try:   # the next experiment's cycles are numbered on from this one's
            cycles = cell_cycles(ce, shared)
        except AnalysisError:
            cycles = []
        if cycles:
            shared.cycles_before[ce.cell] = cycles[-1].number
        shared.cycles.pop((ce.experiment, ce.cell), None)


def _cell_part(data: RunData, cell: str, figures: bool, drawn: bool,
               kept: CellCache | None) -> CellPart:
    """One cell's analysis (its figures drawn to PNG with ``drawn``), kept in ``kept`` under
    the key of the data it was made from. (Were that data to grow while it is analysed, the
    key, taken before, would be that of less data than any later key: never taken.)"""
    key = kept.key(cell) if kept is not None else None
    known = len(data.damage)   # this process may have analysed other cells before this one
    part, shared = Derived(), Shared()
    _derive_cell(data, cell, part, figures, shared)
    if drawn:
        _draw_from(part, 0)   # the process may take another cell: its figures are let go
    done = CellPart(part, shared.sigma_by_exp, data.damage[known:])
    if kept is not None and key is not None and not done.damage:
        kept.save(cell, key, done)
    return done


#: A worker process analyses cell after cell until it has grown by this much since it was
#: forked (freed memory stays with the process), then ends and a fresh one takes the next
#: cell: a process's memory is bounded by this and by its largest cell, however many cells
#: the run has, and a run of many small cells does not pay a fork for each.
WORKER_GROWTH_LIMIT_MB = 64.0

#: The run a worker of :func:`_derive_in_parallel` analyses (inherited when it forks).
_WORKER_DATA: RunData | None = None


def _derive_in_parallel(data: RunData, cells: list[str], figures: bool, workers: int,
                        drawn: bool, kept: CellCache | None,
                        more_cells: Callable[[], bool] | None = None) -> dict[str, CellPart]:
    """:func:`_cell_part` of each cell in forked processes (:mod:`analysis.forked`; a
    process takes cells until it has grown by :data:`WORKER_GROWTH_LIMIT_MB`), ``workers`` at
    a time: each cell's analyses are its own, apart from what :class:`Shared` gathers for the
    run, which the caller joins. With ``drawn``, a cell's figures are drawn to PNG in its
    process."""
    global _WORKER_DATA
    _preload(data, figures, drawn)
    _WORKER_DATA = data
    try:
        # started longest first, so that no long cell starts last while the other cores have
        # nothing left to do
        return run_forked(partial(_cell_in_worker, figures=figures, drawn=drawn, kept=kept),
                          sorted(cells, key=lambda c: expected_cost(data, c)), workers,
                          what="cell", grow_limit_mb=WORKER_GROWTH_LIMIT_MB,
                          more_items=more_cells)
    finally:
        _WORKER_DATA = None


def _import_plotting(drawn: bool) -> None:
    """The plotting modules (matplotlib) imported, and with ``drawn`` a first figure drawn
    (:func:`~analysis.render.warm_up`): once in a process, and before the cells' processes
    fork, not once in each."""
    from analysis import plots, plots_series, plots_titration  # noqa: F401
    if drawn:
        warm_up()


def _preload(data: RunData, figures: bool, drawn: bool) -> None:
    """Import and read here, once, what the cells' processes would otherwise each import or
    read again: when figures are made, the plotting modules (matplotlib) and the tables
    (pandas) the figures' points are read into; the circuit fits' scipy (cells with
    electrodes, blocking cells), impedance.py (the bulk-arc fit of a blocking cell) and the
    material library (a cathode's molar mass and particle size, for a full cell's
    theoretical capacity and GITT: some 35 files). (Each process importing pandas for itself
    cost it 0.3 s and 50 MB, and as a process that grew takes no more cells, a fork.)"""
    if figures:
        import pandas  # noqa: F401
        _import_plotting(drawn)
    kinds = {info.get("kind") for info in data.cells.values()}
    if kinds & {"blocking", "full_cell"}:
        import scipy.optimize  # noqa: F401
    if "blocking" in kinds:
        from analysis.eis_fit import preload_circuit_fit
        preload_circuit_fit()
    if any(info.get("cathode") for info in data.cells.values()):
        from materials import builtin
        with contextlib.suppress(Exception):   # a cell's analysis reads it again, says why
            builtin()


def expected_cost(data: RunData, cell: str) -> tuple[int, int]:
    """A sort key, smallest first for the cell expected to take longest. An electrolyte
    between blocking electrodes comes first: its bulk-arc fits may take seconds, a cost no
    count of rows shows in advance; then the more steps, the longer (the steps are folded
    into cycles one by one, and more steps mean more points and longer traces to draw)."""
    blocking = data.cells.get(cell, {}).get("kind") == "blocking"
    return (0 if blocking else 1, -data.step_counts.get(cell, 0))


def _cell_in_worker(cell: str, figures: bool, drawn: bool, kept: CellCache | None
                    ) -> CellPart:
    data = _WORKER_DATA
    assert data is not None
    return _cell_part(data, cell, figures, drawn, kept)


def _draw_from(out: Derived, start: int) -> None:
    """The figures from ``start`` on drawn to PNG here, the ``Figure`` objects let go (a
    figure holds its data and artists: a few MB each)."""
    from matplotlib.figure import Figure

    todo = out.figures[start:]
    pngs = render_png([f for *_, f in todo], FIGURE_DPI, workers=1)
    out.figures[start:] = [(section, caption, png)
                           for (section, caption, _), png in zip(todo, pngs, strict=True)]
    for *_, fig in todo:   # a figure's artists refer to each other: free its arrays now, not
        if isinstance(fig, Figure):   # whenever the cyclic collector next runs
            fig.clear()


# -- galvanostatic cycling ---------------------------------------------------------------------

def _symmetric(ce: CellExperiment, out: Derived, figures: bool, _: object) -> None:
    if ce.kind != "symmetric_li":
        return
    steps = ce.steps_of("constant_current")
    if not steps or ("area_m2" not in ce.info and
                     not has_geometry(ce, out, "overpotential and critical current density")):
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
            out.results.append(result(
                ce, "overpotential", row.overpotential_V * 1e3, "mV", electrolyte,
                current_density_mA_cm2=round(row.current_density_mA_cm2, 3)))
    _critical_current_density(ce, out, steps, shorted, electrolyte, (t, v, i))
    if figures:
        hours = (t - t[0]) / 3600
        span = hours[-1] if len(hours) else 0.0
        windows = [(w0, min(w0 + 5, span)) for w0 in (0.0, span / 2, max(span - 5, 0.0))
                   if span > 10]
        from analysis import plots  # matplotlib: only to draw
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
        out.results.append(result(ce, "critical_current_density",
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
        out.results.append(result(ce, "coulombic_efficiency", ce_percent, "%", electrolyte,
                                   method="average"))
        return
    note = (f"average coulombic efficiency {ce_percent:.4g} % is outside"
            f" {CE_PLAUSIBLE_PERCENT[0]:g}-{CE_PLAUSIBLE_PERCENT[1]:g} %: not a physical value")
    out.results.append(result(ce, "coulombic_efficiency", None, "%", electrolyte,
                               note=note, method="average"))
    out.notes.append(f"{ce.experiment}/{ce.cell}: {note}; reported as null")


def _lsv(ce: CellExperiment, out: Derived, figures: bool, _: object) -> None:
    if ce.steps_of("lsv") and "area_m2" not in ce.info and "electrode_area_m2" not in ce.info:
        has_geometry(ce, out, "stability window")
        return
    for step in ce.steps_of("lsv"):
        rows = ce.rows_of([step])
        v = rows["Voltage / V"].to_numpy()
        i = rows["Current / A"].to_numpy()
        area = ce.info.get("electrode_area_m2", ce.info["area_m2"])
        window = stability_window(v, i, area)
        out.results.append(result(ce, "stability_window", window, "V",
                                   str(ce.info.get("electrolyte", ""))))
        if figures:
            from analysis import plots  # matplotlib: only to draw
            out.figures.append((ce.experiment, f"{ce.cell}: linear sweep",
                                plots.generic_xy([(ce.cell, v, i / area * 0.1)],
                                                 "E / V vs Li", "j / mA cm-2")))


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
    from analysis import plots  # matplotlib: only to draw

    for exp, series in by_exp.items():
        out.figures.append((exp, "Arrhenius plot of the ionic conductivity",
                            plots.arrhenius(series, fits[exp])))


Analysis = Callable[[CellExperiment, Derived, bool, Shared], None]
ANALYSES: tuple[Analysis, ...] = (impedance, transference, dc_polarisation, _symmetric, _li_cu,
                                  _lsv, full_cell, gitt, hppc)
