"""A cell's steps as :class:`~analysis.cycles.StepOutcome` records, from its stored data.

What each step passed comes from the points themselves: the cumulative counters' growth over
the step's rows. The growth between a step's last point and the next step's first (what the
channel passed after its last point before the output went off) belongs to the step that passed
it, the earlier one. A step's temperature is the chamber's set point from the last soak before
it, where the experiment soaked; else the mean of its measured temperature.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from analysis.cycles import Cycle, StepOutcome, cycles_of, ended_at_once
from analysis.errors import AnalysisError
from store.schema import SERIES_COLUMNS

# pandas is imported where a frame is made: a run's printed summary with nothing to derive
# loads neither it nor pyarrow (tests/test_startup_imports.py)
if TYPE_CHECKING:
    import pandas as pd

STEP = "Step Count / 1"
TIME = "Test Time / s"
TEMPERATURE = "Temperature T1 / degC"
COUNTERS = {"charge_Ah": "Charging Capacity / Ah", "discharge_Ah": "Discharging Capacity / Ah",
            "charge_Wh": "Charging Energy / Wh", "discharge_Wh": "Discharging Energy / Wh"}
KELVIN_OFFSET = 273.15


def step_outcomes(steps: list[dict[str, Any]], series: pd.DataFrame,
                  experiment: str = "") -> list[StepOutcome]:
    """One record per stored step (a step attempted twice, once interrupted, is one record),
    in the order the steps ran. ``steps`` are the run store's step rows of one cell and
    experiment, ``series`` that experiment's points (BDF names)."""
    return outcomes_of(steps, _passed_per_step(series), _mean_temperatures(series), experiment)


def outcomes_of(steps: list[dict[str, Any]], passed: dict[int, dict[str, float]],
                temperatures: dict[int, float], experiment: str = "") -> list[StepOutcome]:
    """:func:`step_outcomes` from what each step passed (step count -> counter -> amount, as
    :class:`PassedPerStep` folds it) and each step's mean measured temperature."""
    by_count: dict[int, dict[str, Any]] = {}
    for s in sorted(steps, key=lambda s: (s["step_count"], s.get("started_t") or 0.0)):
        by_count[int(s["step_count"])] = s      # the last attempt says how the step ended
    out = []
    set_point: float | None = None
    for count, s in by_count.items():
        params = s.get("params") or {}
        if s["kind"] == "set_temperature" and "target_K" in params:
            set_point = float(params["target_K"]) - KELVIN_OFFSET
        amounts = passed.get(count, {})
        measured = temperatures.get(count)
        # a constant-current technique's set current; an imported file's constant-current
        # segment (its vendor's technique name: "cycling", "GCPL") its median measured one
        current = params.get("current_A") if params.get("technique", "ConstantCurrent") == \
            "ConstantCurrent" or (params.get("imported") and s["kind"] == "constant_current") \
            else None
        out.append(StepOutcome(
            step_count=count, kind=str(s["kind"]),
            current_A=float(current) if isinstance(current, int | float) else None,
            tag=str(params.get("tag") or ""), written_kind=str(params.get("written_kind") or ""),
            temperature_degC=set_point if set_point is not None else measured,
            end_reason=str(s.get("end_reason") or ""), experiment=experiment,
            capacity_basis_Ah=_basis(params),
            ended_at_start=ended_at_once(params.get("ended_at_start")),
            **{name: amounts.get(name, 0.0) for name in COUNTERS}))
    return out


def _basis(params: dict[str, Any]) -> float | None:
    """The measured capacity a step's C-rate was taken of, as its row records it."""
    basis = params.get("capacity_basis_Ah")
    if isinstance(basis, int | float) and math.isfinite(basis) and basis > 0:
        return float(basis)
    return None


class PassedPerStep:
    """What each step passed, folded chunk by chunk from a cell's points in time order: a
    view of a growing run adds only its new chunks, and gets :func:`step_outcomes`' amounts.

    The growth up to a step's first point belongs to the step before it, as there."""

    def __init__(self) -> None:
        self.passed: dict[int, dict[str, float]] = {}
        self._last: dict[str, float] = {}
        self._step: int | None = None

    def add(self, step_count: int, counters: dict[str, np.ndarray]) -> None:
        """One chunk of one step: ``counters`` maps COUNTERS' keys to cumulative values."""
        for name, values in counters.items():
            if values.size == 0:
                continue
            if not np.all(np.isfinite(values)):
                raise AnalysisError(f"{COUNTERS[name]!r} has NaN or inf in step {step_count}")
            before = self._last.get(name, float(values[0]))
            growth = np.diff(values, prepend=before)
            if np.any(growth < 0):
                raise AnalysisError(f"{COUNTERS[name]!r} decreases in step {step_count};"
                                    " cumulative counters never go down")
            first_owner = self._step if self._step is not None else step_count
            mine = self.passed.setdefault(step_count, {})
            head = self.passed.setdefault(first_owner, {})
            head[name] = head.get(name, 0.0) + float(growth[0])
            mine[name] = mine.get(name, 0.0) + float(growth[1:].sum())
            self._last[name] = float(values[-1])
        self._step = step_count


class StepFold:
    """What each step passed and its mean measured temperature, folded from a cell's chunks
    in the order stored: :func:`step_outcomes`' inputs without every point in memory. A chunk
    comes as the store keeps it, its columns the rows of one array (``SERIES_COLUMNS``).
    Chunks are gathered into batches of about ``BATCH`` points and each batch is folded with
    array operations, as :func:`_passed_per_step` folds a whole series; each batch's sums per
    step are kept as arrays and added up per step once, at :meth:`finish` (in batch order,
    so to the same numbers as adding them batch by batch): a run polled a point at a time, or
    of thousands of steps, costs no Python per point or per step and batch. The growth up to a
    step's first point belongs to the step before it, as there."""

    BATCH = 65_536
    _ROWS: ClassVar[dict[str, int]] = {name: SERIES_COLUMNS.index(name)
                                       for name in ("temperature_C", *COUNTERS)}

    def __init__(self) -> None:
        self.passed: dict[int, dict[str, float]] = {}
        self.points = 0
        self._sums: dict[int, tuple[float, int]] = {}
        self._last: dict[str, float] = {}
        self._step: int | None = None
        self._pending: list[np.ndarray] = []
        self._pending_steps: list[int] = []
        self._pending_n = 0
        # per batch: the steps with points, the steps owning growth and their sums per
        # counter, the steps with a finite temperature and their sums and counts
        self._seen: list[np.ndarray] = []
        self._owners: list[np.ndarray] = []
        self._totals: dict[str, list[np.ndarray]] = {name: [] for name in COUNTERS}
        self._warm: list[np.ndarray] = []
        self._warm_totals: list[np.ndarray] = []
        self._warm_counts: list[np.ndarray] = []

    def add(self, step_count: int, block: np.ndarray) -> None:
        """One chunk of one step: ``block`` holds its ``SERIES_COLUMNS`` as rows."""
        n = block.shape[1]
        if n == 0:
            return
        self._pending.append(block)
        self._pending_steps.append(step_count)
        self._pending_n += n
        if self._pending_n >= self.BATCH:
            self._flush()

    def finish(self) -> StepFold:
        """Fold what is gathered; call once every chunk is added."""
        self._flush()
        if self._seen:
            for k in np.unique(np.concatenate(self._seen)).tolist():
                self.passed.setdefault(k, {})
        if self._owners:
            keys, where = np.unique(np.concatenate(self._owners), return_inverse=True)
            sums = [np.bincount(where, weights=np.concatenate(self._totals[name]),
                                minlength=keys.size).tolist() for name in COUNTERS]
            for k, *amounts in zip(keys.tolist(), *sums, strict=True):
                self.passed.setdefault(k, {}).update(zip(COUNTERS, amounts, strict=True))
        if self._warm:
            keys, where = np.unique(np.concatenate(self._warm), return_inverse=True)
            totals = np.bincount(where, weights=np.concatenate(self._warm_totals),
                                 minlength=keys.size)
            counts = np.bincount(where, weights=np.concatenate(self._warm_counts),
                                 minlength=keys.size).astype(np.int64)
            self._sums = dict(zip(keys.tolist(), zip(totals.tolist(), counts.tolist(),
                                                     strict=True), strict=True))
        return self

    def temperatures(self) -> dict[int, float]:
        """Each step's mean measured temperature (steps with no finite reading left out)."""
        return {k: total / count for k, (total, count) in self._sums.items() if count}

    def _flush(self) -> None:
        if not self._pending:
            return
        blocks, steps = self._pending, self._pending_steps
        self._pending, self._pending_steps, self._pending_n = [], [], 0
        data = np.concatenate(blocks, axis=1) if len(blocks) > 1 else blocks[0]
        step = np.repeat(np.asarray(steps, dtype=np.int64),
                         [block.shape[1] for block in blocks])
        self.points += step.size
        # the growth up to each point was passed by the step of the point before it
        owner = np.empty_like(step)
        owner[0] = self._step if self._step is not None else step[0]
        owner[1:] = step[:-1]
        owners, where = np.unique(owner, return_inverse=True)
        self._seen.append(np.unique(step))
        self._owners.append(owners)
        for name in COUNTERS:
            values = data[self._ROWS[name]]
            bad = np.flatnonzero(~np.isfinite(values))
            if bad.size:
                raise AnalysisError(f"{COUNTERS[name]!r} has NaN or inf in step"
                                    f" {int(step[bad[0]])}")
            growth = np.diff(values, prepend=self._last.get(name, float(values[0])))
            down = np.flatnonzero(growth < 0)
            if down.size:
                raise AnalysisError(f"{COUNTERS[name]!r} decreases in step"
                                    f" {int(step[down[0]])}; cumulative counters never go"
                                    " down")
            self._totals[name].append(np.bincount(where, weights=growth,
                                                  minlength=owners.size))
            self._last[name] = float(values[-1])
        temperature = data[self._ROWS["temperature_C"]]
        finite = np.isfinite(temperature)
        warm, at = np.unique(step[finite], return_inverse=True)
        self._warm.append(warm)
        self._warm_totals.append(np.bincount(at, weights=temperature[finite],
                                             minlength=warm.size))
        self._warm_counts.append(np.bincount(at, minlength=warm.size).astype(np.float64))
        self._step = int(step[-1])


def _passed_per_step(series: pd.DataFrame) -> dict[int, dict[str, float]]:
    import pandas as pd

    needed = (STEP, COUNTERS["charge_Ah"], COUNTERS["discharge_Ah"])
    if series.empty or any(c not in series.columns for c in needed):
        return {}
    ordered = series.sort_values(TIME, kind="stable") if TIME in series.columns else series
    step = ordered[STEP].to_numpy(dtype=np.float64)
    if not np.all(np.isfinite(step)):
        raise AnalysisError(f"{STEP!r} has NaN or inf")
    step = step.astype(np.int64)
    # the growth up to a step's first point was passed by the step before it
    owner = step.copy()
    owner[1:] = np.where(step[1:] != step[:-1], step[:-1], step[1:])
    out: dict[int, dict[str, float]] = {}
    for name, column in COUNTERS.items():
        if column not in series.columns:   # energies are not in every file
            continue
        values = ordered[column].to_numpy(dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            raise AnalysisError(f"{column!r} has NaN or inf, first at row {int(bad[0])}")
        growth = np.diff(values, prepend=values[:1])
        if np.any(growth < 0):
            row = int(np.flatnonzero(growth < 0)[0])
            raise AnalysisError(f"{column!r} decreases at row {row} (time order):"
                                f" {values[row - 1]!r} -> {values[row]!r}; cumulative counters"
                                " never go down")
        sums = pd.Series(growth).groupby(owner).sum()
        for count, value in sums.items():
            out.setdefault(int(count), {})[name] = float(value)
    return out


def _mean_temperatures(series: pd.DataFrame) -> dict[int, float]:
    if series.empty or TEMPERATURE not in series.columns:
        return {}
    means = series.groupby(STEP)[TEMPERATURE].mean()
    return {int(k): float(v) for k, v in means.items() if math.isfinite(v)}


def numbered_cycles(outcomes: list[StepOutcome], steps: list[dict[str, Any]], kind: str,
                    before: int) -> list[Cycle]:
    """One experiment's cycles of a cell from its step outcomes, numbered on from ``before``
    (the cycles of the cell's earlier experiments); an imported run's steps keep the cycle
    numbers their files give. The report and the dashboard both count cycles here."""
    # a Li||Cu cycle plates onto the copper (a discharge), then strips it
    leading = "discharge" if kind == "li_cu" else "charge"
    if any((s.get("params") or {}).get("imported") for s in steps):
        return cycles_of(outcomes, {int(s["step_count"]): int(s["cycle"]) for s in steps},
                          leading)
    return [Cycle(c.number + before, c.tag, c.steps, c.experiment, c.leading)
            for c in cycles_of(outcomes, leading=leading)]
