"""What a run's ``summary.json`` holds, derived without writing it or drawing a figure.

The summary a run prints when it ends, and its ``--check``, come from here when no report is
written (``--no-report``). It imports no plotting: matplotlib is the report's, and a run that
writes none should not load it (about half a second of a short dry run's start-up).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from analysis.derive import derive
from analysis.outcome import run_outcome
from analysis.report_html import compare
from analysis.run_data import RunData


def summary_of(run_dir: Path, status: str | None = None) -> dict[str, Any]:
    """What ``summary.json`` would hold (``campaign``, ``run``, ``results``, ``checks`` where
    expected values are declared, ``notes``), derived without writing anything or drawing a
    figure: for a run's printed summary and its checks when no report is written."""
    run_dir = Path(run_dir)
    data = RunData(run_dir)
    derived = derive(run_dir, figures=False, data=data)
    summary: dict[str, Any] = {"campaign": data.campaign,
                               "run": run_outcome(data, derived.results, status),
                               "results": [r.to_dict() for r in derived.results]}
    if data.expected:
        summary["checks"] = [c.to_dict() for c in compare(derived.results, data.expected)]
    summary["notes"] = derived.notes
    if derived.replicates:
        summary["replicates"] = derived.replicates
    return summary
