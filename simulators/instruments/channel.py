"""One simulated channel: runs a technique on a simulated cell, buffering points between polls.

The cell's response to a whole technique is known when it starts (a :class:`Segment`), so a poll
evaluates every point due since the last poll in one vectorised call, and the channel can say
when the technique will end: the sequencer sleeps until then instead of polling on a tick.

Where each point of the segment is computed on its own (:attr:`Segment.pointwise`), a poll
evaluates the points ahead of it too (up to :data:`AHEAD_POINTS`), noise included, so the next
polls of the step only slice: numpy's cost per call, not per point, dominates the few points a
poll brings. The noise streams are drawn in point order either way, and are put back to where
the points handed out leave them whenever that matters (a snapshot, a stop), so the data and a
resumed run are the same as when every poll draws its own points.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields, replace
from typing import Any

import numpy as np

from drivers.clock import Clock
from drivers.errors import DriverError
from drivers.interfaces import Channel, ChannelCapabilities, SafetyLimits
from drivers.points import ChannelState, Points, Readout
from drivers.techniques import (
    ConstantCurrent,
    ConstantPower,
    ConstantResistance,
    ConstantVoltage,
    EndConditions,
    Impedance,
    OpenCircuit,
    Profile,
    Technique,
    VoltageSweep,
)
from simulators.cells.base import CellModel, Segment
from simulators.cells.driven import begin_driven
from simulators.instruments import firmware

#: How many points a poll evaluates ahead at least, for the next polls of its step.
AHEAD_POINTS = 4096
#: Techniques a channel remembers having checked against its capabilities (a loop starts the
#: same few technique objects again and again).
CHECKED_KEPT = 64


class SimChannel(Channel):
    def __init__(self, name: str, clock: Clock, capabilities: ChannelCapabilities,
                 rng: np.random.Generator, voltage_noise_V: float = 50e-6,
                 current_noise_rel: float = 1e-4, current_noise_A: float = 1e-9,
                 eis_noise_rel: float = 1e-3) -> None:
        self.name = name
        self._clock, self._caps = clock, capabilities
        # One stream per measured quantity, each drawn in point order: the noise of a point
        # does not depend on how the points were split into polls.
        self._rng_v, self._rng_i, self._rng_zr, self._rng_zi = rng.spawn(4)
        self._v_noise = voltage_noise_V
        self._i_rel, self._i_abs = current_noise_rel, current_noise_A
        self._z_rel = eis_noise_rel
        self._cell: CellModel | None = None
        self._temperature: Callable[[np.ndarray], np.ndarray] | None = None
        self._temperature_now: Callable[[float], float] | None = None
        self._constant_C: float | None = None
        #: id -> technique that passed the capabilities' check (both are frozen: it would
        #: pass again); the technique is kept so that its id is not reused meanwhile
        self._checked: dict[int, Technique] = {}
        self._state = ChannelState.IDLE
        self._segment: Segment | None = None
        self._spectrum: Points | None = None
        self._t_start = 0.0
        self._duration = 0.0
        self._end_reason = ""
        self._times: np.ndarray = np.empty(0)  # record times of the running technique
        self._emitted = 0
        self._technique: Technique | None = None
        self._limits: SafetyLimits | None = None
        self._rng_at_start: list[dict[str, Any]] = []
        # points evaluated ahead of the polls: voltage and current with their noise, from point
        # ``_ahead_lo``; the voltage and current streams stand after point ``_ahead_hi``, and
        # were at ``_anchor`` (index, states) <= every point not yet handed out
        self._ahead: tuple[np.ndarray, np.ndarray] | None = None
        self._ahead_lo = self._ahead_hi = 0
        self._anchor: tuple[int, dict[str, Any], dict[str, Any]] | None = None
        self._scratch: tuple[np.random.Generator, np.random.Generator] | None = None
        self._cut_off_V: float | None = None

    def connect(self, cell: CellModel, temperature_C: Callable[[np.ndarray], np.ndarray],
                temperature_now_C: Callable[[float], float] | None = None,
                constant_C: float | None = None) -> None:
        """Put a simulated cell on this channel, in an environment of the given temperature
        (``temperature_now_C``: the same function for one time, without arrays, if there is
        one: a technique's start asks for one time; ``constant_C``: the one value both give,
        where the environment never changes: a poll's points then take it as it is, without
        calling the function on their times)."""
        self._cell, self._temperature = cell, temperature_C
        self._temperature_now = temperature_now_C
        self._constant_C = constant_C

    def _temperature_one(self, t: float) -> float:
        if self._temperature_now is not None:
            return float(self._temperature_now(t))
        assert self._temperature is not None
        return float(self._temperature(np.array([t]))[0])

    @property
    def connected(self) -> bool:
        return self._cell is not None

    @property
    def capabilities(self) -> ChannelCapabilities:
        return self._caps

    def start(self, technique: Technique) -> None:
        if self._state is ChannelState.RUNNING:
            raise DriverError(f"{self.name}: a technique is already running; stop it first")
        if self._cell is None or self._temperature is None:
            raise DriverError(f"{self.name}: no cell is connected to this channel")
        if self._checked.get(id(technique)) is not technique:
            self._caps.check(technique)
            if len(self._checked) >= CHECKED_KEPT:
                self._checked.clear()
            self._checked[id(technique)] = technique
        self._begin(technique, self._clock.now())
        self._state = ChannelState.RUNNING

    def set_safety_limits(self, limits: SafetyLimits) -> bool:
        self._limits = limits
        return True

    def running(self) -> Technique | None:
        return self._technique if self._state is ChannelState.RUNNING else None

    def read_voltage(self) -> float:
        """The terminal voltage now, noise-free (a disconnected channel floats to its rail)."""
        if self._cell is None or self._temperature is None:
            return self._caps.max_voltage_V
        now = self._clock.now()
        if self._state is ChannelState.RUNNING and self._segment is not None:
            v, _ = self._segment.sample(np.array([min(now - self._t_start, self._duration)]))
            return float(v[0])
        return float(self._cell.ocv_V(self._temperature_one(now)))

    def disconnect(self) -> None:
        """Take the cell off the channel (a test of what resume does with a missing cell)."""
        self.stop()
        self._cell = self._temperature = self._temperature_now = self._constant_C = None

    # -- snapshots: a resumed dry run continues exactly where the run store ends ------------

    def snapshot(self) -> dict[str, Any]:
        """Everything this channel and its cell hold, JSON-ready: the cell, the noise streams
        and, while a technique runs, the technique and how far it has been read."""
        snap: dict[str, Any] = {
            "state": self._state.value, "end_reason": self._end_reason,
            "rng": self._stream_states(),
            "cell": self._cell.state() if self._cell is not None else None,
        }
        if self._state is ChannelState.RUNNING and self._technique is not None:
            snap.update(technique={"type": type(self._technique).__name__,
                                   **_fields_of(self._technique)},
                        t_start=self._t_start, emitted=self._emitted)
            if self._rng_at_start:
                snap["rng_at_start"] = self._rng_at_start
        return snap

    def restore(self, snap: dict[str, Any], kept_running: bool = True) -> None:
        """Back to a snapshot. A technique that was running is rebuilt from its start (the
        cell's state then is the cell's state now: a running segment changes nothing until
        it finishes) and its points already read are skipped. ``kept_running=False`` is an
        instrument that lost power too: the technique ended at the last point read."""
        self._ahead, self._anchor = None, None
        if snap["cell"] is not None and self._cell is not None:
            self._cell.restore(snap["cell"])
        self._state, self._end_reason = ChannelState(snap["state"]), snap["end_reason"]
        self._segment = self._spectrum = self._technique = None
        if "technique" in snap:
            if "rng_at_start" in snap:   # an impedance: its noise is drawn when it starts
                for g, state in zip(self._streams(), snap["rng_at_start"], strict=True):
                    g.bit_generator.state = state
            self._begin(technique_from_dict(snap["technique"]), float(snap["t_start"]))
            self._emitted = int(snap["emitted"])
            self._state = ChannelState.RUNNING
            if not kept_running:
                read = self._times[self._emitted - 1] if self._emitted else 0.0
                self._finish(float(read))
                self._end_reason = "power lost"
                self._state = ChannelState.IDLE
        for g, state in zip(self._streams(), snap["rng"], strict=True):
            g.bit_generator.state = state

    def _streams(self) -> tuple[np.random.Generator, ...]:
        return self._rng_v, self._rng_i, self._rng_zr, self._rng_zi

    def _stream_states(self) -> list[dict[str, Any]]:
        """The streams' states as the points handed out so far leave them (the points
        evaluated ahead drew further: their draws are replayed on scratch generators)."""
        states = [g.bit_generator.state for g in self._streams()]
        if self._ahead is not None and self._ahead_hi != self._emitted:
            if self._scratch is None:
                self._scratch = (np.random.Generator(type(self._rng_v.bit_generator)(0)),
                                 np.random.Generator(type(self._rng_i.bit_generator)(0)))
            states[:2] = self._replayed(*self._scratch)
        return states

    def _replayed(self, gen_v: np.random.Generator, gen_i: np.random.Generator
                  ) -> list[dict[str, Any]]:
        """Put ``gen_v`` and ``gen_i`` where the voltage and current streams stand after the
        points handed out (from the anchor, drawing as many values as points), and return
        their states."""
        assert self._anchor is not None
        index, state_v, state_i = self._anchor
        gen_v.bit_generator.state, gen_i.bit_generator.state = state_v, state_i
        n = self._emitted - index
        if n:
            gen_v.standard_normal(n)   # the same draws as normal(0, scale, n)
            gen_i.standard_normal(n)
        return [gen_v.bit_generator.state, gen_i.bit_generator.state]

    def _drop_ahead(self) -> None:
        """Forget the points evaluated ahead, the streams back to after the last one handed
        out (a technique that ends before them never draws their noise)."""
        if self._ahead is not None and self._ahead_hi != self._emitted:
            self._replayed(self._rng_v, self._rng_i)
        self._ahead, self._anchor = None, None

    def _begin(self, technique: Technique, now: float) -> None:
        assert self._cell is not None and self._temperature is not None
        assert self._ahead is None, "the points evaluated ahead outlived their technique"
        # only an impedance draws its noise when it starts (a time series draws it point by
        # point): a rebuilt one needs the streams as they were then
        self._rng_at_start = ([g.bit_generator.state for g in self._streams()]
                              if isinstance(technique, Impedance) else [])
        self._technique = technique
        temperature = self._temperature_one(now)
        self._t_start, self._emitted = now, 0
        if isinstance(technique, Impedance):
            self._start_impedance(technique, temperature)
        else:
            if isinstance(technique, ConstantVoltage) and technique.vs_ocv:
                technique = replace(technique, vs_ocv=False, voltage_V=technique.voltage_V
                                    + self._cell.ocv_V(temperature))
            try:
                if isinstance(technique, ConstantPower | ConstantResistance | Profile):
                    seg = begin_driven(self._cell, technique, temperature)
                else:
                    seg = self._cell.begin(technique, temperature)
            except NotImplementedError as exc:
                raise DriverError(f"{self.name}: the simulated cell cannot run"
                                  f" {type(technique).__name__}: {exc}") from None
            self._segment, self._spectrum = seg, None
            self._duration, self._end_reason = seg.duration_s, seg.end_reason
            start, env = now, self._temperature
            early = firmware.extra_end(technique, seg, self._caps, self._limits,
                                       lambda t: env(start + t))
            # a condition met at the very time limit is what ended the step
            if early is not None and (early[0] < self._duration or (
                    early[0] <= self._duration and self._end_reason == "duration")):
                self._duration, self._end_reason = early
            self._times = firmware.record_times(technique, seg, self._duration)
            self._cut_off_V = _cut_off_at_once(technique, self._duration, self._end_reason)

    def _start_impedance(self, technique: Impedance, temperature: float) -> None:
        assert self._cell is not None
        f = technique.frequencies_Hz()
        z = self._cell.impedance(f, temperature)
        times = np.cumsum(technique.point_durations_s())
        scale = self._z_rel * np.abs(z)
        ocv = self._cell.ocv_V(temperature)
        n = len(f)
        self._spectrum = Points(
            time_s=times,
            voltage_V=ocv + self._rng_v.normal(0, self._v_noise, n),
            current_A=self._rng_i.normal(0, self._i_abs, n),
            frequency_Hz=f,
            z_real_ohm=z.real + self._rng_zr.normal(0, 1, n) * scale,
            z_imag_ohm=z.imag + self._rng_zi.normal(0, 1, n) * scale,
            temperature_C=np.asarray(self._temperature(self._t_start + times), dtype=float),
        )
        self._segment, self._times = None, times
        self._duration, self._end_reason = float(times[-1]), "completed"

    def poll(self) -> Readout:
        if self._state is not ChannelState.RUNNING:
            return Readout(Points.empty(), self._state, self._end_reason or None)
        now = self._clock.now()
        elapsed = now - self._t_start
        # compare absolute times: the executor wakes at exactly t_start + duration
        done = now >= self._t_start + self._duration
        upto = len(self._times) if done else int(self._times.searchsorted(elapsed, "right"))
        points = self._points(self._emitted, upto)
        self._emitted = upto
        if done:
            self._finish(self._duration)
            if self._end_reason in ("compliance", "safety_limit"):   # the output switched off
                self._state = ChannelState.FAULT
            return Readout(points, self._state, self._end_reason)
        return Readout(points, ChannelState.RUNNING,
                       next_event_s=self._t_start + self._duration)

    def peek(self) -> Readout | None:
        """:meth:`poll` without handing the points out, for a running time series whose points
        are evaluated ahead (:attr:`Segment.pointwise`): the points looked at stay in the
        points evaluated ahead, their noise drawn once, and the next poll hands out the same
        values. None for a technique at its end (the end is news: poll) or whose points are
        not kept ahead (an impedance, a cut-off met at once, a segment not pointwise)."""
        segment = self._segment
        if self._state is not ChannelState.RUNNING or segment is None \
                or not segment.pointwise or self._cut_off_V is not None:
            return None
        now = self._clock.now()
        end = self._t_start + self._duration
        if now >= end:
            return None
        upto = int(self._times.searchsorted(now - self._t_start, "right"))
        return Readout(self._points(self._emitted, upto), ChannelState.RUNNING,
                       next_event_s=end)

    def stop(self) -> None:
        if self._state is ChannelState.RUNNING:
            self._finish(min(self._clock.now() - self._t_start, self._duration))
            self._end_reason = "stopped"
        self._state = ChannelState.IDLE

    def _finish(self, elapsed: float) -> None:
        self._drop_ahead()
        if self._segment is not None:
            self._segment.finish(elapsed)
        self._segment = None
        self._state = ChannelState.DONE

    def _points(self, lo: int, hi: int) -> Points:
        if hi <= lo:
            return Points.empty()
        if self._spectrum is not None:
            return self._spectrum.select(np.arange(lo, hi))
        assert self._segment is not None and self._temperature is not None
        t = self._times[lo:hi]
        if self._cut_off_V is not None:   # see _cut_off_at_once
            v, i = self._noisy(t, at_V=self._cut_off_V)
        elif self._segment.pointwise:
            v, i = self._noisy_ahead(lo, hi)
        else:
            v, i = self._noisy(t)
        if hi == len(self._times) and self._end_reason in _TRIPS:
            v, i = _tripped_at(self._segment, self._duration, v, i)
        temperature = np.full(len(t), self._constant_C) if self._constant_C is not None \
            else np.asarray(self._temperature(self._t_start + t), dtype=float)
        return Points(time_s=t, voltage_V=v, current_A=i, temperature_C=temperature)

    def _noisy(self, t: np.ndarray, at_V: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Voltage and current at the record times ``t``, with the next noise of the streams
        (``at_V``: the voltage the points are at, in place of the segment's)."""
        assert self._segment is not None
        v, i = self._segment.sample(t)
        if at_V is not None:
            v = np.full_like(v, at_V)
        n = len(t)
        return (v + self._rng_v.normal(0, self._v_noise, n),
                i + self._rng_i.normal(0, 1, n) * (self._i_rel * np.abs(i) + self._i_abs))

    def _noisy_ahead(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`_noisy` of points ``lo`` to ``hi`` (``lo`` the first not handed out), from
        the points evaluated ahead, evaluating the next ones (at least
        :data:`AHEAD_POINTS`) when they run out."""
        if self._ahead is None or hi > self._ahead_hi:
            start = lo if self._ahead is None else self._ahead_hi
            if self._ahead is None or self._anchor is None:
                self._anchor = (start, self._rng_v.bit_generator.state,
                                self._rng_i.bit_generator.state)
            end = min(len(self._times), max(hi, lo + AHEAD_POINTS))
            v, i = self._noisy(self._times[start:end])
            if self._ahead is not None and start > lo:   # what is left of the last ones
                keep = slice(lo - self._ahead_lo, start - self._ahead_lo)
                v = np.concatenate((self._ahead[0][keep], v))
                i = np.concatenate((self._ahead[1][keep], i))
            self._ahead, self._ahead_lo, self._ahead_hi = (v, i), lo, end
        part = slice(lo - self._ahead_lo, hi - self._ahead_lo)
        return self._ahead[0][part], self._ahead[1][part]


#: End reasons where the firmware switched the output off on a reading beyond a limit.
_TRIPS = ("compliance", "safety_limit")


def _tripped_at(segment: Segment, end_s: float, v: np.ndarray, i: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """``v`` and ``i`` with their last point, the reading a limit tripped on, as the segment
    gives it at the step's end ``end_s``, where the firmware found it beyond the limit:
    measurement noise must not put the reading that tripped the output back inside the
    limit (the crossing is found to a hair, far less than the noise)."""
    v_end, i_end = segment.sample(np.array([end_s]))
    v, i = v.copy(), i.copy()
    v[-1], i[-1] = v_end[0], i_end[0]
    return v, i


def _cut_off_at_once(technique: Technique, duration_s: float, end_reason: str) -> float | None:
    """The cut-off a constant current ended on at its very start, else None.

    The cell models set the voltage under current at once (an overpotential with no double
    layer to charge), so a current into a cell at the end of its window (a pristine cathode
    discharged further) can put the first point far past the cut-off, past the cell's safety
    limit too. A real channel's voltage passes the cut-off on its way there, and the firmware
    stops the step at that reading: the one point such a step records is at the cut-off."""
    if duration_s == 0 and end_reason == "voltage" and isinstance(technique, ConstantCurrent):
        return technique.until_voltage_V
    return None


def _fields_of(technique: Technique | EndConditions) -> dict[str, Any]:
    """:func:`dataclasses.asdict` of a technique (its fields are numbers, strings, tuples of
    numbers and end conditions), without the deep copies it makes of each value."""
    out: dict[str, Any] = {}
    for f in fields(technique):
        value = getattr(technique, f.name)
        out[f.name] = _fields_of(value) if isinstance(value, EndConditions) else value
    return out


_TECHNIQUES = {t.__name__: t for t in (OpenCircuit, Impedance, ConstantCurrent, ConstantVoltage,
                                       VoltageSweep, ConstantPower, ConstantResistance, Profile)}


def technique_from_dict(data: dict[str, Any]) -> Technique:
    """A technique back from :meth:`SimChannel.snapshot` (only the known types)."""
    fields = dict(data)
    cls = _TECHNIQUES[fields.pop("type")]
    for name in ("vertices_V", "times_s", "values"):
        if name in fields:
            fields[name] = tuple(fields[name])
    if fields.get("ends") is not None:
        fields["ends"] = EndConditions(**fields["ends"])
    return cls(**fields)
