"""Every spectrum of a file analysed: bulk resistance, conductivity and the fit cross-check,
and the figure of a series (``cellseq analyze eis``).

A fit takes about a second or more per spectrum (a bounded multi-start least-squares fit), so a
series of tens of spectra would take minutes: the cross-check runs on a file's only spectrum
by default, and on every spectrum of a series only when asked (``fit=True``); the result says
which.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from analysis.eis import conductivity_S_per_m
from analysis.eis_bulk import bulk_reading
from analysis.errors import AnalysisError
from analysis.spectrum_files import SpectrumFile, SpectrumPart

S_PER_M_TO_MS_PER_CM = 10.0


@dataclass(frozen=True)
class Geometry:
    thickness_m: float
    area_m2: float


def analyse(series: SpectrumFile, geometry: Geometry | None, fit: bool | None,
            circuit: str | None = None, window: dict[str, float] | None = None
            ) -> dict[str, Any]:
    """The ``analyze eis`` result: ``spectra`` (one entry per spectrum, file order) and
    ``notes``. ``fit``: None runs the cross-check on a file of one spectrum only."""
    notes: list[str] = []
    run_fit = fit if fit is not None else len(series.spectra) == 1
    if fit is None and not run_fit:
        notes.append(f"fit cross-check not run: the file holds {len(series.spectra)} spectra"
                     " and a fit takes a second or more each; --fit runs it on every one")
    entries = [_entry(part, geometry, run_fit, circuit, window or {}) for part in series.spectra]
    failed = [e for e in entries if e["bulk_resistance_ohm"] is None]
    if failed:
        notes.append(f"no bulk resistance for spectra {', '.join(str(e['index']) for e in failed)}"
                     " (see their notes)")
    return {"file": series.source, "galvanostatic": series.galvanostatic,
            "read_as": list(series.notes), "spectra": entries, "notes": notes,
            **({"thickness_m": geometry.thickness_m, "area_m2": geometry.area_m2}
               if geometry else {})}


def _entry(part: SpectrumPart, geometry: Geometry | None, fit: bool, circuit: str | None,
           window: dict[str, float]) -> dict[str, Any]:
    sp = part.spectrum
    entry: dict[str, Any] = {
        "index": part.index, "points": len(sp), "f_max_hz": float(sp.frequency_Hz.max()),
        "f_min_hz": float(sp.frequency_Hz.min()), "time_s": part.time_s,
        "rows": list(part.rows), "bulk_resistance_ohm": None,
        "method": "high-frequency real-axis intercept"}
    if part.left_out:
        entry["left_out"] = part.left_out
    try:
        reading = bulk_reading(sp.frequency_Hz, sp.z_real_ohm, sp.z_imag_ohm)
        if reading.value_ohm is None:   # the bulk arc is cut off at the top of the window
            raise AnalysisError(reading.note)
        r_b = reading.value_ohm
        entry["method"] = reading.method
        if r_b <= 0:
            raise AnalysisError(f"the high-frequency intercept is {r_b:g} Ohm; a conductivity"
                                " needs a positive bulk resistance")
    except AnalysisError as exc:
        entry["note"] = str(exc)
        return entry
    entry["bulk_resistance_ohm"] = r_b
    if geometry is not None:
        sigma = conductivity_S_per_m(r_b, geometry.thickness_m, geometry.area_m2)
        entry["ionic_conductivity_mS_cm"] = sigma * S_PER_M_TO_MS_PER_CM
    entry["fit"] = _fit(part, r_b, circuit, window) if fit else None
    return entry


def _fit(part: SpectrumPart, r_b: float, circuit: str | None,
         window: dict[str, float]) -> dict[str, Any]:
    from analysis.eis_fit import fit_bulk_resistance

    try:
        f = fit_bulk_resistance(part.spectrum, circuit, **window)
    except AnalysisError as exc:
        if circuit or window:   # the user's choice does not suit the spectrum
            raise AnalysisError(f"spectrum {part.index}: --circuit/--f-min/--f-max: {exc}"
                                ) from None
        return {"error": str(exc)}
    notes = list(f.notes)
    if f.at_bounds:
        notes.append(f"parameters ended on a bound ({', '.join(f.at_bounds)}): the circuit may"
                     " not suit this spectrum; try another with --circuit")
    return {"circuit": f.circuit, "bulk_resistance_ohm": f.r_bulk_ohm,
            "relative_rmse": f.rmse_rel, "agreement": f.r_bulk_ohm / r_b - 1,
            "model_intercept_ohm": f.model_intercept_ohm,
            "model_intercept_agreement": f.model_intercept_ohm / r_b - 1,
            "parameters": f.parameters, "parameters_at_bounds": list(f.at_bounds),
            "notes": notes}


def plot_series(series: SpectrumFile, result: dict[str, Any], path: Path) -> None:
    """R_b (and sigma, where there is a geometry) against time, or index where the file has
    no time, beside the Nyquist plots coloured by index."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import cm
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    entries = result["spectra"]
    # fixed margins: a layout engine measures every tick label before drawing (about half
    # of the figure's time), for two panels whose labels are known in advance
    fig = Figure(figsize=(11, 4.5))
    fig.subplots_adjust(left=0.07, right=0.93, bottom=0.12, top=0.92, wspace=0.38)
    trend, nyquist = fig.subplots(1, 2)
    timed = all(e["time_s"] is not None for e in entries) and len(entries) > 1 and \
        len({e["time_s"] for e in entries}) == len(entries)
    t0 = entries[0]["time_s"] if timed else 0.0
    x = np.array([(e["time_s"] - t0) / 3600 if timed else e["index"] for e in entries],
                 dtype=float)
    r_b = np.array([e["bulk_resistance_ohm"] if e["bulk_resistance_ohm"] is not None
                    else math.nan for e in entries], dtype=float)
    trend.plot(x, r_b, "o-", color="tab:blue", label="R_b")
    trend.set_xlabel("time since the first spectrum / h" if timed else "spectrum")
    trend.set_ylabel("R_b / Ohm", color="tab:blue")
    if not timed:
        trend.xaxis.get_major_locator().set_params(integer=True)
    if any("ionic_conductivity_mS_cm" in e for e in entries):
        sigma = np.array([e.get("ionic_conductivity_mS_cm", math.nan) for e in entries],
                         dtype=float)
        twin = trend.twinx()
        twin.plot(x, sigma, "s--", color="tab:red", label="sigma")
        twin.set_ylabel("sigma / mS cm-1", color="tab:red")
    trend.set_title(f"{Path(series.source).name}: {len(entries)} spectra")
    norm = Normalize(1, max(len(entries), 2))
    colours = cm.viridis
    for part in series.spectra:
        sp = part.spectrum
        nyquist.plot(sp.z_real_ohm, -sp.z_imag_ohm, ".-", ms=3, lw=0.8,
                     color=colours(norm(part.index)))
    nyquist.set_xlabel("Re Z / Ohm")
    nyquist.set_ylabel("-Im Z / Ohm")
    nyquist.set_aspect("equal", adjustable="datalim")
    fig.colorbar(cm.ScalarMappable(norm=norm, cmap=colours), ax=nyquist, label="spectrum",
                 fraction=0.05, pad=0.03)
    try:
        fig.savefig(path, dpi=110)
    except OSError as exc:
        raise AnalysisError(f"--plot {path}: cannot be written: {exc.strerror or exc}") from None
