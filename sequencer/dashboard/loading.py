"""A :class:`~sequencer.dashboard.source.RunSource` made in the background while the server
already answers.

Why: the page, its script and its styles need nothing of the runs, but a source needs numpy,
the store and its checks loaded (a few tenths of a second). ``cellseq dashboard`` binds its
socket, prints its address and serves the page at once; the source is made meanwhile in a
thread, and a request for data waits for it (the web layer calls sources from worker threads,
so waiting blocks no other request). A source that cannot be made answers every request with
the reason, as a :class:`SourceError` the page shows.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sequencer.dashboard.source import (
    Cycles,
    Overview,
    Results,
    RunInfo,
    RunSource,
    SourceError,
    Spectrum,
)

if TYPE_CHECKING:
    from sequencer.controls import Action
    from sequencer.dashboard.envelope import SeriesView

log = logging.getLogger("cellseq.dashboard")


class LoadingSource:
    """The source ``make()`` returns, made in a thread started by :meth:`start`; every call
    waits until it is made."""

    def __init__(self, make: Callable[[], RunSource]) -> None:
        self._make = make
        self._ready = threading.Event()
        self._source: RunSource | None = None
        self._error: str | None = None
        self._thread = threading.Thread(target=self._load, name="cellseq-dashboard-load",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _load(self) -> None:
        try:
            self._source = self._make()
        except SourceError as exc:
            self._error = str(exc)
        except Exception as exc:   # anything else: said on the console and to every page
            self._error = f"the runs could not be opened: {type(exc).__name__}: {exc}"
            log.exception("the runs could not be opened")
        finally:
            self._ready.set()

    def _get(self) -> RunSource:
        self._ready.wait()
        if self._source is None:
            raise SourceError(self._error or "the runs could not be opened")
        return self._source

    def runs(self) -> list[RunInfo]:
        return self._get().runs()

    def overview(self, run_id: str) -> Overview:
        return self._get().overview(run_id)

    def version(self, run_id: str) -> tuple[object, ...]:
        return self._get().version(run_id)

    def events(self, run_id: str, after_id: int, cell: str | None = None,
               limit: int = 200) -> list[dict[str, Any]]:
        return self._get().events(run_id, after_id, cell, limit)

    def series(self, run_id: str, cell: str, t0_s: float | None, t1_s: float | None,
               width: int) -> SeriesView:
        return self._get().series(run_id, cell, t0_s, t1_s, width)

    def cycles(self, run_id: str, cell: str) -> Cycles:
        return self._get().cycles(run_id, cell)

    def spectra(self, run_id: str, cell: str, last: int) -> list[Spectrum]:
        return self._get().spectra(run_id, cell, last)

    def results(self, run_id: str) -> Results:
        return self._get().results(run_id)

    def figure(self, run_id: str, name: str) -> bytes:
        return self._get().figure(run_id, name)

    def control(self, run_id: str, action: Action, cell: str | None, who: str,
                address: str) -> str:
        return self._get().control(run_id, action, cell, who, address)

    def close(self) -> None:
        if self._thread.ident is not None:   # started: made, or failing to be
            self._ready.wait()
        if self._source is not None:
            self._source.close()
