"""The one clock everything waits on: wall time on hardware, virtual time in dry runs.

Both run under trio; a dry run passes ``trio.testing.MockClock(autojump_threshold=0)``, which
jumps to the next deadline whenever every task waits, so a 1200 h run takes seconds.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    import trio.testing


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

    def start(self) -> None:  # noqa: B027 - most clocks need no start
        """Called once inside the event loop, before the first ``now()``."""

    @contextmanager
    def frozen(self) -> Iterator[None]:
        """Stop virtual time while the block waits for something outside the run (a paused
        run waits for the user); wall time goes on regardless."""
        yield


def _mock_clock() -> type[trio.testing.MockClock]:
    """trio's MockClock, which ``import trio`` has already loaded: ``trio.testing``, its public
    home, also loads pytest's helpers when pytest is installed (0.08 s at the start of every
    dry run)."""
    try:
        from trio._core import MockClock
    except ImportError:  # a trio that moved it: its public name
        from trio.testing import MockClock
    return MockClock


class TrioClock(Clock):
    """Reads trio's clock; call :meth:`start` inside ``trio.run``."""

    def __init__(self, virtual: bool, origin_utc: float | None = None, offset_s: float = 0.0):
        self.virtual = virtual
        self.origin_utc = time.time() if origin_utc is None else origin_utc
        self._offset = offset_s   # a resumed run continues its time base
        self._t0: float | None = None
        self._mock: trio.testing.MockClock | None = None

    def trio_clock(self) -> trio.abc.Clock | None:
        if self.virtual and self._mock is None:
            self._mock = _mock_clock()(autojump_threshold=0)
        return self._mock

    @contextmanager
    def frozen(self) -> Iterator[None]:
        # Autojump with nothing scheduled would spin: hold it off until the block ends.
        if self._mock is None:
            yield
            return
        self._mock.autojump_threshold = math.inf
        try:
            yield
        finally:
            self._mock.autojump_threshold = 0

    def start(self) -> None:
        if self._mock is not None:
            # Virtual time starts at the offset itself, so run time and trio time are the same
            # float: a resumed dry run then wakes at exactly the moments the first run did.
            self._mock.jump(self._offset - trio.current_time())
            self._offset, self._t0 = 0.0, 0.0
        else:
            self._t0 = trio.current_time()

    def now(self) -> float:
        if self._t0 is None:
            raise RuntimeError("TrioClock.start() must be called inside trio.run first")
        return trio.current_time() - self._t0 + self._offset

    async def sleep_until(self, t: float) -> None:
        await trio.sleep_until(self.trio_deadline(t))

    def trio_deadline(self, t: float) -> float:
        if self._t0 is None:
            raise RuntimeError("TrioClock.start() must be called inside trio.run first")
        return self._t0 + t - self._offset


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
