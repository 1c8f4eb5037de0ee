"""Which local run directories the dashboard serves, found from their paths alone.

Light on purpose (no numpy, no store opened): ``cellseq dashboard`` checks its arguments with
it before it serves, and :class:`~sequencer.dashboard.local.LocalRuns` finds runs with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sequencer.dashboard.source import SourceError
from store.schema import DB_NAME


def is_run_dir(path: Path) -> bool:
    return (path / DB_NAME).is_file()


def check_run_dirs(run_dirs: Sequence[Path], runs_root: Path | None) -> None:
    """Refuse a directory given that holds no run, and a ``--runs`` that is not a folder."""
    for d in run_dirs:
        if not is_run_dir(d):
            raise SourceError(f"{d} is not a cellseq run directory (no {DB_NAME})")
    if runs_root is not None and not runs_root.is_dir():
        raise SourceError(f"--runs {runs_root}: not a folder")


def found_under(runs_root: Path) -> list[Path]:
    """``runs_root`` itself if it holds a run, and each of its subdirectories that does."""
    try:
        children = sorted(p for p in runs_root.iterdir() if p.is_dir())
    except OSError:
        return []
    return [p for p in (runs_root, *children) if is_run_dir(p)]
