"""Run a function for each of several items, each in a fresh forked process of its own.

Why a process per item, not a pool of long-lived workers: what a process allocates it does not
give back to the system while it lives (freed memory stays with the allocator, in pieces), so a
worker that analyses cell after cell grows with the run. A process forked for one item ends with
it: the memory of the report follows the largest cell, never the whole run. The fork is cheap
next to an item (a few ms against tenths of a second), and everything the parent has loaded
(the run's index, imported modules) the child has without pickling.

Only where ``fork`` exists (Linux, macOS): :func:`can_fork` says; elsewhere the caller runs the
items in its own process.
"""

from __future__ import annotations

import gc
import multiprocessing
from collections.abc import Callable, Hashable, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any

from analysis.errors import AnalysisError


def can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


def run_forked(function: Callable[[Any], Any], items: Sequence[Hashable], processes: int,
               what: str = "item") -> dict[Hashable, Any]:
    """``{item: function(item)}``, each call in a process of its own, at most ``processes``
    at a time, started in the order of ``items`` (put the longest first). An exception in a
    call is raised here; a process that ends without an answer (killed, out of memory) is an
    :class:`AnalysisError` naming its ``what`` and item. ``function`` runs in the child and
    must return something picklable."""
    context = multiprocessing.get_context("fork")
    waiting = list(items)
    running: dict[Connection, tuple[Any, Hashable]] = {}
    done: dict[Hashable, Any] = {}
    # the collector leaves the parent's objects alone in the children: were it to visit
    # them, it would write to every page they are on, and each child would copy them all
    gc.freeze()
    try:
        while waiting or running:
            while waiting and len(running) < max(1, processes):
                item = waiting.pop(0)
                receive, send = context.Pipe(duplex=False)
                process = context.Process(target=_child, args=(send, function, item),
                                          daemon=True)
                process.start()
                send.close()
                running[receive] = (process, item)
            for connection in wait(list(running)):
                process, item = running.pop(connection)   # type: ignore[index]
                try:
                    ok, answer = connection.recv()   # type: ignore[union-attr]
                except EOFError:
                    process.join()
                    raise AnalysisError(f"the analysis of {what} {item} ended without an"
                                        f" answer (its process exited with code"
                                        f" {process.exitcode})") from None
                finally:
                    connection.close()   # type: ignore[union-attr]
                process.join()
                if not ok:
                    raise answer
                done[item] = answer
    finally:
        for connection, (process, _) in running.items():   # after an error: stop the rest
            process.terminate()
            process.join()
            connection.close()
        gc.unfreeze()
    return done


def _child(send: Connection, function: Callable[[Any], Any], item: Hashable) -> None:
    try:
        answer: tuple[bool, Any] = (True, function(item))
    except BaseException as exc:   # sent to the parent, which raises it
        answer = (False, exc)
    send.send(answer)
    send.close()
