"""What of a damaged run store can still be read: for the message a command gives on refusing
it, and for the commands that salvage it (export, report).

A survey opens the store read-only, so a damaged run is never made worse by looking at it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from store.rows import StoreDamaged, StoreError
from store.run_store import RunStore

#: Damage listed in a message before "... and N more".
MAX_LISTED = 5


@dataclass
class Survey:
    """What is damaged in a run store, and what is still readable."""

    damage: list[str] = field(default_factory=list)
    readable: list[str] = field(default_factory=list)

    def message(self, run_dir: Path) -> str:
        return damage_message(run_dir, self.damage, self.readable)


def survey(run_dir: Path) -> Survey:
    """Read every table of a run's store, salvaging, and count what survives."""
    out = Survey()
    try:
        store = RunStore.open(run_dir, integrity=True, salvage=True)
    except StoreDamaged as exc:   # not even its tables can be listed
        out.damage.append(str(exc))
        return out
    try:
        out.damage.extend(store.damage)
        meta = store.meta(out.damage)
        out.readable.append(f"{len(meta)} metadata entries")
        states = store.cell_states(out.damage)
        out.readable.append(f"{len(states)} cell states")
        out.readable.append(f"{len(store.steps(damage=out.damage))} steps")
        out.readable.append(f"{len(store.events(damage=out.damage))} journal events")
        points = 0
        for cell in store.chunk_cells(out.damage):
            for kind in ("series", "spectrum"):
                # every chunk checked, one at a time (none of its columns kept)
                points += sum(c.n for c in store.chunks(cell, kind, out.damage, columns=()))
        out.readable.append(f"{points} points")
    except StoreError as exc:
        out.damage.append(str(exc))
    finally:
        store.close()
    return out


def damage_message(run_dir: Path, damage: list[str], readable: list[str]) -> str:
    """``run RUN: its store is damaged: ... Still readable: ...``"""
    damage = list(dict.fromkeys(damage))   # a damaged table is met by more than one read
    listed = "; ".join(damage[:MAX_LISTED])
    if len(damage) > MAX_LISTED:
        listed += f"; and {len(damage) - MAX_LISTED} more"
    still = ", ".join(readable) if readable else "nothing"
    return (f"run {run_dir}: its store is damaged: {listed}. Still readable: {still}."
            " `cellseq export` and `cellseq report` salvage what is intact; the run store is"
            " left as it is")


__all__ = ["Survey", "damage_message", "survey"]
