"""``cellseq report``: derive every result from a run's raw data and write the report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from analysis.derive import derive
from analysis.outcome import run_outcome
from analysis.report_html import compare, write_report
from analysis.run_data import RunData

REPORT_DIR = "report"


def make_report(run_dir: Path, figures: bool = True, status: str | None = None
                ) -> tuple[Path, Path, list[str]]:
    """Write ``RUN_DIR/report/summary.json`` and ``index.html``; return their paths and the
    notes on analyses that could not be made and numbers left out (each names the experiment,
    cell and reason). ``status``: the run's status when the caller knows better than the
    store (a run whose process died still says ``running`` there)."""
    run_dir = Path(run_dir)
    data = RunData(run_dir)
    derived = derive(run_dir, figures=figures)
    outcome = run_outcome(data, derived.results, status)
    meta = {"seed": data.manifest.get("seed"), "mode": data.manifest.get("mode"),
            "protocol": data.manifest.get("protocol")}
    summary, index = write_report(run_dir / REPORT_DIR, data.campaign, derived.results,
                                  derived.figures, expected=data.expected or None, meta=meta,
                                  outcome=outcome, notes=derived.notes)
    return summary, index, derived.notes


def summary_of(run_dir: Path, status: str | None = None) -> dict[str, Any]:
    """What ``summary.json`` would hold (``campaign``, ``run``, ``results``, ``checks`` where
    expected values are declared, ``notes``), derived without writing anything or drawing a
    figure: for a run's printed summary and its checks when no report is written."""
    run_dir = Path(run_dir)
    data = RunData(run_dir)
    derived = derive(run_dir, figures=False)
    summary: dict[str, Any] = {"campaign": data.campaign,
                               "run": run_outcome(data, derived.results, status),
                               "results": [r.to_dict() for r in derived.results]}
    if data.expected:
        summary["checks"] = [c.to_dict() for c in compare(derived.results, data.expected)]
    summary["notes"] = derived.notes
    return summary
