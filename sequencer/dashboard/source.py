"""What the dashboard reads of runs and asks of them, whatever holds them.

The web layer (:mod:`sequencer.dashboard.app`) knows only :class:`RunSource`. Local run
directories are one source (:class:`~sequencer.dashboard.local.LocalRuns`); the lab's shared
database is another (:class:`~sequencer.dashboard.lab.LabRuns`), implementing the same methods.
Everything returned is plain data (dataclasses, numbers, lists), ready for JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from drivers.errors import CellseqError

if TYPE_CHECKING:   # the controls module loads trio and pydantic: not for start-up
    from sequencer.controls import Action
    from sequencer.dashboard.envelope import SeriesView


class SourceError(CellseqError):
    """A source cannot answer."""


class NotFound(SourceError):
    """No such run, cell or file among those served."""


class Refused(SourceError):
    """A control the run cannot take now (no process is running it)."""


@dataclass(frozen=True)
class RunInfo:
    id: str
    campaign: str | None
    status: str              # as `cellseq status` says: running, completed, interrupted, ...
    mode: str | None         # simulated or hardware
    speed: float | None      # a paced dry run's simulated seconds per wall second
    live: bool               # a process is running it: it takes controls
    started_utc: float | None


@dataclass(frozen=True)
class CellRow:
    cell: str
    state: str
    experiment: str | None
    step: int | None
    step_kind: str | None
    cycle: int | None
    t_s: float | None        # test time of the last values
    voltage_V: float | None
    current_A: float | None
    temperature_C: float | None
    fault: str | None


@dataclass(frozen=True)
class Overview:
    run: RunInfo
    cells: list[CellRow]
    last_event_id: int


@dataclass(frozen=True)
class CycleRow:
    """A cycle's capacities; a cycle still under way (``complete`` False) has them so far,
    and no coulombic efficiency (half a cycle's would be a wrong number)."""

    cycle: int
    complete: bool
    charge_Ah: float
    discharge_Ah: float
    coulombic_efficiency: float | None
    charge_mAh_g: float | None = None
    discharge_mAh_g: float | None = None


@dataclass(frozen=True)
class Cycles:
    """A cell's cycles. While the cell's points are still being read (a long run's first view
    reads its millions of points over several requests), ``complete`` is False and ``rows``
    is empty: a cycle counted from part of its points would be a wrong number."""

    rows: list[CycleRow]
    complete: bool = True
    points_read: int = 0
    points_total: int = 0


@dataclass(frozen=True)
class Spectrum:
    step_count: int
    experiment: str
    t_s: float
    temperature_C: float | None
    frequency_Hz: list[float]
    z_real_ohm: list[float]
    z_imag_ohm: list[float]


@dataclass(frozen=True)
class Results:
    """The report's results and checks when the run has a report; else the ``expected:``
    values the protocol declares, not yet compared."""

    has_report: bool
    results: list[dict[str, Any]] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    expected: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)
    outcome: dict[str, Any] | None = None


@dataclass(frozen=True)
class ControlReceipt:
    """A control taken: ``request`` is its id (the journal's ``control_request`` event of the
    run carries it with the run's answer); ``answer``, when the source has the answer at
    once (the lab's cancel), is it."""

    request: str
    answer: str | None = None


class RunSource(Protocol):
    """Runs as the dashboard sees them. Raise :class:`NotFound` for an unknown run, cell or
    file, :class:`Refused` for a control the run cannot take, :class:`SourceError` for
    anything else the user should read. Methods may block: the web layer calls them from
    worker threads."""

    def runs(self) -> list[RunInfo]: ...

    def overview(self, run_id: str) -> Overview: ...

    def version(self, run_id: str) -> tuple[object, ...]:
        """Changes whenever anything a page of the run shows changes (cheap: polled)."""
        ...

    def events(self, run_id: str, after_id: int, cell: str | None = None,
               limit: int = 200) -> list[dict[str, Any]]: ...

    def series(self, run_id: str, cell: str, t0_s: float | None, t1_s: float | None,
               width: int) -> SeriesView: ...

    def cycles(self, run_id: str, cell: str) -> Cycles: ...

    def spectra(self, run_id: str, cell: str, last: int) -> list[Spectrum]: ...

    def results(self, run_id: str) -> Results: ...

    def figure(self, run_id: str, name: str) -> bytes: ...

    def control(self, run_id: str, action: Action, cell: str | None, who: str,
                address: str) -> ControlReceipt:
        """Ask the run's process to pause, continue or stop."""
        ...

    def close(self) -> None: ...
