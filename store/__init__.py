"""The run store: one SQLite database per run, under both the sequencer and the analysis.

The sequencer writes it (:class:`RunStore`), the analysis, ``status`` and ``export`` read it,
and nothing here knows of instruments, protocols or the analysis. Its modules:
:mod:`store.schema` (tables, file names), :mod:`store.run_store` (writing and reading),
:mod:`store.rows` (every row decoded in one place, damage named), :mod:`store.scan` (reading
past damaged pages), :mod:`store.files` (opening, syncing), :mod:`store.survey` (what a damaged
store still holds) and :mod:`store.frames` (points as tables with Battery Data Format names;
imported on its own, as it needs pandas).
"""

from store.rows import StoreBroken, StoreDamaged, StoreError
from store.run_store import Chunk, RunStore
from store.schema import DB_NAME, SERIES_COLUMNS, SPECTRUM_COLUMNS, STORE_FILES

__all__ = ["DB_NAME", "SERIES_COLUMNS", "SPECTRUM_COLUMNS", "STORE_FILES", "Chunk", "RunStore",
           "StoreBroken", "StoreDamaged", "StoreError"]
