"""A Neware BTS API server on the wire: XML over TCP, each channel cycling a simulated cell.

It speaks the subset of the BTS 8 API that cellseq uses, shaped like replies captured from a real
BTS 8.0 (aurora-neware's fixtures): ``connect``, ``getdevinfo``, ``getchlstatus``, ``inquire``,
``inquiredf``, ``start``, ``stop`` and ``download`` (whose reply is ``donwload_resp``, as the
real one spells it). Messages end with ``"\\n\\n#\\r\\n"`` both ways; replies are indented with
CR LF line ends inside, as BTS sends them. Every connection must log in first.

``start`` takes a step file: its XML as the element's text, or a path this process can read.
Steps run on the channel's :class:`~simulators.cells.base.CellModel` by
``begin`` / ``Segment.sample`` / ``finish``: CC charge/discharge (types 1/2, ``Stop_Volt``), CV
charge/discharge (3/19, ``Stop_Curr``; above the step's ``Curr`` limit the channel holds that
current first, so CV is CC-CV), rest (4), cycle (5: back to ``Start_Step``, ``Cycle_Count``
times) and end (6); ``Time`` limits a step. Points are recorded every ``Record/Main/Time`` of
step time and at each step's end (the ``Volt``/``Curr`` record criteria are not simulated), and
checked against ``Protect`` (voltage and current bounds): a breach ends the test as "protect".

The channels run on simulated time (``speed`` x wall time), advanced whenever a request looks at
them, so a test runs on with no client connected and keeps its data when clients come and go.

Faults (:class:`BtsFaults`, on ``server.faults``): ``delay_replies``, ``drop_next``,
``garbage_next``, ``refuse_next`` (the command's items answer ``false``) from the base server,
plus ``truncate_next`` (half a reply, then the connection closes) and ``trip_protect(channel)``.
"""

from __future__ import annotations

import asyncio
import math
import time
import weakref
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

import numpy as np

from drivers.techniques import ConstantCurrent, ConstantVoltage, OpenCircuit
from simulators.cells.base import CellModel, Segment, TimeSeriesTechnique
from simulators.wire.server import GARBAGE, Faults, LineServer

TERMINATOR = "\n\n#\r\n"
_TERMINATOR_BYTES = TERMINATOR.encode("ascii")
VOLT_SCALE, CURR_SCALE, TIME_SCALE = 10_000.0, 1_000.0, 1_000.0
MAX_DOWNLOAD = 1000
HORIZON_S = 1e7            # a step with no time limit runs at most this long
DEFAULT_RECORD_S = 10.0    # when a step file sets no record interval
_MAX_CHAINED = 10_000      # segments ended within one advance: more is a model that never moves
_STEP_NAMES = {1: "cc", 2: "dc", 3: "cv", 19: "cvd", 4: "rest"}


class BtsFaults(Faults):
    """The base server's faults, plus a cut-short reply and a protection trip."""

    def __init__(self) -> None:
        super().__init__()
        self._truncate = False
        self._trips: set[int] = set()

    def truncate_next(self) -> None:
        """Send only the first half of the next reply, then close the connection."""
        with self._lock:
            self._truncate = True

    def trip_protect(self, channel: int) -> None:
        """Channel ``channel`` (0-based) trips its protection when next looked at."""
        with self._lock:
            self._trips.add(channel)

    def clear(self) -> None:
        super().clear()
        with self._lock:
            self._truncate = False
            self._trips.clear()

    def _take_truncate(self) -> bool:
        with self._lock:
            truncate, self._truncate = self._truncate, False
            return truncate

    def _take_trip(self, channel: int) -> bool:
        with self._lock:
            if channel in self._trips:
                self._trips.discard(channel)
                return True
            return False


class StepFileError(ValueError):
    """A step file the simulated BTS cannot run."""


@dataclass(frozen=True)
class _Step:
    step_id: int
    step_type: int
    limits: dict[str, float]          # Limit/Main values in SI units (V, A, s)
    start_step: int = 0               # cycle steps
    cycle_count: int = 0


@dataclass(frozen=True)
class _StepFile:
    steps: dict[int, _Step]
    record_dt_s: float
    protect: dict[str, float]         # v_max, v_min, i_max, i_min (SI), where given


def parse_step_file(text: str) -> _StepFile:
    """The parts of a BTS 8 step file the simulator runs; :class:`StepFileError` otherwise."""
    if "<!DOCTYPE" in text.upper():
        raise StepFileError("a step file must not declare a DOCTYPE")
    try:
        config = ET.fromstring(text).find("config")
    except ET.ParseError as exc:
        raise StepFileError(f"not XML: {exc}") from None
    if config is None:
        raise StepFileError("no <config> element")

    def value(el: ET.Element | None, scale: float) -> float | None:
        if el is None:
            return None
        try:
            return float(el.get("Value", "")) / scale
        except ValueError:
            raise StepFileError(f"<{el.tag} Value={el.get('Value')!r}> is no number") from None

    record = value(config.find("Whole_Prt/Record/Main/Time"), TIME_SCALE) or DEFAULT_RECORD_S
    protect = {}
    for key, path, scale in (("v_max", "Volt/Upper", VOLT_SCALE),
                             ("v_min", "Volt/Lower", VOLT_SCALE),
                             ("i_max", "Curr/Upper", CURR_SCALE),
                             ("i_min", "Curr/Lower", CURR_SCALE)):
        found = value(config.find(f"Whole_Prt/Protect/Main/{path}"), scale)
        if found is not None:
            protect[key] = found
    scales = {"Curr": CURR_SCALE, "Volt": VOLT_SCALE, "Time": TIME_SCALE,
              "Stop_Volt": VOLT_SCALE, "Stop_Curr": CURR_SCALE}
    steps = {}
    info = config.find("Step_Info")
    for el in [] if info is None else info:
        try:
            step_id, step_type = int(el.get("Step_ID", "")), int(el.get("Step_Type", ""))
        except ValueError:
            raise StepFileError(f"<{el.tag}> has no integer Step_ID/Step_Type") from None
        if step_type not in (*_STEP_NAMES, 5, 6):
            raise StepFileError(f"step {step_id}: type {step_type} is not simulated")
        limits = {}
        for name, scale in scales.items():
            found = value(el.find(f"Limit/Main/{name}"), scale)
            if found is not None:
                limits[name] = found
        start = value(el.find("Limit/Other/Start_Step"), 1.0)
        count = value(el.find("Limit/Other/Cycle_Count"), 1.0)
        steps[step_id] = _Step(step_id, step_type, limits, int(start or 0), int(count or 0))
    if not steps:
        raise StepFileError("no steps in <Step_Info>")
    return _StepFile(steps, record, protect)


@dataclass
class _Point:
    seq: int
    t_s: float
    voltage_V: float
    current_A: float
    step_id: int
    cycle: int
    step_type: str
    cap_Ah: float
    eng_Wh: float


@dataclass
class _Test:
    """One test on one channel: the step file, where it is, and what it recorded."""

    testid: int
    barcode: str
    plan: _StepFile
    t0: float                                 # server time of the start
    points: list[_Point] = field(default_factory=list)
    step: _Step | None = None
    step_t0: float = 0.0                      # test time the step began
    stages: list[TimeSeriesTechnique] = field(default_factory=list)
    segment: Segment | None = None
    seg_t0: float = 0.0
    grid_k: int = 0                           # next record index within the step
    cycle: int = 1
    loops: dict[int, int] = field(default_factory=dict)   # cycle step id -> loops done
    cap_Ah: float = 0.0
    eng_Wh: float = 0.0


class _Channel:
    """A channel and its cell; the state lives here, whoever is connected."""

    def __init__(self, index: int, cell: CellModel,
                 temperature_C: float | Callable[[], float]) -> None:
        self.index, self.cell, self._temperature = index, cell, temperature_C
        self.status = "finish"
        self.test: _Test | None = None

    @property
    def temperature_C(self) -> float:
        """The cell's temperature now (a chamber's air, served alongside, or a constant)."""
        t = self._temperature
        return float(t()) if callable(t) else float(t)

    # -- running a test -----------------------------------------------------------------------
    def start(self, test: _Test) -> None:
        self.test, self.status = test, "working"
        self._begin_step(min(test.plan.steps), 0.0)

    def advance(self, now: float, trip: bool = False) -> None:
        """Run the test up to server time ``now``; ``trip``: then trip its protection."""
        test = self.test
        if test is None or self.status != "working":
            return
        t_now = now - test.t0
        for _ in range(_MAX_CHAINED):
            if self.status != "working":
                return
            seg = test.segment
            assert seg is not None
            seg_end = test.seg_t0 + seg.duration_s
            if not self._record_grid(min(t_now, seg_end)):
                return
            if t_now < seg_end:
                if trip:
                    self._halt(t_now, "protect")
                return
            self._end_segment(seg_end)
        raise RuntimeError(f"channel {self.index}: {_MAX_CHAINED} segments ended in one"
                           " advance; the cell model does not move")

    def stop(self, now: float) -> None:
        self.advance(now)
        if self.test is not None and self.status in ("working", "pause"):
            self._halt(now - self.test.t0, "stop")

    def reading(self, now: float) -> tuple[float, float]:
        """(voltage, current) at the terminals now."""
        test = self.test
        if test is None or self.status != "working" or test.segment is None:
            return self.cell.ocv_V(self.temperature_C), 0.0
        elapsed = min(now - test.t0 - test.seg_t0, test.segment.duration_s)
        v, i = self._sample(np.array([max(elapsed, 0.0)]))
        return float(v[0]), float(i[0])

    def _sample(self, elapsed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The running segment at ``elapsed``; while a voltage is held, the reading is that
        voltage (the channel regulates it) and the current the model's."""
        test = self.test
        assert test is not None and test.segment is not None
        v, i = test.segment.sample(elapsed)
        if isinstance(test.stages[0], ConstantVoltage):
            v = np.full_like(v, test.stages[0].voltage_V)
        return v, i

    # -- machinery ----------------------------------------------------------------------------
    def _begin_step(self, step_id: int, t: float) -> None:
        """Begin step ``step_id`` at test time ``t``, following cycle steps; end at type 6."""
        test = self.test
        assert test is not None
        for _ in range(len(test.plan.steps) * 1000 + 10):
            step = test.plan.steps.get(step_id)
            if step is None or step.step_type == 6:
                self.status = "finish"
                return
            if step.step_type != 5:
                break
            done = test.loops.get(step_id, 0)
            if done + 1 < step.cycle_count:
                test.loops[step_id], test.cycle = done + 1, test.cycle + 1
                step_id = step.start_step
            else:
                test.loops[step_id] = 0
                step_id += 1
        else:
            raise StepFileError("the cycle steps never reach an end")
        test.step, test.step_t0, test.cap_Ah, test.eng_Wh = step, t, 0.0, 0.0
        last = test.points[-1].t_s if test.points else -1.0
        test.grid_k = 1 if math.isclose(last, t, abs_tol=1e-9) else 0
        test.stages = self._stages(step, test.plan.record_dt_s)
        self._begin_stage(t)

    def _stages(self, step: _Step, dt: float) -> list[TimeSeriesTechnique]:
        lim, horizon = step.limits, step.limits.get("Time", HORIZON_S)
        if step.step_type in (1, 2):
            sign = 1.0 if step.step_type == 1 else -1.0
            return [ConstantCurrent(sign * lim.get("Curr", 0.0), horizon, dt,
                                    until_voltage_V=lim.get("Stop_Volt"))]
        if step.step_type in (3, 19):
            hold = ConstantVoltage(lim.get("Volt", 0.0), horizon, dt,
                                   until_abs_current_A=lim.get("Stop_Curr"))
            probe = self.cell.begin(hold, self.temperature_C)   # never finished
            i0 = float(probe.sample(np.array([0.0]))[1][0])
            limit = lim.get("Curr")
            if limit is not None and abs(i0) > limit:
                return [ConstantCurrent(math.copysign(limit, i0), horizon, dt,
                                        until_voltage_V=hold.voltage_V), hold]
            return [hold]
        return [OpenCircuit(horizon, dt)]

    def _begin_stage(self, t: float) -> None:
        test = self.test
        assert test is not None and test.step is not None
        left = test.step.limits.get("Time", HORIZON_S) - (t - test.step_t0)
        technique = test.stages[0]
        if left < technique.duration_s:
            technique = _with_duration(technique, max(left, 0.0))
        test.segment, test.seg_t0 = self.cell.begin(technique, self.temperature_C), t

    def _end_segment(self, t_end: float) -> None:
        test = self.test
        assert test is not None and test.segment is not None and test.step is not None
        seg = test.segment
        if not test.points or test.points[-1].t_s < t_end - 1e-9:
            v, i = self._sample(np.array([seg.duration_s]))
            if not self._record(np.array([t_end]), v, i):
                return   # protection tripped: the segment is finished at the breach
        seg.finish(seg.duration_s)
        reached_limit = seg.end_reason == "voltage" and len(test.stages) > 1
        step_over = t_end - test.step_t0 >= test.step.limits.get("Time", HORIZON_S) - 1e-9
        if reached_limit and not step_over:
            test.stages = test.stages[1:]
            self._begin_stage(t_end)
            return
        self._begin_step(test.step.step_id + 1, t_end)

    def _record_grid(self, upto: float) -> bool:
        """Record the step's grid points up to test time ``upto``; False if protection
        tripped."""
        test = self.test
        assert test is not None and test.segment is not None
        dt = test.plan.record_dt_s
        k_last = math.floor((upto - test.step_t0) / dt + 1e-9)
        if k_last < test.grid_k:
            return True
        t = test.step_t0 + dt * np.arange(test.grid_k, k_last + 1)
        test.grid_k = k_last + 1
        elapsed = np.minimum(t - test.seg_t0, test.segment.duration_s)
        v, i = self._sample(np.maximum(elapsed, 0.0))
        return self._record(t, v, i)

    def _record(self, t: np.ndarray, v: np.ndarray, i: np.ndarray, check: bool = True) -> bool:
        """Append points; at a protection breach keep up to it, halt, and return False."""
        test = self.test
        assert test is not None and test.step is not None
        p = test.plan.protect
        bad = np.zeros(len(t), dtype=bool)
        for key, values, above in (("v_max", v, True), ("v_min", v, False),
                                   ("i_max", i, True), ("i_min", i, False)):
            if check and key in p:
                bad |= values > p[key] if above else values < p[key]
        n = int(np.argmax(bad)) + 1 if bad.any() else len(t)
        name = _STEP_NAMES.get(test.step.step_type, "rest")
        for tk, vk, ik in zip(t[:n], v[:n], i[:n], strict=True):
            if test.points and test.points[-1].step_id == test.step.step_id:
                prev = test.points[-1]
                dt_h = (tk - prev.t_s) / 3600.0
                test.cap_Ah += abs(ik + prev.current_A) / 2 * dt_h
                test.eng_Wh += abs((vk * ik + prev.voltage_V * prev.current_A) / 2) * dt_h
            test.points.append(_Point(len(test.points) + 1, float(tk), float(vk), float(ik),
                                      test.step.step_id, test.cycle, name, test.cap_Ah,
                                      test.eng_Wh))
        if bad.any():
            self._halt(float(t[n - 1]), "protect", record=False)
            return False
        return True

    def _halt(self, t: float, status: str, record: bool = True) -> None:
        """End the test at test time ``t`` with ``status``: the cell keeps what it did."""
        test = self.test
        assert test is not None and test.segment is not None
        elapsed = min(max(t - test.seg_t0, 0.0), test.segment.duration_s)
        if record and (not test.points or test.points[-1].t_s < t - 1e-9):
            v, i = self._sample(np.array([elapsed]))
            self._record(np.array([t]), v, i, check=False)
        test.segment.finish(elapsed)
        self.status = status


def _with_duration(technique: TimeSeriesTechnique, duration_s: float) -> TimeSeriesTechnique:
    return replace(technique, duration_s=duration_s)


class NewareBTSServer(LineServer):
    """``cells``: one :class:`CellModel` per channel, on unit ``devid``, 8 channels per
    sub-device. ``username`` / ``password``: what ``connect`` must give. ``temperature_C``: of
    every cell, or one per channel (degC, or a function giving it now)."""

    terminator = TERMINATOR
    name = "Neware BTS"

    def __init__(self, cells: Sequence[CellModel], *, host: str = "127.0.0.1", port: int = 0,
                 speed: float = 1.0, username: str = "admin", password: str = "neware",
                 devtype: int = 27, devid: int = 21,
                 temperature_C: float | Sequence[float | Callable[[], float]] = 25.0) -> None:
        super().__init__(host=host, port=port, speed=speed)
        if not cells:
            raise ValueError("a BTS needs at least one channel (one cell model each)")
        self.faults: BtsFaults = BtsFaults()
        self.username, self._password = username, password
        self.devtype, self.devid = devtype, devid
        temps = list(temperature_C) if isinstance(temperature_C, Sequence) else \
            [temperature_C] * len(cells)
        if len(temps) != len(cells):
            raise ValueError("give one temperature per cell, or one for all")
        self.channels = [_Channel(k, cell, t) for k, (cell, t) in enumerate(zip(cells, temps,
                                                                                strict=True))]
        self._next_testid = 100
        self._epoch = time.time()
        self._sessions: weakref.WeakSet[asyncio.StreamWriter] = weakref.WeakSet()

    def ids(self, index: int) -> tuple[int, int, int]:
        """(devid, subdevid, chlid) of channel ``index``."""
        return self.devid, 1 + index // 8, 1 + index % 8

    # -- inspection, for tests ----------------------------------------------------------------
    def status(self, index: int) -> str:
        with self.lock:
            self.channels[index].advance(self.now_s())
            return self.channels[index].status

    def recorded(self, index: int) -> list[tuple[int, float, float, float]]:
        """(seqid, time_s, voltage_V, current_A) of every point of the channel's test so far."""
        with self.lock:
            channel = self.channels[index]
            channel.advance(self.now_s())
            test = channel.test
            return [] if test is None else [(p.seq, p.t_s, p.voltage_V, p.current_A)
                                            for p in test.points]

    # -- the wire -----------------------------------------------------------------------------
    async def _answer_one(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> bool:
        """Read and answer one framed message; False when the connection is to end."""
        try:
            raw = await reader.readuntil(_TERMINATOR_BYTES)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            return False    # the client closed, or sent more than a message can be
        text = raw[:-len(_TERMINATOR_BYTES)].decode("utf-8", errors="replace")
        faults = self.faults._take_command()
        if faults.drop:
            return False
        with self.lock:
            if faults.refuse:
                reply = self.refuse(text, faults.error)
            else:
                reply, logged_in = self._respond(text, self.now_s(), writer in self._sessions)
                if logged_in:
                    self._sessions.add(writer)
                else:
                    self._sessions.discard(writer)
        data = GARBAGE + _TERMINATOR_BYTES if self.faults._take_garbage() \
            else (reply + TERMINATOR).encode("utf-8")
        delay = self.faults.reply_delay_s
        if delay > 0:
            await asyncio.sleep(delay)
        if self.faults._take_truncate():
            writer.write(data[:len(data) // 2])
            await writer.drain()
            return False
        writer.write(data)
        await writer.drain()
        return True

    def respond(self, command: str, now_s: float) -> str:
        """The reply to one message (without the terminator), as to a logged-in client."""
        return self._respond(command, now_s, logged_in=True)[0]

    def _respond(self, command: str, now_s: float, logged_in: bool) -> tuple[str, bool]:
        """The reply, and whether the connection is logged in afterwards."""
        try:
            root = _parse_message(command)
        except ValueError as exc:
            return _reply("error", _text("result", f"false: {exc}")), logged_in
        cmd = (root.findtext("cmd") or "").strip()
        if cmd == "connect":
            ok = (root.findtext("username"), root.findtext("password")) == \
                (self.username, self._password)
            return _reply(cmd, _text("result", "ok" if ok else "false")), ok
        if not logged_in:
            return _reply(cmd, _text("result", "false: not logged in")), False
        for k, channel in enumerate(self.channels):
            channel.advance(now_s, trip=self.faults._take_trip(k))
        handler = {"getdevinfo": self._getdevinfo, "getchlstatus": self._getchlstatus,
                   "inquire": self._inquire, "inquiredf": self._inquiredf,
                   "start": self._start, "stop": self._stop, "download": self._download}.get(cmd)
        if handler is None:
            return _reply(cmd or "unknown", _text("result", "false")), True
        return handler(root, now_s), True

    def refuse(self, command: str, error: str | None) -> str:
        """Every item of the command answers ``false`` (as BTS does for a channel it will not
        start or stop); nothing is executed."""
        try:
            root = _parse_message(command)
        except ValueError:
            return _reply("error", _text("result", "false"))
        cmd = (root.findtext("cmd") or "").strip()
        items = root.find("list")
        if items is None:
            return _reply(cmd, _text("result", error or "false"))
        return _reply(cmd, _list([_item(el.tag, el.attrib, error or "false") for el in items]))

    # -- commands -----------------------------------------------------------------------------
    def _channel(self, el: ET.Element) -> _Channel | None:
        try:
            key = (int(el.get("devid", "")), int(el.get("subdevid", "")),
                   int(el.get("chlid", "")))
        except ValueError:
            return None
        for k, channel in enumerate(self.channels):
            if self.ids(k) == key:
                return channel
        return None

    def _attrs(self, channel: _Channel, with_ip: bool = True) -> dict[str, str]:
        devid, sub, chl = self.ids(channel.index)
        ids = {"devtype": str(self.devtype), "devid": str(devid), "subdevid": str(sub),
               "chlid": str(chl)}
        return {"ip": self.host, **ids} if with_ip else ids

    def _getdevinfo(self, root: ET.Element, now: float) -> str:
        server = ET.Element("serverip", count="1")
        ET.SubElement(server, "server", ip=self.host, port="3306")
        middle = ET.Element("middle", count=str(len(self.channels)))
        for channel in self.channels:
            attrs = self._attrs(channel)
            attrs["Channelid"] = attrs.pop("chlid")
            middle.append(_item("channel", attrs, "true"))
        return _reply("getdevinfo", server, middle)

    def _per_channel(self, root: ET.Element, cmd: str,
                     answer: Callable[[ET.Element, _Channel], ET.Element]) -> str:
        items = []
        listed = root.find("list")
        for el in [] if listed is None else listed:
            channel = self._channel(el)
            items.append(_item(el.tag, el.attrib, "false") if channel is None
                         else answer(el, channel))
        return _reply(cmd, _list(items))

    def _getchlstatus(self, root: ET.Element, now: float) -> str:
        return self._per_channel(root, "getchlstatus", lambda el, ch: _item(
            "status", self._attrs(ch) | {"reservepause": "1"}, ch.status))

    def _inquire(self, root: ET.Element, now: float) -> str:
        def answer(el: ET.Element, ch: _Channel) -> ET.Element:
            v, i = ch.reading(now)
            test, step, (devid, sub, chl) = ch.test, None, self.ids(ch.index)
            if test is not None:
                step = test.step
            t = 0.0 if test is None else min(now - test.t0, test.points[-1].t_s
                                             if ch.status != "working" and test.points
                                             else math.inf)
            attrs = {"dev": f"{self.devtype}-{devid}-{sub}-{chl}-0",
                     "cycle_id": str(test.cycle if test else 1)}
            if step is not None:
                attrs["step_id"] = str(step.step_id)
            attrs |= {
                "step_type": _STEP_NAMES.get(step.step_type, "--") if step else "--",
                "workstatus": ch.status, "barcode": test.barcode if test else "",
                "current": _num(i), "voltage": _num(v),
                "capacity": _num(test.cap_Ah) if test else "0",
                "energy": _num(test.eng_Wh) if test else "0", "totaltime": f"{t:.1f}",
                "relativetime": f"{t - test.step_t0:.1f}" if test else "0",
                "open_or_close": "0", "log_code": "102000" if ch.status == "working" else "0"}
            return _item("inquire", attrs, None)
        return self._per_channel(root, "inquire", answer)

    def _inquiredf(self, root: ET.Element, now: float) -> str:
        return self._per_channel(root, "inquiredf", lambda el, ch: _item(
            "chl", self._attrs(ch, with_ip=False) | {
                "testid": str(ch.test.testid if ch.test else 0),
                "count": str(len(ch.test.points) if ch.test else 0)}, "true"))

    def _start(self, root: ET.Element, now: float) -> str:
        def answer(el: ET.Element, ch: _Channel) -> ET.Element:
            ok = ch.status not in ("working", "pause")
            if ok:
                text = (el.text or "").strip()
                try:
                    if not text.startswith("<"):
                        text = Path(text).read_text(encoding="utf-8")
                    plan = parse_step_file(text)
                except (OSError, StepFileError):
                    ok = False
            if ok:
                self._next_testid += 1
                ch.start(_Test(self._next_testid, el.get("barcode", ""), plan, now))
            return _item("start", self._attrs(ch), "ok" if ok else "false")
        return self._per_channel(root, "start", answer)

    def _stop(self, root: ET.Element, now: float) -> str:
        def answer(el: ET.Element, ch: _Channel) -> ET.Element:
            running = ch.status in ("working", "pause")
            if running:
                ch.stop(now)
            return _item("stop", self._attrs(ch), "ok" if running else "false")
        return self._per_channel(root, "stop", answer)

    def _download(self, root: ET.Element, now: float) -> str:
        el = root.find("download")
        channel = None if el is None else self._channel(el)
        if el is None or channel is None:
            return _reply("donwload", _text("result", "false"))
        test = channel.test
        try:
            testid, start, count = (int(el.get(a, "")) for a in ("testid", "startpos", "count"))
        except ValueError:
            return _reply("donwload", _text("result", "false"))
        head = _item("download", self._attrs(channel, with_ip=False) | {
            "testid": str(test.testid if test else 0), "startpos": str(start),
            "count": str(count), "auxid": "0"}, None)
        rows: list[_Point] = []
        if test is not None and testid in (0, test.testid) and start >= 1:
            rows = test.points[start - 1:start - 1 + min(count, MAX_DOWNLOAD)]
        data = [_item("data", {
            "seqid": str(p.seq), "stepid": str(p.step_id), "cycleid": str(p.cycle),
            "steptype": p.step_type, "testtime": str(round(p.t_s * TIME_SCALE)),
            "atime": datetime.fromtimestamp(self._epoch + (test.t0 if test else 0) + p.t_s)
            .strftime("%Y-%m-%d %H:%M:%S"), "volt": _num(p.voltage_V),
            "curr": _num(p.current_A), "cap": _num(p.cap_Ah), "eng": _num(p.eng_Wh)}, None)
            for p in rows]
        return _reply("donwload", head, _list(data))


# -- XML ----------------------------------------------------------------------------------------
def _parse_message(text: str) -> ET.Element:
    if "<!DOCTYPE" in text.upper():
        raise ValueError("DOCTYPE refused")
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise ValueError(f"not XML ({exc})") from None
    if root.tag != "bts":
        raise ValueError(f"<{root.tag}> is not <bts>")
    return root


def _reply(cmd: str, *elements: ET.Element) -> str:
    """A reply as BTS 8 formats it: an XML declaration, indented, CR LF line ends."""
    root = ET.Element("bts", version="1.0")
    root.append(_text("cmd", f"{cmd}_resp"))
    root.extend(elements)
    ET.indent(root, space="  ")
    body = ET.tostring(root, encoding="unicode").replace("\n", "\r\n")
    return f'<?xml version="1.0" encoding="UTF-8"?>\r\n{body}'


def _text(tag: str, text: str) -> ET.Element:
    el = ET.Element(tag)
    el.text = text
    return el


def _item(tag: str, attrs: dict[str, str], text: str | None) -> ET.Element:
    el = ET.Element(tag, attrs)
    el.text = text
    return el


def _list(items: list[ET.Element]) -> ET.Element:
    el = ET.Element("list", count=str(len(items)))
    el.extend(items)
    return el


def _num(x: float) -> str:
    return np.format_float_positional(float(x), trim="-")
