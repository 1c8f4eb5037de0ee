"""``cellseq report``: derive every result from a run's raw data and write the report.

A damaged run store is salvaged: the report is made of every row that can still be read, lists
what could not be (in its notes and under ``store_damage`` in ``summary.json``), and then
:class:`DamagedRunReport` is raised, so the command exits 2 naming the damage. A report that
cannot be written (a full or read-only disk) is an :class:`AnalysisError` saying so.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

from analysis.cell_cache import CELLS_DIR, CellCache
from analysis.derive import derive
from analysis.errors import AnalysisError
from analysis.outcome import run_outcome
from analysis.report_html import write_report
from analysis.run_data import RunData
from store.rows import StoreDamaged
from store.survey import damage_message, survey

REPORT_DIR = "report"


class DamagedRunReport(AnalysisError):
    """The report was written from a damaged store's intact rows; the message says what was
    left out."""

    def __init__(self, message: str, summary: Path, index: Path) -> None:
        super().__init__(message)
        self.summary, self.index = summary, index


class MadeReport(NamedTuple):
    summary: Path
    index: Path
    #: on analyses that could not be made and numbers left out (experiment, cell, reason)
    notes: list[str]
    #: the cells whose analysis was kept from before (``report/cells``), not made again
    reused: list[str]
    #: how many cells had data to analyse
    cells: int

    def reuse_line(self, during_run: bool) -> str | None:
        """What a command prints of the cells not analysed again (None if none was):
        ``during_run``, as a run ends; else as a report of a run that ended before."""
        if not self.reused:
            return None
        kept = self.summary.parent / CELLS_DIR
        if during_run:
            return (f"{len(self.reused)} of {self.cells} cells analysed while the run went on"
                    f" (kept in {kept})")
        return (f"{len(self.reused)} of {self.cells} cells' analyses taken from {kept}, made"
                " before from the same data with the same code (--fresh makes them again)")


def make_report(run_dir: Path, figures: bool = True, status: str | None = None,
                fresh: bool = False, settle: Callable[[], object] | None = None
                ) -> MadeReport:
    """Write ``RUN_DIR/report/summary.json`` and ``index.html``; return their paths, the
    notes, and which cells' analyses were kept from before. ``status``: the run's status when
    the caller knows better than the store (a run whose process died still says ``running``
    there). A cell's analysis kept in ``report/cells`` under its key now
    (:mod:`analysis.cell_cache`) is used, unless ``fresh``; every cell analysed is kept.
    ``settle``: stops what analysed cells beside the run that just ended, called once the
    report's modules are loaded and before anything kept is read."""
    with _collector_skipping_the_long_lived():
        return _make_report(Path(run_dir), figures, status, fresh, settle)


@contextlib.contextmanager
def _collector_skipping_the_long_lived() -> Iterator[None]:
    """The cyclic garbage collector spared from going through what lives as long as the
    report (the modules imported, the run's index, its results): in a full collection it
    went through all of them again and again, a few tenths of a second of the report's
    main process. Everything frozen is unfrozen at the end (unless a caller froze first)."""
    frozen_before = gc.get_freeze_count() > 0
    gc.freeze()
    try:
        yield
    finally:
        if not frozen_before:
            gc.unfreeze()


def _make_report(run_dir: Path, figures: bool, status: str | None, fresh: bool,
                 settle: Callable[[], object] | None) -> MadeReport:
    report_dir = run_dir / REPORT_DIR
    try:
        data = RunData(run_dir)
        kept = CellCache(data, report_dir, reuse=not fresh, settle=settle)
        derived = derive(run_dir, figures=figures, data=data, drawn=True, kept=kept)
    except StoreDamaged:   # not even the tables can be listed
        raise StoreDamaged(survey(run_dir).message(run_dir)) from None
    except OSError as exc:   # a figure drawn where the analysis ran, as the report will be
        raise AnalysisError(f"cannot write the report into {run_dir / REPORT_DIR}:"
                            f" {exc.strerror or exc}") from None
    damage = list(dict.fromkeys([*data.damage, *derived.damage]))
    notes = [*derived.notes, *(f"damaged run store, left out: {d}" for d in damage)]
    outcome = run_outcome(data, derived.results, status)
    meta: dict[str, Any] = {"seed": data.manifest.get("seed"),
                            "mode": data.manifest.get("mode"),
                            "protocol": data.manifest.get("protocol")}
    if derived.replicates:
        meta["replicates"] = derived.replicates
    if damage:
        meta["store_damage"] = damage
    gc.freeze()   # the results, kept to the end (see _collector_skipping_the_long_lived)
    try:
        summary, index = write_report(report_dir, data.campaign, derived.results,
                                      derived.figures, expected=data.expected or None,
                                      meta=meta, outcome=outcome, notes=notes)
    except OSError as exc:   # half a file is left of neither (core.atomic_write)
        raise AnalysisError(f"cannot write the report into {report_dir}:"
                            f" {exc.strerror or exc}") from None
    if damage:
        readable = [f"{len(derived.results)} results derived from the intact rows"]
        raise DamagedRunReport(damage_message(run_dir, damage, readable)
                               + f". Report written: {summary}, {index}", summary, index)
    return MadeReport(summary, index, derived.notes, derived.reused,
                      len(data.cells_with_points()))

