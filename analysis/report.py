"""``cellseq report``: derive every result from a run's raw data and write the report."""

from __future__ import annotations

from pathlib import Path

from analysis.derive import derive
from analysis.report_html import write_report
from analysis.run_data import RunData

REPORT_DIR = "report"


def make_report(run_dir: Path, figures: bool = True) -> tuple[Path, Path, list[str]]:
    """Write ``RUN_DIR/report/summary.json`` and ``index.html``; return their paths and the
    notes on analyses that could not be made (each names the experiment, cell and reason)."""
    run_dir = Path(run_dir)
    data = RunData(run_dir)
    derived = derive(run_dir, figures=figures)
    meta = {"run_status": data.status, "seed": data.manifest.get("seed"),
            "mode": data.manifest.get("mode"), "protocol": data.manifest.get("protocol"),
            "notes": derived.notes}
    summary, index = write_report(run_dir / REPORT_DIR, data.campaign, derived.results,
                                  derived.figures, expected=data.expected or None, meta=meta)
    return summary, index, derived.notes
