"""The plan: experiments bound to station resources, every technique built and checked up front.

Nothing touches an instrument until the plan exists, so a C-rate that exceeds a channel's range
or a frequency outside the EIS window is refused before the first command is sent.

Each experiment's steps become a tree of :class:`PlannedStep` nodes: the step model, its
number in the document and the kind it was written as, its technique for each cell, and a
loop's body as its children. Compound steps (plating/stripping, CCD ramp, GITT, CC-CV,
temperature sweeps) are expanded here into loops of primitive steps; every expanded step keeps
the document position of the step it came from.

Experiments hold resources (their cells' channels and chambers) and are scheduled in file
order: each starts when the last earlier experiment sharing a resource with it has ended, so
experiments on disjoint resources run in parallel. The executor follows the same rule. The one
exception: experiments on disjoint channels in one chamber whose temperature schedules agree
(:mod:`sequencer.chamber_schedule`) share the chamber, start together and meet at each soak.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from drivers.errors import CapabilityError
from drivers.ranges import within
from drivers.techniques import Technique
from protocols import Campaign, Problem, ProtocolError, load_campaign
from protocols.steps import (
    CHAMBER_STEPS,
    CONTAINERS,
    Loop,
    SetTemperature,
    Step,
    TemperatureSweep,
    walk,
)
from protocols.steps.base import inherit_tag
from protocols.units import kelvin_to_celsius
from sequencer import chamber_schedule
from sequencer.bounds import check_bounds
from sequencer.branches import PlannedBranch, plan_branches
from sequencer.capacity_basis import PlannedReference, plan_references
from sequencer.estimate import experiment_estimate_s
from sequencer.handlers import EXPANSIONS, technique_for, voltage_window
from sequencer.instruments import chamber_range_C, channel_capabilities
from sequencer.limit_warnings import LimitWarning, limit_warnings
from sequencer.loop_conditions import watched_discharge
from sequencer.start_state import StartWarning, hardware_notes, start_warnings
from sequencer.station import Station, load_station, simulated_station


@dataclass(frozen=True)
class PlannedStep:
    """A node of an experiment's plan: one expanded step (a primitive, a loop or a soak).

    ``number`` is the step's number in its experiment as users count it, from 1 in document
    order, loops before their bodies: the same in run.log, ``cellseq status``, ``plan --json``
    and the store's (and the export's) step index; steps a compound step became carry the
    compound's number. ``written_kind`` is the kind as written (``gitt`` for the pulses a GITT
    step became). ``techniques``: what each cell's channel runs for a primitive step (empty for
    loops and soaks; filled while the plan is built). ``children``: a loop's body. A
    temperature sweep's body appears once per setpoint, the same nodes each time."""

    step: Step
    number: int
    written_kind: str
    techniques: dict[str, Technique] = field(default_factory=dict, compare=False)
    children: tuple[PlannedStep, ...] = ()

    @property
    def kind(self) -> str:
        return self.step.kind


def walk_planned(steps: Iterable[PlannedStep]) -> Iterator[PlannedStep]:
    """Every node in run order, loops before their bodies (a shared body once per use)."""
    for node in steps:
        yield node
        yield from walk_planned(node.children)


@dataclass(frozen=True)
class PlannedExperiment:
    index: int
    name: str
    cells: tuple[str, ...]
    steps: tuple[PlannedStep, ...]                # the tree: primitives, loops, soaks
    chamber: str | None
    resources: tuple[str, ...]
    doc_steps: tuple[Step, ...]                   # the steps as written
    estimate_s: float = 0.0
    bound_s: float = 0.0                          # at most: every loop to its count
    start_s: float = 0.0
    after: tuple[int, ...] = ()                   # experiments that must end first
    branches: tuple[PlannedBranch, ...] = ()      # on_end gotos, resolved and bounded
    #: C-rates taken of a measured capacity (``c_rate_reference``), by the step giving one
    references: tuple[PlannedReference, ...] = ()
    #: the experiments it shares its chamber with (their indices; itself included), their
    #: soaks one for all: empty when it has the chamber to itself
    sharing: tuple[int, ...] = ()
    #: why it waits for each experiment in ``after``, for ``cellseq plan``
    waits: tuple[str, ...] = ()

    @property
    def end_s(self) -> float:
        return self.start_s + self.estimate_s


@dataclass(frozen=True)
class Plan:
    campaign: Campaign
    station: Station
    experiments: tuple[PlannedExperiment, ...]
    makespan_s: float = 0.0
    makespan_bound_s: float = 0.0
    #: what the plan left aside, for the user to see (station cells not in the protocol)
    notes: tuple[str, ...] = ()
    #: steps whose voltage cut-off the cell's safety limit stops first, and a dry run's cells
    #: that start beyond a limit: allowed, but the cell will fault there (printed by validate,
    #: plan and run; kept in run.log and summary)
    warnings: tuple[LimitWarning | StartWarning, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {
            "experiments": [
                {"name": e.name, "cells": list(e.cells), "resources": list(e.resources),
                 "start_s": e.start_s, "end_s": e.end_s, "estimate_s": e.estimate_s,
                 "bound_s": e.bound_s,
                 "shares_chamber_with": [self.experiments[i].name for i in e.sharing
                                         if i != e.index],
                 "waits_for": list(e.waits),
                 "branches": [{"step": b.source, "on": b.reason, "goto": b.label,
                               "target_step": b.target, "at_most": b.at_most}
                              for b in e.branches],
                 "c_rate_references": [{"step": r.source, "reference": r.name, "by": r.by,
                                        "steps": sorted(r.numbers), "capacity": r.capacity}
                                       for r in e.references],
                 "steps": [{"index": i, "kind": s.kind, "label": s.label}
                           for i, s in enumerate(walk(list(e.doc_steps)), start=1)]}
                for e in self.experiments],
            "makespan_s": self.makespan_s,
            "makespan_bound_s": self.makespan_bound_s,
            "notes": list(self.notes),
            "warnings": [str(w) for w in self.warnings],
        }


def prepare(protocol: Path, station: Path | None = None, *,
            allow_outside_includes: bool = False) -> Plan:
    """Load, validate and plan, on the given station or a simulated one; raises
    ProtocolError."""
    campaign = load_campaign(protocol, allow_outside_includes=allow_outside_includes)
    bench = load_station(station) if station else simulated_station(campaign)
    return build_plan(campaign, bench, protocol.name)


def build_plan(campaign: Campaign, station: Station, source: str) -> Plan:
    """Bind, expand, check and schedule; raise :class:`ProtocolError` listing every problem.

    Station cells the protocol does not name are left out of the plan's station (a station
    file may describe a whole bench): nothing places, claims or drives their channels, and a
    note says so."""
    station, notes = _protocol_cells(campaign, station)
    problems: list[Problem] = []
    planned: list[PlannedExperiment] = []
    for i, exp in enumerate(campaign.experiments):
        where = f"experiments[{i}] ({exp.name})"
        missing = [c for c in exp.cells if c not in station.cells]
        if missing:
            problems.append(replace(campaign.locate_experiment(i, ("cells",)), message=(
                f"{where}: cells {', '.join(missing)} have no instrument channel in station"
                f" {station.station!r}")))
            continue
        kinds = [s.kind for s in walk(exp.steps)]
        branches, wrong = plan_branches(campaign, i, exp.steps)
        problems.extend(wrong)
        references, wrong = plan_references(campaign, i, exp.steps)
        problems.extend(wrong)
        steps = _expand(exp.steps, 0, None, kinds)
        chambers = {station.chamber_of(c) for c in exp.cells}
        chamber = next(iter(chambers)) if len(chambers) == 1 else None
        uses_chamber = any(isinstance(s, CHAMBER_STEPS) for s in exp.steps)
        if uses_chamber and None in chambers:
            problems.append(replace(campaign.locate_experiment(i, ("cells",)), message=(
                f"{where} has temperature steps, but not every cell is in a chamber")))
        elif uses_chamber and len(chambers) > 1:
            problems.append(replace(campaign.locate_experiment(i, ("cells",)), message=(
                f"{where}: its cells sit in different chambers"
                f" ({', '.join(sorted(map(str, chambers)))}) but share one temperature"
                " schedule")))
        for node in walk_planned(steps):
            step, k = node.step, node.number - 1
            at = campaign.locate_step(i, k)
            if isinstance(step, SetTemperature):
                if chamber is None:
                    continue
                target = kelvin_to_celsius(step.target)
                lo, hi = chamber_range_C(station, chamber)
                if not within(target, lo, hi):
                    _add(problems, replace(at, message=f"target {target:g} degC is outside"
                                           f" the chamber's range {lo:g}..{hi:g} degC"))
                continue
            if isinstance(step, Loop):
                continue
            for cell_id in exp.cells:
                if cell_id in node.techniques:   # a sweep's body, met again
                    continue
                try:
                    cell = campaign.cell(cell_id)
                    tech = technique_for(step, cell)
                    channel_capabilities(station, cell_id).check(tech, voltage_window(cell))
                except (ValueError, CapabilityError) as exc:
                    _add(problems, replace(at, message=f"cell {cell_id}: {exc}"))
                    continue
                node.techniques[cell_id] = tech
        for node in walk_planned(steps):
            until = node.step.until if isinstance(node.step, Loop) else None
            if until is not None and until.capacity_retention_below is not None and any(
                    watched_discharge(node, c) is None for c in exp.cells):
                _add(problems, replace(
                    campaign.locate_step(i, node.number - 1, ("until",
                                                              "capacity_retention_below")),
                    message="the loop has no constant-current discharge whose capacity"
                    " the retention could compare"))
        resources = sorted({f"{station.cells[c].instrument}/ch{station.cells[c].channel}"
                            for c in exp.cells} | {str(c) for c in chambers if c})
        planned.append(PlannedExperiment(i, exp.name, tuple(exp.cells), tuple(steps), chamber,
                                         tuple(resources), tuple(exp.steps),
                                         branches=branches,
                                         references=tuple(references.values())))
    if problems:
        raise ProtocolError(problems)
    placed = [c.id for c in campaign.cells if c.id in station.cells]
    plan = replace(_schedule(campaign, station, planned),
                   notes=notes if station.simulated else (*notes,
                                                          *hardware_notes(campaign, placed)),
                   warnings=(*limit_warnings(campaign, planned),
                             *(start_warnings(campaign, placed) if station.simulated else ())))
    check_bounds(plan)
    return plan


def _protocol_cells(campaign: Campaign, station: Station) -> tuple[Station, tuple[str, ...]]:
    ours = {c.id for c in campaign.cells}
    others = [c for c in station.cells if c not in ours]
    if not others:
        return station, ()
    kept = {c: p for c, p in station.cells.items() if c in ours}
    notes = tuple(f"station cell {c!r} ({station.cells[c].instrument} channel"
                  f" {station.cells[c].channel}) is not in the protocol: its channel is left"
                  " alone" for c in others)
    return station.model_copy(update={"cells": kept}), notes


def _add(problems: list[Problem], problem: Problem) -> None:
    if problem not in problems:
        problems.append(problem)


def _expand(steps: list[Step], first: int, inherited: int | None,
            kinds: list[str]) -> list[PlannedStep]:
    """Planned nodes of ``steps``, the first of which is written at document position
    ``first`` (from 0). Written steps keep their own position; steps generated by a compound
    step inherit the compound's (``inherited``)."""
    out: list[PlannedStep] = []
    k = first
    for step in steps:
        here = inherited if inherited is not None else k
        if isinstance(step, TemperatureSweep):
            body = _expand(step.steps, k + 1, inherited, kinds)
            for soak in step.setpoints():
                out.append(PlannedStep(soak, here + 1, kinds[here]))
                out.extend(body)
        elif type(step) in EXPANSIONS:
            children = inherit_tag(EXPANSIONS[type(step)](step), step.tag)
            if step.every is not None or step.on_resume is not None:
                # what was said of the compound step holds for each step it became
                children = [c.model_copy(update={"every": step.every,
                                                 "on_resume": step.on_resume})
                            for c in children]
            out.extend(_expand(children, here, here, kinds))
        elif isinstance(step, Loop):
            body = _expand(step.steps, k + 1, inherited, kinds)
            loop = Loop.model_construct(**{**dict(step), "steps": [b.step for b in body]})
            out.append(PlannedStep(loop, here + 1, kinds[here], children=tuple(body)))
        else:
            out.append(PlannedStep(step, here + 1, kinds[here]))
        k += _numbers(step)
    return out


def _numbers(step: Step) -> int:
    """How many document positions a written step takes: itself and, for a container, every
    step of its body (as :func:`protocols.steps.walk` counts them)."""
    if isinstance(step, CONTAINERS):
        return 1 + sum(_numbers(s) for s in step.steps)
    return 1


def _schedule(campaign: Campaign, station: Station,
              planned: list[PlannedExperiment]) -> Plan:
    """Who waits for whom (:func:`_order`), then when each starts and ends: every member of
    a shared chamber starts with the others and waits at each soak for the slowest."""
    ordered = _order(planned)
    by_index = {e.index: e for e in ordered}
    costs = {e.index: _item_costs(campaign, e) if len(e.sharing) > 1 else None
             for e in ordered}
    done: dict[int, PlannedExperiment] = {}
    ends: dict[int, float] = {}   # each experiment's latest end, every loop to its count
    for exp in ordered:
        mine = costs[exp.index]
        if mine is None:
            estimate, bound = (max(experiment_estimate_s(exp.steps, c,
                                                         campaign.cell(c).capacity_Ah,
                                                         bound=b, branches=exp.branches)
                                   for c in exp.cells)
                               for b in (False, True))
        else:
            group = [costs[i] for i in exp.sharing]
            estimate, bound = (_with_meetings(mine[b], [g[b] for g in group if g is not None])
                               for b in (0, 1))
        before = [done[i] for i in exp.after]
        start = max((p.end_s for p in before), default=0.0)
        start_bound = max((ends[p.index] for p in before), default=0.0)
        ends[exp.index] = start_bound + bound
        done[exp.index] = replace(by_index[exp.index], estimate_s=estimate, bound_s=bound,
                                  start_s=start)
    experiments = tuple(done[e.index] for e in ordered)
    makespan = max((e.end_s for e in experiments), default=0.0)
    return Plan(campaign, station, experiments, makespan, max(ends.values(), default=0.0))


def _order(planned: list[PlannedExperiment]) -> list[PlannedExperiment]:
    """Each experiment's ``after`` (the earlier ones it waits for), ``sharing`` and
    ``waits``. It waits for every earlier experiment sharing a resource with it, except that
    it joins the chamber's latest sharing group when it shares no channel with the group,
    their schedules agree, and it would wait for nothing the group's first member does not
    (so all members start together)."""
    done: list[PlannedExperiment] = []
    groups: dict[int, list[int]] = {}   # first member -> members
    group_of: dict[int, int] = {}
    by_index: dict[int, PlannedExperiment] = {}
    for exp in planned:
        before = [p for p in done if set(p.resources) & set(exp.resources)]
        why: dict[int, str] = {}
        for p in before:
            shared = sorted(set(p.resources) & set(exp.resources) - {exp.chamber})
            if shared:
                why[p.index] = f"shares {', '.join(shared)}"
        joined = None
        same_chamber = [p for p in before if exp.chamber is not None
                        and p.chamber == exp.chamber]
        if same_chamber:
            leader = by_index[group_of[same_chamber[-1].index]]
            members = groups[leader.index]
            reason = chamber_schedule.disagreement(chamber_schedule.schedule(exp.steps),
                                                   chamber_schedule.schedule(leader.steps))
            blocked = [p for p in before if p.index not in members
                       and p.index not in leader.after]
            if reason is None and any(i in why for i in members):
                reason = (next(by_index[i].name for i in members if i in why)
                          + ", sharing the chamber, uses one of its channels")
            if reason is None and blocked:
                reason = f"also waits for {blocked[0].name}"
            if reason is None:
                joined = leader
            for p in same_chamber:
                why.setdefault(p.index, reason or "")
        if joined is not None:
            members = groups[joined.index]
            members.append(exp.index)
            group_of[exp.index] = joined.index
            after = joined.after
            waits = tuple(f"after {by_index[i].name}: {w}" for i, w in
                          zip(joined.after, joined.waits, strict=True))
        else:
            groups[exp.index] = [exp.index]
            group_of[exp.index] = exp.index
            after = tuple(p.index for p in before)
            waits = tuple(f"after {p.name}: {why.get(p.index) or 'shares ' + str(p.chamber)}"
                          for p in before)
        placed = replace(exp, after=after, waits=waits)
        done.append(placed)
        by_index[exp.index] = placed
    out = []
    for exp in done:
        members = groups[group_of[exp.index]]
        out.append(replace(exp, sharing=tuple(members)) if len(members) > 1 else exp)
    return out


def _item_costs(campaign: Campaign, exp: PlannedExperiment) -> tuple[list[float], list[float]]:
    """What each item of the experiment's chamber schedule probably takes (the slowest of its
    cells), and at most."""
    return tuple(  # type: ignore[return-value]
        [max(experiment_estimate_s(item, c, campaign.cell(c).capacity_Ah, bound=b,
                                   branches=exp.branches) for c in exp.cells)
         for item in chamber_schedule.items(exp.steps)]
        for b in (False, True))


def _with_meetings(mine: list[float], group: list[list[float]]) -> float:
    """An experiment's duration when every soak waits for the slowest of the group: each item
    before its last takes as long as the group's longest, its last item its own time."""
    if not mine:
        return 0.0
    return sum(max(g[i] for g in group) for i in range(len(mine) - 1)) + mine[-1]


def watches_of(exp: PlannedExperiment) -> list[str]:
    """What each loop's capacity retention compares, for ``cellseq plan``: the cycles of
    which discharge step (the same for every cell of the experiment)."""
    out = []
    cell = exp.cells[0]
    for node in walk_planned(exp.steps):
        until = node.step.until if isinstance(node.step, Loop) else None
        if until is None or until.capacity_retention_below is None:
            continue
        watched = watched_discharge(node, cell)
        out.append(f"step {node.number}: until retention <"
                   f" {100 * until.capacity_retention_below:g} % of its series' first cycle"
                   f" (discharge step {watched})")
    return out
