"""Putting a job that needs only kinds of instrument on a station's channels.

A job submitted with ``--needs`` names no channel: the station that takes it places its cells
the way ``--sim`` places them on simulated instruments, on the station's own instruments. Each
cell goes on the first channel (cyclers first, then potentiostats, instruments in name order)
whose instrument, as its driver options rate it, offers every technique the cell's steps plan
and reaches every value they command; a cell the station file already names keeps its
channel; a cell whose experiments set temperatures goes in the station's first chamber (the
plan then runs experiments that share it one after another). The placed station is checked
by the plan like any station file before anything runs.
"""

from __future__ import annotations

from protocols import Campaign
from protocols.steps import CHAMBER_STEPS, walk
from sequencer.handlers import techniques_of, voltage_window
from sequencer.lab.settings import LabError
from sequencer.station import PLACEMENT_ORDER, Placement, Station


class NotPlaceable(LabError):
    """The station has no free channel (or no chamber) that can run a cell of the job."""


def place(campaign: Campaign, station: Station) -> Station:
    """``station`` with the campaign's cells (and only them) placed on its channels."""
    from drivers.errors import CapabilityError

    heated = {cid for exp in campaign.experiments
              if any(isinstance(s, CHAMBER_STEPS) for s in walk(exp.steps))
              for cid in exp.cells}
    chambers = sorted(n for n, i in station.instruments.items() if i.kind == "chamber")
    taken = {(p.instrument, p.channel) for cid, p in station.cells.items()
             if cid in {c.id for c in campaign.cells}}
    cells: dict[str, Placement] = {}
    for cell in campaign.cells:
        chamber = None
        if cell.id in heated:
            if not chambers:
                raise NotPlaceable(f"station {station.station!r} has no chamber for cell"
                                   f" {cell.id} (its experiments set temperatures)")
            chamber = chambers[0]
        if cell.id in station.cells:
            cells[cell.id] = station.cells[cell.id].model_copy(update={"chamber": chamber})
            continue
        planned = [t for exp in campaign.experiments if cell.id in exp.cells
                   for t in techniques_of(exp.steps, cell)]
        window = voltage_window(cell)
        found = None
        for kind in PLACEMENT_ORDER:
            for name in sorted(station.instruments):
                config = station.instruments[name]
                if config.kind != kind:
                    continue
                caps = config.spec.capabilities(config.parsed_options()) \
                    if config.spec.capabilities else None
                if caps is None or not all(caps.offers(t) for t in planned):
                    continue
                try:
                    for technique in planned:
                        caps.check(technique, window)
                except CapabilityError:
                    continue
                free = [ch for ch in range(config.channel_count) if (name, ch) not in taken]
                if free:
                    found = (name, free[0])
                    break
            if found:
                break
        if found is None:
            raise NotPlaceable(f"station {station.station!r} has no free channel that runs"
                               f" every technique of cell {cell.id}")
        taken.add(found)
        cells[cell.id] = Placement(instrument=found[0], channel=found[1], chamber=chamber)
    return station.model_copy(update={"cells": cells})
