"""How the executor calls an instrument: directly, or in a worker thread when its I/O blocks.

A driver whose every call returns at once (the in-process simulators) is called in the run's
own task; one that waits on a link (``blocking_io``) is called in a worker thread, so the other
cells' tasks go on meanwhile.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import trio

from drivers.interfaces import Chamber, MultiChannelInstrument

#: Runs one function of an instrument and returns what it returned.
Call = Callable[[Callable[[], Any]], Awaitable[Any]]


def caller_for(instrument: MultiChannelInstrument | Chamber) -> Call:
    """The way to call ``instrument`` (see the module's docstring)."""
    if instrument.blocking_io:
        async def in_thread(fn: Callable[[], Any]) -> Any:
            return await trio.to_thread.run_sync(fn)
        return in_thread

    async def direct(fn: Callable[[], Any]) -> Any:
        return fn()
    return direct
