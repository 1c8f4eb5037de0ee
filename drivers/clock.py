"""The one clock everything waits on: wall time on hardware, virtual time in dry runs.

Both run under trio; a dry run passes :class:`~drivers.virtual_time.VirtualTime` to
``trio.run``, which jumps to the next wake-up whenever every task waits, so a 1200 h run takes
seconds.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

import trio

from drivers.virtual_time import VirtualTime


class Alarm(Protocol):
    """A wake-up at a moment of a clock's time that someone else may ring earlier."""

    async def wait(self) -> None:
        """Wait until the alarm's time, or until it is rung (at once if it was)."""

    def ring(self) -> None:
        """Wake the waiter now (or make its wait return at once)."""


class ScopeAlarm:
    """An :class:`Alarm` of a clock in wall time: a trio cancel scope, with the deadline
    where the clock can give one."""

    __slots__ = ("_clock", "_deadline", "_scope", "_t")

    def __init__(self, clock: Clock, t: float) -> None:
        self._clock, self._t = clock, t
        self._deadline = clock.trio_deadline(t)
        self._scope = trio.CancelScope() if self._deadline is None else \
            trio.CancelScope(deadline=self._deadline)

    async def wait(self) -> None:
        with self._scope:
            if self._deadline is None:
                await self._clock.sleep_until(self._t)
            else:
                await trio.sleep_forever()

    def ring(self) -> None:
        self._scope.cancel()


class Clock(ABC):
    """Seconds since the run's time origin, and the UTC epoch second of that origin."""

    origin_utc: float

    @abstractmethod
    def now(self) -> float: ...

    @abstractmethod
    async def sleep_until(self, t: float) -> None: ...

    def utc(self, t: float) -> float:
        return self.origin_utc + t

    def trio_deadline(self, t: float) -> float | None:
        """The trio time at which :meth:`sleep_until` ``(t)`` wakes, for a caller that waits in
        a cancel scope of its own with that deadline; None if this clock cannot say."""
        return None

    def alarm(self, t: float) -> Alarm:
        """A wake-up at ``t`` that can be rung earlier (a sleep that a chamber suspension or a
        stop request cuts short)."""
        return ScopeAlarm(self, t)

    def nothing_scheduled(self) -> bool:
        """Whether no task of the run can run and none waits for a time: only something
        from outside the run (the user, a request) can move it on."""
        stats = trio.lowlevel.current_statistics()
        return stats.tasks_runnable == 0 and stats.seconds_to_next_deadline == math.inf

    def start(self) -> None:  # noqa: B027 - most clocks need no start
        """Called once inside the event loop, before the first ``now()``."""

    @contextmanager
    def frozen(self) -> Iterator[None]:
        """Stop virtual time while the block waits for something outside the run (a paused
        run waits for the user); wall time goes on regardless."""
        yield


class TrioClock(Clock):
    """Reads trio's clock; call :meth:`start` inside ``trio.run``. ``virtual``: a dry run's
    time (pass :meth:`trio_clock` to ``trio.run``), else trio's own, in wall time."""

    def __init__(self, virtual: bool, origin_utc: float | None = None, offset_s: float = 0.0):
        self.virtual = virtual
        self.origin_utc = time.time() if origin_utc is None else origin_utc
        self._offset = offset_s   # a resumed run continues its time base
        self._t0: float | None = None
        # Virtual time starts at the offset itself, so run time and trio time are the same
        # float: a resumed dry run then wakes at exactly the moments the first run did.
        self._virtual = VirtualTime(offset_s) if virtual else None

    def trio_clock(self) -> trio.abc.Clock | None:
        return self._virtual

    @contextmanager
    def frozen(self) -> Iterator[None]:
        if self._virtual is None:
            yield
            return
        self._virtual.freeze(True)
        try:
            yield
        finally:
            self._virtual.freeze(False)

    def start(self) -> None:
        if self._virtual is None:
            self._t0 = trio.current_time()

    def now(self) -> float:
        if self._virtual is not None:
            return self._virtual.now
        if self._t0 is None:
            raise RuntimeError("TrioClock.start() must be called inside trio.run first")
        return trio.current_time() - self._t0 + self._offset

    async def sleep_until(self, t: float) -> None:
        if self._virtual is not None:
            await self._virtual.alarm(t).wait()
        else:
            await trio.sleep_until(self.trio_deadline(t))

    def trio_deadline(self, t: float) -> float:
        if self._virtual is not None:
            return t
        if self._t0 is None:
            raise RuntimeError("TrioClock.start() must be called inside trio.run first")
        return self._t0 + t - self._offset

    def alarm(self, t: float) -> Alarm:
        if self._virtual is not None:
            return self._virtual.alarm(t)
        return ScopeAlarm(self, t)

    def nothing_scheduled(self) -> bool:
        if self._virtual is not None and self._virtual.next_alarm() < math.inf:
            return False
        return super().nothing_scheduled()


class WallClock(Clock):
    """Wall time for runs on instruments, optionally faster (``speed`` run seconds per wall
    second, for instruments simulated on the wire at that speed). Readable from any thread:
    blocking drivers time their points with it from worker threads."""

    def __init__(self, speed: float = 1.0, origin_utc: float | None = None,
                 offset_s: float = 0.0) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be positive, not {speed}")
        self.speed = speed
        self.origin_utc = time.time() if origin_utc is None else origin_utc
        self._offset = offset_s   # a resumed run continues its time base
        self._m0 = time.monotonic()

    def now(self) -> float:
        return (time.monotonic() - self._m0) * self.speed + self._offset

    async def sleep_until(self, t: float) -> None:
        await trio.sleep(max(0.0, (t - self.now()) / self.speed))
