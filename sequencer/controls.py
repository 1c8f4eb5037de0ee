"""Pause, continue and stop from outside the run's process (the dashboard), for one cell or
the whole run, through the same paths as Ctrl-C and resume.

Another process asks by writing a small JSON file into the run directory's ``controls/``
folder (:func:`write_request`: written under a temporary name, then renamed, so the run never
reads half a request). The run's process looks there every ``CHECK_EVERY_S`` of wall time,
from a worker thread, so neither virtual time nor a paused run's frozen clock is disturbed;
each request is applied, journalled (``control_request``: what was asked, by whom, from where,
and what the run did about it) and its file removed. A file rather than a row of the run
store: a dry run's store holds its write lock between grouped commits, so a second writer
could wait for seconds.

What each request does:

- **pause the run**: the path of Ctrl-C once (:meth:`Executor.pause`): every cell stops at its
  next step boundary, outputs idle between steps; **continue the run**: the path of Enter
  after it (:meth:`Executor.unpause`), and it releases every cell paused on its own too;
- **stop the run**: the path of Ctrl-C twice: every output off, the cells ``aborted``, the run
  ``interrupted``, ``cellseq resume`` continues it;
- **pause a cell**: that cell stops at its next step boundary while the others run on;
- **stop a cell**: that cell's output goes off now, mid-step (what it recorded is stored), and
  it waits; **continue a cell**: it goes on, and an interrupted step carries on under its
  ``on_resume`` policy, exactly as after a resume (continue for the time left, restart, skip).

:class:`~sequencer.pause.Holds` is the executor's side: which cells are held and which wait at
a hold. The executor's :class:`~sequencer.pause.PauseControl` owns it (``Executor.holds``); it
is the one piece of the executor the controls touch.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import trio
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from drivers.errors import CellseqError

if TYPE_CHECKING:
    from sequencer.executor import Executor

CONTROL_DIR = "controls"
#: How often the run looks for requests (wall time).
CHECK_EVERY_S = 0.2
#: A request file is a few hundred bytes; anything larger is not one.
MAX_REQUEST_BYTES = 4096

Action = Literal["pause", "continue", "stop"]


class ControlError(CellseqError):
    """A control request cannot be made (no process runs the run, a bad argument)."""


class ControlRequest(BaseModel):
    """What a request file holds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Action
    cell: str | None = Field(default=None, min_length=1, max_length=200)
    who: str = Field(min_length=1, max_length=80)
    address: str = Field(max_length=100)
    asked_utc: float

    def describe(self) -> str:
        target = f"cell {self.cell}" if self.cell else "the run"
        return f"{self.action} {target}, asked by {self.who} ({self.address})"


def control_dir(run_dir: Path) -> Path:
    return Path(run_dir) / CONTROL_DIR


def write_request(run_dir: Path, action: Action, cell: str | None, who: str,
                  address: str) -> str:
    """Leave a request for the process running ``run_dir``; returns its id (the journal's
    ``control_request`` event names it). Raises ControlError on a bad argument."""
    try:
        request = ControlRequest(action=action, cell=cell, who=who, address=address,
                                 asked_utc=time.time())
    except ValidationError as exc:
        raise ControlError(f"bad control request: {_first_error(exc)}") from None
    folder = control_dir(run_dir)
    folder.mkdir(exist_ok=True)
    request_id = f"{time.time_ns():020d}-{secrets.token_hex(4)}"
    part = folder / f".{request_id}.part"
    part.write_text(request.model_dump_json(), encoding="utf-8")
    os.replace(part, folder / f"{request_id}.json")
    return request_id


def read_request(path: Path) -> ControlRequest:
    """A request file, or ControlError saying why it is not one."""
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_REQUEST_BYTES + 1)
    except OSError as exc:
        raise ControlError(f"cannot be read: {exc.strerror or exc}") from None
    if len(raw) > MAX_REQUEST_BYTES:
        raise ControlError(f"larger than {MAX_REQUEST_BYTES} bytes")
    try:
        return ControlRequest.model_validate_json(raw)
    except ValidationError as exc:
        raise ControlError(_first_error(exc)) from None


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "request"
    return f"{where}: {err['msg']}"


# -- carrying requests out ------------------------------------------------------------------

def apply_request(executor: Executor, request: ControlRequest, request_id: str) -> None:
    """Carry out a request and journal it with what the run did about it. Raises
    KeyboardInterrupt for a stop of the whole run (the path of Ctrl-C twice)."""
    holds = executor.holds
    who = f"{request.who} ({request.address})"
    response, refused = _response(executor, request)
    executor.journal.event(request.cell, "control_request",
                           f"{request.describe()}: {response}", request=request_id,
                           action=request.action, target=request.cell, who=request.who,
                           address=request.address, refused=refused, response=response)
    if refused:
        return
    if request.cell is None:
        if request.action == "pause":
            executor.pause()
        elif request.action == "continue":
            released = sorted(holds.cells_held)
            for cell in released:
                holds.release_cell(cell)
            executor.unpause()
        else:
            executor.interrupted = True
            executor.stop_reason = f"stopped by {who} from the dashboard"
            raise KeyboardInterrupt
        return
    cell = request.cell
    if request.action == "continue":
        holds.release_cell(cell)
        executor.journal.event(cell, "cell_continued", f"{cell} goes on ({who})")
    else:
        holds.hold_cell(cell, f"{request.action} asked by {who}",
                        stop_now=request.action == "stop")


def _response(executor: Executor, request: ControlRequest) -> tuple[str, bool]:
    """What the run does about a request, and whether it refuses it."""
    holds = executor.holds
    if request.cell is None:
        if request.action == "pause":
            if holds.run_held:
                return "the run is already paused", True
            return "every cell stops at its next step boundary", False
        if request.action == "continue":
            if not holds.run_held and not holds.cells_held:
                return "nothing is paused", True
            return "the run goes on", False
        return "the run stops: every output off, the cells aborted; cellseq resume" \
               " continues it", False
    run = executor.runs.get(request.cell)
    if run is None:
        return f"there is no cell {request.cell!r} in this run", True
    if run.state in ("completed", "faulted"):
        return f"{request.cell} has {run.state}; there is nothing to {request.action}", True
    if request.action == "continue":
        if holds.run_held:
            return "the whole run is paused: continue the run", True
        if request.cell not in holds.cells_held:
            return f"{request.cell} is not paused", True
        return f"{request.cell} goes on", False
    if request.action == "pause":
        if holds.holds(request.cell):
            return f"{request.cell} is already paused", True
        return f"{request.cell} stops at its next step boundary; the others run on", False
    return f"{request.cell}'s output goes off now; continuing it carries its step on under" \
           " the step's resume policy", False


async def watch_requests(executor: Executor, run_dir: Path) -> None:
    """The run's side: take the requests other processes leave in ``controls/``, oldest
    first, until cancelled. Requests left before this process started are not carried out
    (they are journalled as refused)."""
    folder = control_dir(run_dir)
    started = time.time()
    stop = threading.Event()
    try:
        while True:
            found = await trio.to_thread.run_sync(_wait_for_files, folder, stop,
                                                  abandon_on_cancel=True)
            for path in found:
                request_id = path.stem
                try:
                    request = read_request(path)
                except ControlError as exc:
                    executor.journal.event(None, "control_refused", f"{path.name}: not a"
                                           f" control request ({exc})", request=request_id)
                else:
                    if request.asked_utc < started:
                        executor.journal.event(
                            request.cell, "control_request", f"{request.describe()}: refused:"
                            " asked before this run process started", request=request_id,
                            action=request.action, target=request.cell, who=request.who,
                            address=request.address, refused=True,
                            response="asked before this run process started")
                    else:
                        try:
                            apply_request(executor, request, request_id)
                        finally:
                            _remove(path)
                        continue
                _remove(path)
    finally:
        stop.set()


def _wait_for_files(folder: Path, stop: threading.Event) -> list[Path]:
    """In a worker thread: wait (wall time) until request files appear."""
    while not stop.is_set():
        try:
            found = sorted(p for p in folder.glob("*.json") if not p.name.startswith("."))
        except OSError:
            found = []
        if found:
            return found
        stop.wait(CHECK_EVERY_S)
    return []


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


__all__ = ["CONTROL_DIR", "ControlError", "ControlRequest", "apply_request",
           "control_dir", "read_request", "watch_requests", "write_request"]
