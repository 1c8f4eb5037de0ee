"""What one part of the executor tells another about a step: small frozen result types.

A step on a channel moves through a few states: it is started (or re-attached, or continued
after an interruption), driven to its end, possibly suspended by its chamber, and then either
ended, started again or carried on. Each move returns one of these types, so the caller
matches on a type instead of decoding a string, a float or None.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from drivers.techniques import Technique
from sequencer.cell_run import Mark
from sequencer.handlers.set_temperature import SoakProgress

#: The last point a step passed to the counters: (test time s, voltage V, current A).
PointTVI = tuple[float, float, float]


@dataclass(frozen=True)
class Ended:
    """The step ended, for ``reason`` (``duration``, ``voltage``, ``skipped``, ...)."""

    reason: str


@dataclass(frozen=True)
class Restart:
    """The interrupted step starts again from its beginning; it keeps no point at or before
    ``after_t`` (the test time of the last point its interrupted attempt stored; None if it
    stored none)."""

    after_t: float | None


@dataclass(frozen=True)
class Continue:
    """The interrupted step (row ``step_id``) goes on for what is left of it: ``technique``
    runs the rest, ``elapsed_s`` of the step were done, ``mark`` is the last point stored."""

    step_id: int
    technique: Technique
    elapsed_s: float
    mark: Mark | None


@dataclass(frozen=True)
class Running:
    """A technique runs on the channel for step row ``step_id``: technique time 0 is clock
    time ``t0`` and step time ``step_t0`` (not 0 for a continued step); ``previous`` is where
    the counters integrate from, ``mark`` the last point the step stored (points at or before
    it are not stored again)."""

    step_id: int
    t0: float
    step_t0: float
    previous: PointTVI | None
    mark: Mark | None


@dataclass(frozen=True)
class Suspended:
    """The chamber suspended the cell mid-step, or a stop of the cell was asked from outside:
    its output is off, ``mark`` is the last point stored and ``elapsed_s`` the step time its
    output ran for. The step carries on once the chamber is back and nothing holds the cell."""

    mark: Mark | None
    elapsed_s: float


#: What happens next to an interrupted step.
Carried = Ended | Restart | Continue
#: What taking up a step a stopped run left running gives.
TakenUp = Ended | Restart | Continue | Running
#: How driving a running step ends.
Driven = Ended | Suspended


@dataclass(frozen=True)
class Interrupted:
    """A resumed run's replay: the step was running when the run stopped; ``row`` is its row
    in the store."""

    row: dict[str, Any]


#: What a resumed run's replay knows of a step: it had ended (the cell's counters are set as
#: it left them), it was running, or (None) it had not run.
Replayed = Ended | Interrupted | None


@dataclass(frozen=True)
class SoakSettled:
    """A resumed run's soak had settled: it is not waited for again."""


@dataclass(frozen=True)
class SoakUnderWay:
    """A resumed run's soak was under way: its step rows, by cell, and where it stood."""

    step_ids: dict[str, int]
    progress: SoakProgress


#: What a resumed run's replay knows of a soak (None: it soaks afresh).
SoakReplayed = SoakSettled | SoakUnderWay | None
