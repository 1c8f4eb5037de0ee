"""The dry run's virtual time: jumps when every task waits, alarms rung early, cancellation,
and the same floats as trio's MockClock."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
import trio
import trio.testing

from drivers.clock import TrioClock
from drivers.virtual_time import VirtualTime


def test_sleepers_wake_in_time_order_at_their_own_times():
    clock = TrioClock(virtual=True, origin_utc=0.0)
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, times: list[float]) -> None:
        for t in times:
            await clock.sleep_until(t)
            woke.append((name, clock.now()))

    async def main() -> None:
        clock.start()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sleeper, "a", [5.0, 7.5, 30.0])
            nursery.start_soon(sleeper, "b", [1.0, 20.0])

    trio.run(main, clock=clock.trio_clock())
    assert woke == [("b", 1.0), ("a", 5.0), ("a", 7.5), ("b", 20.0), ("a", 30.0)]


def test_alarms_and_trio_deadlines_share_one_time():
    """A trio deadline (a cancel scope's, a trio.sleep) and an alarm fire in time order."""
    clock = TrioClock(virtual=True, origin_utc=0.0)
    seen: list[tuple[str, float]] = []

    async def by_scope() -> None:
        with trio.move_on_at(3.0):
            await trio.sleep_forever()
        seen.append(("scope", clock.now()))
        await trio.sleep(4.0)
        seen.append(("trio.sleep", clock.now()))

    async def by_alarm() -> None:
        await clock.sleep_until(2.0)
        seen.append(("alarm", clock.now()))
        await clock.sleep_until(5.0)
        seen.append(("alarm", clock.now()))

    async def main() -> None:
        clock.start()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(by_scope)
            nursery.start_soon(by_alarm)

    trio.run(main, clock=clock.trio_clock())
    assert seen == [("alarm", 2.0), ("scope", 3.0), ("alarm", 5.0), ("trio.sleep", 7.0)]


def test_time_stands_while_a_task_can_run():
    clock = TrioClock(virtual=True, origin_utc=0.0)
    seen: list[float] = []

    async def busy() -> None:
        for _ in range(50):
            await trio.lowlevel.checkpoint()
            seen.append(clock.now())

    async def main() -> None:
        clock.start()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(busy)
            nursery.start_soon(clock.sleep_until, 10.0)
        seen.append(clock.now())

    trio.run(main, clock=clock.trio_clock())
    assert seen == [0.0] * 50 + [10.0]


def test_a_rung_alarm_wakes_its_waiter_early_and_leaves_the_time_alone():
    clock = TrioClock(virtual=True, origin_utc=0.0)
    seen: list[tuple[str, float]] = []

    async def main() -> None:
        clock.start()
        alarm = clock.alarm(100.0)

        async def ringer() -> None:
            await clock.sleep_until(4.0)
            alarm.ring()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(ringer)
            await alarm.wait()
            seen.append(("woke", clock.now()))
        # the rung alarm is no wake-up any more: the next one is the only one
        await clock.sleep_until(6.0)
        seen.append(("slept", clock.now()))
        rung = clock.alarm(50.0)
        rung.ring()
        await rung.wait()   # rung before: returns at once
        seen.append(("rung before", clock.now()))

    trio.run(main, clock=clock.trio_clock())
    assert seen == [("woke", 4.0), ("slept", 6.0), ("rung before", 6.0)]


def test_a_waiting_alarm_is_cancelled_like_any_trio_wait():
    clock = TrioClock(virtual=True, origin_utc=0.0)
    seen: list[float] = []

    async def main() -> None:
        clock.start()
        with trio.move_on_at(3.0):
            await clock.sleep_until(10.0)
        seen.append(clock.now())
        await clock.sleep_until(12.0)   # the cancelled alarm at 10 s wakes nothing
        seen.append(clock.now())

    trio.run(main, clock=clock.trio_clock())
    assert seen == [3.0, 12.0]


def test_an_error_in_another_task_cancels_a_sleeper():
    clock = TrioClock(virtual=True, origin_utc=0.0)

    async def fails() -> None:
        await clock.sleep_until(1.0)
        raise ValueError("boom")

    async def main() -> None:
        clock.start()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(clock.sleep_until, 1e9)
            nursery.start_soon(fails)

    with pytest.raises(ExceptionGroup) as caught:
        trio.run(main, clock=clock.trio_clock())
    assert [repr(e) for e in caught.value.exceptions] == ["ValueError('boom')"]


def test_a_frozen_clock_waits_for_io_instead_of_jumping():
    """While frozen, a thread's answer (wall time) comes before any jump."""
    clock = TrioClock(virtual=True, origin_utc=0.0)
    seen: list[tuple[str, float]] = []

    async def main() -> None:
        clock.start()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(clock.sleep_until, 60.0)
            with clock.frozen():
                await trio.to_thread.run_sync(lambda: None)
                seen.append(("thread", clock.now()))
            await clock.sleep_until(1.0)
            seen.append(("slept", clock.now()))
        seen.append(("end", clock.now()))

    trio.run(main, clock=clock.trio_clock())
    assert seen == [("thread", 0.0), ("slept", 1.0), ("end", 60.0)]


def test_nothing_scheduled_counts_the_alarms():
    clock = TrioClock(virtual=True, origin_utc=0.0)
    seen: list[bool] = []

    async def main() -> None:
        clock.start()
        seen.append(clock.nothing_scheduled())
        async with trio.open_nursery() as nursery:
            nursery.start_soon(clock.sleep_until, 5.0)
            await trio.lowlevel.checkpoint()   # the sleeper parks its alarm
            await trio.lowlevel.checkpoint()
            seen.append(clock.nothing_scheduled())

    trio.run(main, clock=clock.trio_clock())
    assert seen == [True, False]


def test_a_resumed_clock_starts_at_its_offset():
    clock = TrioClock(virtual=True, origin_utc=0.0, offset_s=1234.5)
    seen: list[float] = []

    async def main() -> None:
        clock.start()
        seen.append(clock.now())
        await clock.sleep_until(1300.25)
        seen.append(clock.now())

    trio.run(main, clock=clock.trio_clock())
    assert seen == [1234.5, 1300.25]


@pytest.mark.parametrize(("start", "targets"), [
    (0.0, [0.1, 0.30000000000000004, 1 / 3, 3600.0, 3600.000000001, 7e5]),
    (0.03257869615086578, [0.971018, 1.5]),               # a jump lands past its target
    (9733.06016427841, [88666.44142010629, 1e5]),         # a jump falls short: once more
    (1.8380551059441032e-09, [9.837205243942953e-09, 1e-3]),
])
def test_wake_times_are_the_floats_mock_clock_gives(start: float, targets: list[float]):
    """The jumps take MockClock's floating-point steps, so stored times stay bit for bit what
    they were with it (and a resumed run wakes at the same floats as the first)."""

    async def walk(now: Callable[[], float], sleep_until: Callable[[float], Awaitable[None]],
                   out: list[float]) -> None:
        for t in targets:
            await sleep_until(t)
            out.append(now())

    mock_times: list[float] = []

    async def with_mock() -> None:
        mock.jump(start)
        await walk(trio.current_time, trio.sleep_until, mock_times)

    mock = trio.testing.MockClock(autojump_threshold=0)
    trio.run(with_mock, clock=mock)

    ours: list[float] = []
    clock = VirtualTime(start)

    async def with_ours() -> None:
        await walk(lambda: clock.now, lambda t: clock.alarm(t).wait(), ours)

    trio.run(with_ours, clock=clock)
    assert [t.hex() for t in ours] == [t.hex() for t in mock_times]
