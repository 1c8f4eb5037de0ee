"""Set up a run directory and run a campaign in it; resume the run a directory holds.

A run directory (:mod:`sequencer.run_files`) holds ``run.sqlite`` (data, journal,
checkpoints), a byte copy of every file the protocol was made of under ``protocol/``,
``station.yaml``, ``manifest.json`` (each file's SHA-256, the station, versions, seed) and
``run.log``. Validation and planning finish before the directory or any instrument is touched.
The store is created with the run's metadata in it, so a run killed at any moment after is
resumable, from the beginning if nothing else was committed.
"""

from __future__ import annotations

import contextlib
import json
import platform
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.parser import HeaderParser
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import TypeVar

import trio
import yaml

from core.atomic_write import write_atomic
from drivers.clock import Clock, TrioClock, WallClock
from drivers.errors import CellseqError
from protocols.cells import Cell
from sequencer.controls import watch_requests
from sequencer.executor import HARDWARE_POLL_S, SIMULATED_POLL_S, Executor
from sequencer.instruments import build_hardware, build_simulated
from sequencer.journal import LOG_NAME, Journal
from sequencer.locks import RUN_LOCK, claim_channels, hold_run_dir
from sequencer.plan import Plan, build_plan, prepare
from sequencer.progress import NoProgress
from sequencer.resume import ResumeState
from sequencer.run_files import (
    MANIFEST,
    PROTOCOL_DIR,
    STATION_COPY,
    RunDirError,
    check_loaded,
    layout,
    listed_files,
    manifest_files,
    sha256,
    verify_copies,
    write_copies,
)
from sequencer.station import Station, load_station
from sequencer.status import FINISHED, run_outcome
from sequencer.suspenders import SIMULATED_WATCH_S, WATCH_S
from store import DB_NAME, RunStore, StoreBroken, StoreDamaged, StoreError
from store.survey import survey

#: On instruments simulated faster than real time, poll and watch no more often than this
#: much wall time.
MIN_WALL_POLL_S = 0.02
MIN_WALL_WATCH_S = 0.5
#: A paced dry run (``--speed``) polls its simulated instruments this often (wall time), as a
#: run on hardware would, so what it records is committed and seen soon after.
PACED_POLL_WALL_S = 0.5
_PACKAGES = ("cellseq", "numpy", "pandas", "pydantic", "pint", "trio", "pyyaml")
T = TypeVar("T")


@dataclass(frozen=True)
class Resuming:
    """How a resumed run takes up the store it continues."""

    state: ResumeState | None    # None: nothing was committed; it starts from the beginning
    snapshot: dict | None        # a dry run's simulators at the last commit
    before: str | None           # the status the run had
    kept_running: bool


@dataclass(frozen=True)
class RunOutcome:
    run_dir: Path
    plan: Plan
    wall_s: float
    faulted: list[str]
    status: str   # see sequencer.status: completed, completed_with_faults or faulted


def run_simulated(protocol: Path, run_dir: Path, seed: int, station: Path | None = None,
                  progress: NoProgress | None = None, *,
                  allow_outside_includes: bool = False, speed: float | None = None,
                  on_plan: Callable[[Plan], None] | None = None) -> RunOutcome:
    """Run a protocol: on in-process simulators in virtual time (no station, or a station of
    ``sim.*`` drivers), or on the instruments a station file addresses, in wall time.

    ``speed`` paces a dry run against the wall clock, ``speed`` simulated seconds per wall
    second, instead of running it as fast as it can: for watching it live. ``on_plan``: shown
    the plan before the run starts (the CLI prints its warnings)."""
    plan = prepare(protocol, station, allow_outside_includes=allow_outside_includes)
    if on_plan is not None:
        on_plan(plan)
    if speed is not None and not plan.station.simulated:
        raise RunDirError("--speed paces a dry run on simulators; a station's instruments run"
                          " at their own speed (a served lab's is set by sim serve --speed)")
    files = layout(plan.campaign)
    run_dir = Path(run_dir)
    with claim_channels(plan.station, run_dir):
        _claim_run_dir(run_dir)
        with hold_run_dir(run_dir):
            return _run(plan, files, run_dir, seed, progress, speed)


def _run(plan: Plan, files: dict[PurePosixPath, bytes], run_dir: Path, seed: int,
         progress: NoProgress | None, speed: float | None = None) -> RunOutcome:
    station = _station_record(plan.station)
    simulated = plan.station.simulated
    clock: Clock = TrioClock(virtual=True) if simulated and speed is None else \
        WallClock(speed or plan.station.speed)
    top = next(iter(files))
    manifest = {
        "protocol": {"file": str(top), "sha256": sha256(files[top])},
        "files": manifest_files(files),
        "campaign": plan.campaign.campaign,
        "mode": "simulated" if simulated else "hardware",
        "seed": seed,
        **({"speed": speed} if speed is not None else {}),
        "station": station,
        "started_utc": clock.origin_utc,
        "versions": _versions(),
        # for summary.json's notes, as an import's notes reach it
        **({"warnings": [str(w) for w in plan.warnings]} if plan.warnings else {}),
    }
    try:   # the manifest last: a directory with one holds everything a resume needs
        write_copies(run_dir, files)
        write_atomic(run_dir / STATION_COPY,
                     yaml.safe_dump(station, sort_keys=False).encode("utf-8"))
        write_atomic(run_dir / MANIFEST, json.dumps(manifest, indent=2).encode("utf-8"))
    except OSError as exc:
        raise RunDirError(f"cannot write the run directory {run_dir}: {exc.strerror or exc}."
                          " Nothing ran") from None
    store = RunStore.create(run_dir, durable=not simulated, meta=_store_meta(plan, manifest))
    return _execute(plan, run_dir, store, clock, seed, progress)


def _store_meta(plan: Plan, manifest: dict) -> dict[str, object]:
    """What the store holds of the run from its creation on: what status, the analysis and
    a resume need without reading any file."""
    return {"manifest": manifest,
            "cells": {c.id: _cell_info(c) for c in plan.campaign.cells},
            "experiments": [{"name": e.name, "cells": list(e.cells)}
                            for e in plan.experiments],
            "expected": [x.record(e.name) for e in plan.campaign.experiments
                         for x in e.expected],
            "status": "running"}


def resume_run(run_dir: Path, progress: NoProgress | None = None,
               kept_running: bool = True, station: Path | None = None) -> RunOutcome:
    """Continue a run that stopped (a crash, a power cut, Ctrl-C twice) where its store ends.

    The protocol is read from the run directory's own copies, each checked against the
    manifest's SHA-256 (the originals may since have been edited, moved or deleted), and the
    station from its copy. A dry run's simulators come back from the snapshot committed with
    the last data, so the resumed run gives what an uninterrupted one would; a run that
    stopped before it committed anything starts from the beginning. ``kept_running=False``
    makes the simulated instruments behave as if they lost power too (their techniques ended
    at the last point read), which exercises the resume policies. ``station``: the station
    file again, for the passwords a run never stores; it must be the station the run used.

    Every check comes before anything is written: a refused resume leaves the run as it was
    (``interrupted``, and resumable once the cause is fixed).
    """
    run_dir = Path(run_dir)
    if not (run_dir / MANIFEST).is_file():
        raise RunDirError(_not_a_run(run_dir))
    with hold_run_dir(run_dir), contextlib.ExitStack() as cleanup:
        manifest = _read_manifest(run_dir)
        listed = listed_files(manifest, run_dir / MANIFEST)
        _check_run_log(run_dir)
        simulated = manifest["mode"] == "simulated"
        store: RunStore | None = None
        if (run_dir / DB_NAME).exists():
            store = _open_for_resume(run_dir, simulated)
            cleanup.callback(store.close)
            meta = _damage_refused(run_dir, store.meta)
            if meta.get("manifest") != manifest:
                raise RunDirError(f"{run_dir / MANIFEST} is not the manifest of the run in"
                                  f" {run_dir / DB_NAME}; it cannot be resumed")
            if meta.get("status") in FINISHED:
                raise RunDirError(f"{run_dir} holds a finished run ({meta['status']}); there is"
                                  f" nothing to resume (`cellseq report {run_dir}` writes its"
                                  " report)")
        verify_copies(run_dir, listed)
        protocol = run_dir / listed[0][0]
        # the copies keep the originals' places, an allowed outside include too; that nothing
        # but the copies was read is checked next
        plan = prepare(protocol, run_dir / STATION_COPY, allow_outside_includes=True)
        check_loaded(run_dir, plan.campaign, listed)
        if _station_record(plan.station) != manifest.get("station"):
            raise RunDirError(f"{run_dir / STATION_COPY} has been changed since the run"
                              " started (it differs from the manifest's station)")
        if station is not None:
            given = build_plan(plan.campaign, load_station(station), protocol.name)
            if _station_record(given.station) != _station_record(plan.station):
                raise RunDirError(f"{station} is not the station this run used (see"
                                  f" {run_dir / STATION_COPY})")
            plan = given
        if store is None:   # killed before its store existed: nothing ran
            before, state, snapshot = None, None, None
        else:
            before, snapshot = meta.get("status"), meta.get("sim_snapshot")
            state = _damage_refused(run_dir, lambda: ResumeState.load(store))
            if state.empty:
                state, snapshot = None, None
        with claim_channels(plan.station, run_dir):
            clock: Clock
            if simulated and manifest.get("speed"):   # a paced dry run stays paced
                clock = WallClock(float(manifest["speed"]), manifest["started_utc"],
                                  snapshot["t"] if snapshot else 0.0)
            elif simulated:
                clock = TrioClock(virtual=True, origin_utc=manifest["started_utc"],
                                  offset_s=snapshot["t"] if snapshot else 0.0)
            else:   # run time went on while nothing ran
                speed = plan.station.speed
                clock = WallClock(speed, manifest["started_utc"],
                                  (time.time() - manifest["started_utc"]) * speed)
            if store is None:
                store = RunStore.create(run_dir, durable=not simulated,
                                        meta=_store_meta(plan, manifest))
            cleanup.pop_all()   # _execute closes the store
            return _execute(plan, run_dir, store, clock, int(manifest["seed"]), progress,
                            resume=Resuming(state, snapshot, before, kept_running))


def _open_for_resume(run_dir: Path, simulated: bool) -> RunStore:
    """The store, for writing, once SQLite finds no damaged page and every chunk's blob has
    its size and checksum; else refused with what is damaged and what is still readable."""
    store = _damage_refused(run_dir, lambda: RunStore.open(
        run_dir, readonly=False, durable=not simulated, integrity=True))
    try:
        _damage_refused(run_dir, store.check_chunks)
    except BaseException:
        store.close()
        raise
    return store


def _damage_refused(run_dir: Path, read: Callable[[], T]) -> T:
    """``read()``; a damaged store refuses the resume, saying what is damaged and what can
    still be read (nothing is written to it)."""
    try:
        return read()
    except StoreDamaged:
        raise StoreDamaged(survey(run_dir).message(run_dir) + ". It is not resumed"
                           ) from None


def _check_run_log(run_dir: Path) -> None:
    log = run_dir / LOG_NAME
    if (log.exists() or log.is_symlink()) and not log.is_file():
        raise RunDirError(f"{log} is not a file (the run's log cannot be written); remove or"
                          " rename it, then resume")


def _not_a_run(run_dir: Path) -> str:
    if not run_dir.is_dir():
        return f"{run_dir} is not a cellseq run directory (no such directory)"
    if (run_dir / PROTOCOL_DIR).exists() or (run_dir / STATION_COPY).exists():
        return (f"{run_dir} holds no {MANIFEST}: its run was cut off while the directory was"
                " being prepared, before anything ran. Start the run again in a new"
                " directory (cellseq run FILE --out DIR)")
    return f"{run_dir} is not a cellseq run directory (no {MANIFEST})"


def _execute(plan: Plan, run_dir: Path, store: RunStore, clock: Clock, seed: int,
             progress: NoProgress | None, resume: Resuming | None = None) -> RunOutcome:
    journal = Journal(store, run_dir, clock)
    wall = time.perf_counter()
    status = "aborted"
    # A resume writes nothing (its status neither) until every check before it has passed.
    begun = resume is None
    try:
        async def main() -> None:
            clock.start()
            if resume is None:
                for note in plan.notes:
                    journal.log(None, "note", note)
                for warning in plan.warnings:
                    journal.log(None, "warning", str(warning))
            lab = None
            if plan.station.simulated:
                instruments, lab = build_simulated(plan.station, plan.campaign, clock, seed)
                poll_s, watch_s = SIMULATED_POLL_S, SIMULATED_WATCH_S
                if isinstance(clock, WallClock):   # paced: polled like hardware
                    poll_s = min(SIMULATED_POLL_S, clock.speed * PACED_POLL_WALL_S)
            else:
                instruments = build_hardware(plan.station, clock)
                speed = plan.station.speed   # poll at most every MIN_WALL_POLL_S of wall time
                poll_s = max(HARDWARE_POLL_S, speed * MIN_WALL_POLL_S)
                watch_s = max(WATCH_S, speed * MIN_WALL_WATCH_S)
            on_start = None
            if resume is not None:
                if resume.snapshot is not None and lab is not None:
                    lab.restore(resume.snapshot["lab"], resume.kept_running)

                def on_start() -> None:
                    nonlocal begun
                    begun = True
                    before = resume.before
                    with store.transaction():
                        store.set_meta("status", "running")
                        journal.event(None, "run_interrupted",
                                      f"the run stopped ({before or 'unknown'}) at t ="
                                      f" {clock.now():.1f} s; everything committed up to then"
                                      " is kept", status=before, t=clock.now())
                        journal.event(None, "run_resumed",
                                      "resuming where the run store ends"
                                      if resume.state is not None else "nothing had been"
                                      " committed: the run starts from the beginning")

            if lab is not None:
                def snapshot_lab() -> None:
                    store.set_meta("sim_snapshot", {"t": clock.now(), "lab": lab.snapshot()})
                store.before_commit = snapshot_lab
            executor = Executor(plan, instruments, store, journal, clock, poll_s, progress,
                                resume=resume.state if resume is not None else None,
                                watch_s=watch_s, on_start=on_start)
            finished = False
            try:
                async with trio.open_nursery() as nursery:
                    if threading.current_thread() is threading.main_thread():
                        nursery.start_soon(_watch_ctrl_c, executor)
                    nursery.start_soon(watch_requests, executor, run_dir)
                    await executor.run()
                    nursery.cancel_scope.cancel()
                finished = True
            finally:
                # commit the last writes with the simulators' snapshot while it can be taken;
                # a failure here is the run's own error unless another is on its way
                try:
                    store.commit()
                except StoreError:
                    if finished:
                        raise

        try:
            with progress or NoProgress():
                trio.run(main, clock=clock.trio_clock() if isinstance(clock, TrioClock)
                         else None)
        except BaseExceptionGroup as group:
            raise _unwrapped(group) from None
        finally:
            store.before_commit = None   # the simulators' time has stopped
        states = store.cell_states()   # with what the run's last block set, not yet written
        status = run_outcome(s["state"] for s in states)
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        if begun:
            with contextlib.suppress(StoreError), store.transaction():
                store.set_meta("status", status)
        journal.close()
        store.close()
    faulted = [s["cell"] for s in states if s["state"] == "faulted"]
    return RunOutcome(run_dir, plan, time.perf_counter() - wall, faulted, status)


def _station_record(station: Station) -> dict:
    """The station as the run keeps it (copy and manifest): without any password."""
    record = station.model_dump(mode="json", exclude_none=True)
    for inst in record["instruments"].values():
        inst.pop("password", None)
    return record


def _read_manifest(run_dir: Path) -> dict:
    path = run_dir / MANIFEST
    try:
        manifest = json.loads(path.read_bytes().decode("utf-8"))
        ok = isinstance(manifest, dict) and isinstance(manifest.get("protocol"), dict) and \
            isinstance(manifest["protocol"].get("file"), str) and \
            isinstance(manifest["protocol"].get("sha256"), str) and \
            isinstance(manifest.get("started_utc"), int | float) and \
            isinstance(manifest.get("seed"), int)
    except (OSError, ValueError, RecursionError) as exc:
        raise RunDirError(f"{path} cannot be read: {exc}") from None
    if isinstance(manifest, dict) and manifest.get("mode") == "imported":
        raise RunDirError(f"{path}: an imported run (cellseq import); there is nothing to"
                          " resume")
    if not ok:
        raise RunDirError(f"{path} lacks the protocol, seed or start time of the run")
    if manifest.get("mode") not in ("simulated", "hardware"):
        raise RunDirError(f"{path}: unknown run mode {manifest.get('mode')!r}")
    return manifest


async def _watch_ctrl_c(executor: Executor) -> None:
    """Ctrl-C once: pause at the next step boundary (Enter continues, on a terminal); twice:
    stop, every output off."""
    with trio.open_signal_receiver(signal.SIGINT) as signals:
        async for _ in signals:
            if executor.paused:
                executor.interrupted = True
                raise KeyboardInterrupt
            executor.pause()
            print("\npausing at the next step boundary: Enter continues, Ctrl-C again stops",
                  file=sys.stderr, flush=True)
            if sys.stdin is not None and sys.stdin.isatty():
                async with trio.open_nursery() as waiting:
                    waiting.start_soon(_continue_on_enter, executor, waiting.cancel_scope)
                    async for _ in signals:
                        executor.interrupted = True
                        raise KeyboardInterrupt


async def _continue_on_enter(executor: Executor, scope: trio.CancelScope) -> None:
    await trio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
    executor.unpause()
    scope.cancel()


def _unwrapped(group: BaseExceptionGroup) -> BaseException:
    """What the user should see of an exception group from the concurrent tasks: Ctrl-C as
    Ctrl-C, a single cellseq error as itself, anything else as it is (a bug, with its
    traceback)."""
    if group.subgroup(KeyboardInterrupt) is not None:
        return KeyboardInterrupt()
    leaves = list(_leaves(group))
    if len(leaves) == 1:
        return leaves[0]
    store_failures = [e for e in leaves if isinstance(e, StoreError)]
    if store_failures:   # the first failure, not the writes refused after it
        return next((e for e in store_failures if not isinstance(e, StoreBroken)),
                    store_failures[0])
    errors = [e for e in leaves if isinstance(e, CellseqError)]
    if errors and len(errors) == len(leaves):
        return CellseqError("; ".join(str(e) for e in errors))
    return group


def _leaves(group: BaseExceptionGroup):
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            yield from _leaves(exc)
        else:
            yield exc


def _cell_info(cell: Cell) -> dict[str, object]:
    """What the analysis needs to know of a cell, stored with the run so it reads only the store."""
    info: dict[str, object] = {"kind": cell.kind.value, "electrolyte": cell.electrolyte,
                               "thickness_m": cell.thickness, "area_m2": cell.membrane_area_m2,
                               "electrode_area_m2": cell.electrode_area_m2}
    if cell.cathode is not None:
        info.update(cathode=cell.cathode.material, active_mass_kg=cell.cathode.active_mass_kg,
                    capacity_Ah=cell.cathode.capacity_Ah, anode=cell.anode,
                    np_ratio=cell.np_ratio)
    return info


def _claim_run_dir(run_dir: Path) -> None:
    """Make the new run's directory; an existing one must be empty (or hold only the lock
    file of a run killed before it wrote anything)."""
    try:
        if run_dir.exists() or run_dir.is_symlink():
            if not run_dir.is_dir():
                raise RunDirError(f"--out {run_dir}: a file is in its place; choose a new"
                                  " --out directory")
            if any(p.name != RUN_LOCK for p in run_dir.iterdir()):
                raise RunDirError(f"{run_dir} exists and is not empty; choose a new --out"
                                  " directory")
        run_dir.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise RunDirError(f"--out {run_dir}: cannot be made, a file stands in its path"
                          ) from None
    except OSError as exc:
        raise RunDirError(f"cannot make the run directory {run_dir}:"
                          f" {exc.strerror or exc}") from None


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "platform": sys.platform}
    for name in _PACKAGES:
        try:
            out[name] = _version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _version(name: str) -> str:
    """``importlib.metadata.version(name)``, from the metadata's header alone: ``version()``
    parses the whole file as an e-mail, long description included (numpy's and pandas' are
    tens of kB), which cost more than the rest of a small run's set-up."""
    dist = metadata.distribution(name)
    text = dist.read_text("METADATA") or dist.read_text("PKG-INFO") or ""
    version = HeaderParser().parsestr(text.partition("\n\n")[0])["Version"]
    return str(version) if version is not None else metadata.version(name)


__all__ = ["MANIFEST", "STATION_COPY", "RunDirError", "RunOutcome", "prepare", "resume_run",
           "run_simulated"]
