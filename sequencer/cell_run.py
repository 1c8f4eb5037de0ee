"""A cell's place in a run, and the errors that stop a cell or a resume."""

from __future__ import annotations

from dataclasses import dataclass, field

from drivers.errors import CellseqError
from drivers.interfaces import Channel, MultiChannelInstrument
from protocols.cells import Cell
from sequencer.counters import Counters
from sequencer.steps_run import StepsRun


@dataclass(frozen=True)
class Mark:
    """The last point a step stored: its test time and step time."""

    t: float
    step_t: float


class CellFault(CellseqError):
    """A cell's run stops: a safety limit tripped or its instrument failed.

    ``prevented``: the step the fault came before, as (experiment, step index, kind), when it
    came before that step started (a C-rate reference that measured nothing, a chamber that
    could not be restored): the cell's state, ``run.log`` and the summary name that step, not
    the last one the cell ran."""

    def __init__(self, message: str, prevented: tuple[str, int, str] | None = None) -> None:
        super().__init__(message)
        self.prevented = prevented


class ResumeRefused(CellseqError):
    """A resumed run does not start: a cell is not where the run left it."""


@dataclass
class CellRun:
    """A cell's position in the campaign and its counters: what a checkpoint holds."""

    cell: Cell
    instrument: MultiChannelInstrument
    channel_index: int
    channel: Channel = field(init=False)   # known once the instrument is open
    step_count: int = 0
    cycle: int = 0
    counters: Counters = field(default_factory=Counters)
    state: str = "pending"
    fault: str | None = None
    last: dict[str, float] = field(default_factory=dict)
    #: what the steps run on the channel so far leave for a loop's ``until`` and a measured
    #: C-rate to look at (not the steps themselves: it does not grow with the run)
    steps_run: StepsRun = field(default_factory=StepsRun)
    #: the run store's row of the step the channel runs or ran last
    step_id: int | None = None
    #: the chamber's set point from the experiment's last soak (degC), None before any
    set_point_degC: float | None = None
    #: what the run store's row of the step about to start records besides its technique
    #: (the measured capacity its C-rates were taken of)
    step_params: dict[str, object] = field(default_factory=dict)
    #: the step whose output the executor turned off mid-step (a chamber suspension or a stop
    #: from outside) and its step time then: ``{"step_id": ..., "elapsed_s": ...}``, kept in
    #: the checkpoint so a run resumed before the step carries on continues it from there
    off: dict[str, float] | None = None
    #: the measured capacity each C-rate reference last gave (by the step giving it), so
    #: run.log says when it changes
    bases_Ah: dict[int, float] = field(default_factory=dict)
