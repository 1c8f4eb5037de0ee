"""Cycles and series: what a cycle is, whatever loops the protocol nests, and which cycles
compare with which.

Pure functions over :class:`StepOutcome` records: the analysis builds them from the run store
(:mod:`analysis.cycle_steps`), and a running executor can build them from the steps it has run
so far, so a loop's ``until: capacity_retention_below`` and the report use one definition
(:func:`series_retention`).

**A cycle** is a charge followed by a discharge, as cyclers count them:

- Only steps that move charge take part: constant current, constant voltage and any other step
  that passed net charge, except the steps of a titration (GITT, HPPC: their pulses are no
  cycles), the steps that measure (rest, impedance, sweeps, chronoamperometry), which lie
  between cycles and belong to none, and a step that ended before any current because its
  voltage cut-off was met when it started (it is no discharge of nothing).
- A step charges or discharges by its set current's sign (a constant-current step), or else by
  the sign of the charge it passed (a voltage hold).
- A charge step starts a new cycle when the current one has already discharged; consecutive
  steps of one direction are one half (CC then CV; a discharge at 1C then at C/10). A discharge
  before any charge is a cycle of its own (no coulombic efficiency).
- A cell whose cycles lead with the discharge (Li||Cu: plating onto the copper, then stripping
  it) is counted the other way round (``leading="discharge"``): its efficiency is the charge
  over the discharge of the cycle.
- A change of tag starts a new cycle: a cycle belongs to one series.

So a C/3 check-up run every 100 cycles inside a 1C loop is its own cycle, however the loops are
nested, and a charge and a 5C discharge written after a loop are a cycle of their own.

**A series** is the cycles of one kind: the same tag, the same discharge C-rate (rounded to two
significant digits: 1/3 C is 0.33) and the same temperature (whole degC). A change of any of the
three starts another series; cycles of a series need not be consecutive (an aging series goes on
after a check-up). Retention compares like with like: a cycle's discharge capacity over the
first of its series.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

#: Steps that measure rather than cycle: they lie between cycles.
MEASURING_KINDS = frozenset({"rest", "peis", "geis", "lsv", "cv", "chronoamperometry",
                             "set_temperature"})
#: Written kinds whose steps are a titration, not cycles.
TITRATION_KINDS = frozenset({"gitt", "hppc"})


@dataclass(frozen=True)
class StepOutcome:
    """One step as cycles need it: what the run store records of it, and what an executor
    knows of a step it has run.

    ``current_A`` is the set current of a constant-current step (signed, charge > 0), None
    for others; ``charge_Ah`` ... ``discharge_Wh`` what the step passed (>= 0 each);
    ``temperature_degC`` the step's temperature (the chamber's set point where one was set,
    else the measured mean; None if neither is known)."""

    step_count: int
    kind: str
    charge_Ah: float
    discharge_Ah: float
    charge_Wh: float = 0.0
    discharge_Wh: float = 0.0
    current_A: float | None = None
    tag: str = ""
    written_kind: str = ""
    temperature_degC: float | None = None
    end_reason: str = ""
    experiment: str = ""
    #: the capacity the step's C-rate was taken of when it was a measured one
    #: (``c_rate_reference``); None: the cell's nominal capacity
    capacity_basis_Ah: float | None = None
    #: the step ended at once, before any current: its voltage cut-off was met when it
    #: started (a discharge-first protocol on a fresh half cell); it is no half of a cycle
    #: (see :func:`ended_at_once`)
    ended_at_start: bool = False

    @property
    def direction(self) -> int:
        """+1 charge, -1 discharge, 0 a step that takes no part in cycles."""
        if self.kind in MEASURING_KINDS or self.written_kind in TITRATION_KINDS \
                or self.ended_at_start:
            return 0
        if self.current_A is not None and self.current_A != 0:
            return 1 if self.current_A > 0 else -1
        net = self.charge_Ah - self.discharge_Ah
        return 0 if net == 0 else (1 if net > 0 else -1)


def ended_at_once(recorded: object) -> bool:
    """Whether a step ended at once, before any current: the sequencer found its voltage
    cut-off met when it started (``recorded``: its row's ``ended_at_start``). A step the
    instrument ended on its first reading under current stays a half of its cycle (a 10C
    discharge the cell cannot deliver is a result of a rate test: null, with a note). Both the
    executor and the analysis ask this, so a loop's retention and the report count the same
    cycles."""
    return bool(recorded)


@dataclass(frozen=True)
class Cycle:
    """A charge and the discharge after it (either may be missing at the ends of a test)."""

    number: int
    tag: str
    steps: tuple[StepOutcome, ...]
    experiment: str = ""
    #: +1: the cycle is a charge, then a discharge; -1: a discharge, then a charge (Li||Cu)
    leading: int = 1

    def _sum(self, name: str) -> float:
        return float(sum(getattr(s, name) for s in self.steps))

    @property
    def charge_Ah(self) -> float:
        return self._sum("charge_Ah")

    @property
    def discharge_Ah(self) -> float:
        return self._sum("discharge_Ah")

    @property
    def charge_Wh(self) -> float:
        return self._sum("charge_Wh")

    @property
    def discharge_Wh(self) -> float:
        return self._sum("discharge_Wh")

    # cached (in the instance's __dict__, which the frozen dataclass's fields, equality and
    # hash leave alone): a cell's cycles are asked for their halves many times apiece
    @cached_property
    def charges(self) -> tuple[StepOutcome, ...]:
        return tuple(s for s in self.steps if s.direction > 0)

    @cached_property
    def discharges(self) -> tuple[StepOutcome, ...]:
        return tuple(s for s in self.steps if s.direction < 0)

    @property
    def coulombic_efficiency(self) -> float | None:
        """What came back over what went in (a fraction): discharge over charge, or for a cycle
        that leads with the discharge, charge over discharge; None without both halves."""
        if not self.charges or not self.discharges:
            return None
        given, returned = (self.charge_Ah, self.discharge_Ah) if self.leading > 0 else \
            (self.discharge_Ah, self.charge_Ah)
        return returned / given if given > 0 else None

    @property
    def discharge_current_A(self) -> float | None:
        """|I| of the cycle's first constant-current discharge: the rate the cycle is at."""
        return _first_current(self.discharges)

    @property
    def charge_current_A(self) -> float | None:
        return _first_current(self.charges)

    @property
    def temperature_degC(self) -> float | None:
        """The discharge's temperature (the charge's for a cycle without a discharge)."""
        for half in (self.discharges, self.charges):
            known = [s.temperature_degC for s in half if s.temperature_degC is not None]
            if known:
                return known[0]
        return None

    def charge_c_rate(self, one_c_A: float | None) -> float | None:
        """The charge's C-rate, unrounded (of its measured capacity where it was taken of
        one); None without a constant-current charge or a 1C current."""
        one_c_A = _first_basis(self.charges) or one_c_A
        current = self.charge_current_A
        return current / one_c_A if one_c_A and current else None

    def c_rate(self, one_c_A: float | None) -> float | None:
        """The discharge C-rate (the charge's for a cycle without a constant-current
        discharge), rounded to two significant digits; None without a 1C current."""
        current = self.discharge_current_A or self.charge_current_A
        basis = _first_basis(self.discharges if self.discharge_current_A else self.charges)
        one_c_A = basis or one_c_A   # a C-rate of a measured capacity is the rate written
        if not one_c_A or current is None:
            return None
        return round_rate(current / one_c_A)


@dataclass(frozen=True)
class SeriesKey:
    tag: str
    c_rate: float | None
    temperature_degC: int | None

    def __str__(self) -> str:
        parts = [self.tag] if self.tag else []
        if self.c_rate is not None:
            parts.append(f"{self.c_rate:g}C")
        if self.temperature_degC is not None:
            parts.append(f"{self.temperature_degC} degC")
        return ", ".join(parts) or "cycles"


@dataclass
class Series:
    """Cycles of one kind, numbered from 1 in the order series first appear."""

    number: int
    key: SeriesKey
    cycles: list[Cycle] = field(default_factory=list)


def round_rate(rate: float) -> float:
    """Set points are round numbers: 0.0999 -> 0.1, 2.003 -> 2, 1/3 -> 0.33."""
    return float(f"{rate:.2g}")


def cycles_of(steps: Sequence[StepOutcome], numbers: Mapping[int, int] | None = None,
              leading: Literal["charge", "discharge"] = "charge") -> list[Cycle]:
    """The cycles of ``steps`` (in the order they ran), numbered from 1.

    ``numbers`` (step count -> cycle) groups the steps by cycle numbers given elsewhere
    instead: imported files keep the cycles their own counters say (cycle 0 is none).
    ``leading``: the half a cycle begins with (``discharge`` for Li||Cu cells)."""
    lead = 1 if leading == "charge" else -1
    groups: list[list[StepOutcome]] = []
    if numbers is not None:
        by_number: dict[int, list[StepOutcome]] = {}
        for s in steps:
            if s.direction and numbers.get(s.step_count, 0) > 0:
                by_number.setdefault(numbers[s.step_count], []).append(s)
        groups = [by_number[n] for n in sorted(by_number)]
    else:
        current: list[StepOutcome] = []
        for s in steps:
            if not s.direction:
                continue
            if current and _starts_a_cycle(current, s, lead):
                groups.append(current)
                current = []
            current.append(s)
        if current:
            groups.append(current)
    return [Cycle(k, g[0].tag, tuple(g), g[0].experiment, lead)
            for k, g in enumerate(groups, 1)]


def _starts_a_cycle(current: list[StepOutcome], step: StepOutcome, lead: int) -> bool:
    if step.tag != current[0].tag or step.experiment != current[0].experiment:
        return True
    return step.direction == lead and any(s.direction == -lead for s in current)


def series_key(cycle: Cycle, one_c_A: float | None) -> SeriesKey:
    t = cycle.temperature_degC
    return SeriesKey(cycle.tag, cycle.c_rate(one_c_A),
                     round(t) if t is not None and math.isfinite(t) else None)


def series_of(cycles: Sequence[Cycle], one_c_A: float | None) -> list[Series]:
    """The series ``cycles`` fall into, in the order each first appears."""
    out: dict[SeriesKey, Series] = {}
    for c in cycles:
        key = series_key(c, one_c_A)
        if key not in out:
            out[key] = Series(len(out) + 1, key)
        out[key].cycles.append(c)
    return list(out.values())


def series_retention(cycles: Sequence[Cycle], one_c_A: float | None,
                     cycle: Cycle | None = None) -> float | None:
    """Capacity retention of the series ``cycle`` belongs to (a fraction): its discharge
    capacity over that of the first cycle of ``cycles`` in the same series (same tag, C-rate
    and temperature). ``cycle`` defaults to the last of ``cycles`` that discharged.

    None when there is nothing to compare: no cycle that discharged, or a first cycle of the
    series that discharged nothing. This is the definition ``until: capacity_retention_below``
    and the report's ``capacity_retention`` share: pass the cycles since the loop began (or
    since the experiment did) and stop when it falls below the threshold."""
    if cycle is None:
        discharged = [c for c in cycles if c.discharges]
        if not discharged:
            return None
        cycle = discharged[-1]
    if not cycle.discharges:
        return None
    key = series_key(cycle, one_c_A)
    first = next(c for c in [*cycles, cycle]
                 if c.discharges and series_key(c, one_c_A) == key)
    if not first.discharge_Ah > 0:
        return None
    return cycle.discharge_Ah / first.discharge_Ah


def _first_basis(half: tuple[StepOutcome, ...]) -> float | None:
    """The measured capacity (Ah, as 1 h of current: A) the rate of ``half``'s first
    constant-current step was taken of; None when it was the nominal one."""
    for s in half:
        if s.current_A is not None and s.current_A != 0:
            return s.capacity_basis_Ah
    return None


def _first_current(half: tuple[StepOutcome, ...]) -> float | None:
    for s in half:
        if s.current_A is not None and s.current_A != 0:
            return abs(s.current_A)
    return None
