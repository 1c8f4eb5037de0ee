"""Virtual time for dry runs: trio's clock jumps to the next wake-up whenever every task waits.

trio's ``MockClock(autojump_threshold=0)`` does this too, but a dry run sleeps tens of
thousands of times and each of its sleeps costs about 20 us: the clock jumps in one pass of
trio's loop and the sleeper wakes in the next, and waking it means cancelling a cancel scope at
its deadline (a ``Cancelled`` exception raised and caught). :class:`VirtualTime` is a trio
clock that jumps in the pass where trio finds every task waiting, and its
:class:`VirtualAlarm` parks the sleeping task and reschedules it when its time comes, with no
cancel scope at all: a sleep costs one pass and about 4 us.

What stays as it was: time moves only when no task can run (trio asks the clock how long to
wait for I/O only then); it moves to the earliest of every alarm and every trio deadline, by
the same floating-point steps as ``MockClock``'s jumps (so a resumed run wakes at the very
same floats); a waiting task is cancelled as in any trio wait (Ctrl-C, a nursery's
cancellation); :meth:`VirtualTime.freeze` stops the jumps while the run waits for something
outside it. Unlike ``MockClock``, a clock with nothing scheduled waits for I/O instead of
spinning.
"""

from __future__ import annotations

import heapq
import itertools
import math

import trio

#: What trio is told to wait for I/O when nothing is scheduled (trio caps it at a day).
_FOREVER_S = 86400.0


class VirtualAlarm:
    """A wake-up at a moment of virtual time; :meth:`ring` wakes its waiter early. Made by
    :meth:`VirtualTime.alarm`, waited for once."""

    __slots__ = ("_clock", "_task", "rung", "t")

    def __init__(self, clock: VirtualTime, t: float) -> None:
        self._clock, self.t = clock, t
        self._task: trio.lowlevel.Task | None = None
        #: rung before its time (the waiter woke early, or will not wait at all)
        self.rung = False

    async def wait(self) -> None:
        """Wait until the alarm's time, or until it is rung (at once if it was)."""
        if self.rung or self.t <= self._clock.now:
            await trio.lowlevel.checkpoint()
            return
        self._task = trio.lowlevel.current_task()
        self._clock.park(self)

        def abort(_: object) -> trio.lowlevel.Abort:
            self._task = None   # its heap entry is dropped when it comes to the top
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)

    def ring(self) -> None:
        self.rung = True
        self.fire()

    def fire(self) -> None:
        """Wake the waiter, if it still waits."""
        task, self._task = self._task, None
        if task is not None:
            trio.lowlevel.reschedule(task)

    @property
    def waiting(self) -> bool:
        return self._task is not None


class VirtualTime(trio.abc.Clock):
    """trio's clock for a dry run (see the module's docstring); pass it to ``trio.run``."""

    def __init__(self, start_s: float = 0.0) -> None:
        #: the time now, in seconds; read it freely (it changes only between tasks' steps)
        self.now = start_s
        self._jumps = True
        self._alarms: list[tuple[float, int, VirtualAlarm]] = []
        self._order = itertools.count()

    def alarm(self, t: float) -> VirtualAlarm:
        return VirtualAlarm(self, t)

    def park(self, alarm: VirtualAlarm) -> None:
        heapq.heappush(self._alarms, (alarm.t, next(self._order), alarm))

    def next_alarm(self) -> float:
        """The time of the earliest alarm still waited for (inf if none)."""
        alarms = self._alarms
        while alarms and not alarms[0][2].waiting:
            heapq.heappop(alarms)
        return alarms[0][0] if alarms else math.inf

    def freeze(self, frozen: bool) -> None:
        """Stop (or allow again) the jumps: a paused run waits for the user, not for time."""
        self._jumps = not frozen

    # -- trio.abc.Clock --------------------------------------------------------------------

    def start_clock(self) -> None:
        """Nothing to start: time moves only by jumps."""

    def current_time(self) -> float:
        return self.now

    def deadline_to_sleep_time(self, deadline: float) -> float:
        """Called by trio's loop when no task can run: jump to the earliest alarm or trio
        deadline, wake the alarms due, and tell trio not to wait (it then expires its
        deadlines due and runs the woken tasks, in this same pass)."""
        if not self._jumps:
            return 0.0 if deadline <= self.now else _FOREVER_S
        target = min(deadline, self.next_alarm())
        if target == math.inf:
            return _FOREVER_S   # nothing scheduled: only I/O (a thread, a signal) can come
        while self.now < target:   # MockClock's jump, then again if rounding fell short
            self.now += target - self.now
        alarms = self._alarms
        while alarms and alarms[0][0] <= self.now:
            heapq.heappop(alarms)[2].fire()
        return 0.0
