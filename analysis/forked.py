"""Run a function for each of several items in forked processes, each process ending once it
has grown.

Why processes that end, not a pool of long-lived workers: what a process allocates it does
not give back to the system while it lives (freed memory stays with the allocator, in pieces),
so a worker that analyses cell after cell grows with the run. A forked process takes items
one after another only while it has grown by less than ``grow_limit_mb`` since it was forked;
the item that takes it past that is its last, and a fresh process takes the next. The memory of
a process follows that limit and the largest item, never the whole run. Without a limit, each
item has a process of its own. Everything the parent has loaded (the run's index, imported
modules) the children have without pickling.

Why not a process per item always: a fork costs the parent some 10-30 ms (its page tables,
more the larger it is) and the child as much again in pages copied as it writes to them; for
a run of many small cells that is a tenth of the report's time.

Only where ``fork`` exists (Linux, macOS): :func:`can_fork` says; elsewhere the caller runs the
items in its own process.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
from collections.abc import Callable, Hashable, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any

from analysis.errors import AnalysisError

_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


def run_forked(function: Callable[[Any], Any], items: Sequence[Hashable], processes: int,
               what: str = "item", grow_limit_mb: float | None = None,
               more_items: Callable[[], bool] | None = None) -> dict[Hashable, Any]:
    """``{item: function(item)}``, in at most ``processes`` forked processes at a time, the
    items handed out in the order of ``items`` (put the longest first) to whichever process
    is free. A process takes another item while its resident memory has grown by less than
    ``grow_limit_mb`` since it was forked (None: one item per process). An exception in a
    call is raised here; a process that ends without an answer (killed, out of memory) is an
    :class:`AnalysisError` naming its ``what`` and item. ``function`` runs in the child and
    must return something picklable. ``more_items``: asked before each item is handed out;
    once it says False, no item is (the processes finish the items they have, and those not
    handed out are not in the answer)."""
    context = multiprocessing.get_context("fork")
    waiting = list(items)
    running: dict[Connection, tuple[Any, Hashable]] = {}
    done: dict[Hashable, Any] = {}
    # the collector leaves the parent's objects alone in the children: were it to visit
    # them, it would write to every page they are on, and each child would copy them all
    # (a caller that froze them already unfreezes them itself)
    frozen_before = gc.get_freeze_count() > 0
    gc.freeze()
    try:
        while waiting or running:
            while waiting and len(running) < max(1, processes):
                if more_items is not None and not more_items():
                    waiting.clear()
                    break
                item = waiting.pop(0)
                parent_end, child_end = context.Pipe(duplex=True)
                process = context.Process(target=_child,
                                          args=(child_end, function, item, grow_limit_mb),
                                          daemon=True)
                process.start()
                child_end.close()
                running[parent_end] = (process, item)
            if not running:   # nothing more was handed out
                break
            for connection in wait(list(running)):
                process, item = running.pop(connection)   # type: ignore[index]
                try:
                    ok, answer, more = connection.recv()   # type: ignore[union-attr]
                except EOFError:
                    connection.close()   # type: ignore[union-attr]
                    process.join()
                    raise AnalysisError(f"the analysis of {what} {item} ended without an"
                                        f" answer (its process exited with code"
                                        f" {process.exitcode})") from None
                if not ok:
                    running[connection] = (process, item)   # stopped with the others below
                    raise answer
                done[item] = answer
                if more and waiting and more_items is not None and not more_items():
                    waiting.clear()
                if more and waiting:   # the same process takes the next item
                    item = waiting.pop(0)
                    connection.send(item)   # type: ignore[union-attr]
                    running[connection] = (process, item)
                    continue
                if more:   # nothing more for it: it ends
                    connection.send(None)   # type: ignore[union-attr]
                connection.close()   # type: ignore[union-attr]
                process.join()
    finally:
        for connection, (process, _) in running.items():   # after an error: stop the rest
            process.terminate()
            process.join()
            connection.close()
        if not frozen_before:
            gc.unfreeze()
    return done


def _child(connection: Connection, function: Callable[[Any], Any], item: Hashable,
           grow_limit_mb: float | None) -> None:
    start = _resident_bytes()
    while item is not None:
        try:
            answer: tuple[bool, Any] = (True, function(item))
        except BaseException as exc:   # sent to the parent, which raises it
            answer = (False, exc)
        more = grow_limit_mb is not None and answer[0] and start is not None and \
            (_resident_bytes() or 0) - start < grow_limit_mb * 1e6
        connection.send((*answer, more))
        if not more:
            break
        try:
            item = connection.recv()
        except EOFError:
            break
    connection.close()


def _resident_bytes() -> int | None:
    """This process's resident memory now (Linux), None where it cannot be read."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE_BYTES
    except (OSError, ValueError, IndexError):
        return None
