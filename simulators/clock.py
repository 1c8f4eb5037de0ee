"""A clock that moves only when told, for driving simulators outside an event loop (tests)."""

from __future__ import annotations

from drivers.clock import Clock


class ManualClock(Clock):
    def __init__(self, start_s: float = 0.0, origin_utc: float = 0.0) -> None:
        self._t = start_s
        self.origin_utc = origin_utc

    def now(self) -> float:
        return self._t

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("time can't go backwards")
        self._t += seconds

    async def sleep_until(self, t: float) -> None:
        self._t = max(self._t, t)
