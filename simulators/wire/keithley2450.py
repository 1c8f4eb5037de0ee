"""A Keithley 2450 SMU on the wire (SCPI over a raw socket), sourcing into a simulated cell.

Every change of the source (output on/off, function, level, limit) finishes the cell's running
:class:`~simulators.cells.base.Segment` at its elapsed time and begins a new technique:

* output off: HIMP opens the output (OpenCircuit); the other off states (NORMal, ZERO, GUARd) hold
  the cell at 0 V with 10 % of the current range as the limit, which discharges a cell (the
  reason drivers select HIMP; ``*RST`` restores NORMal);
* current source: ConstantCurrent, whose ``until_voltage_V`` is the voltage limit: when the cell
  reaches VLIM the SMU is in compliance and holds V there (a ConstantVoltage segment);
* voltage source: ConstantVoltage, or, while the cell would draw more than ILIM, ConstantCurrent at
  ILIM up to the voltage, then ConstantVoltage (so a CV charge with a current limit is CC-CV).

Segments are begun for ``SEGMENT_HORIZON_S`` and continued when they run out, so the instrument can
source for any time. While a voltage is held the reading is that voltage (the SMU regulates it)
and the current the model's. Readings are noise-free, formatted as the 2450 prints them (``%.6E``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from drivers.techniques import ConstantCurrent, ConstantVoltage, OpenCircuit
from simulators.cells.base import CellModel, Segment, TimeSeriesTechnique
from simulators.wire.scpi import (
    ILLEGAL_PARAMETER,
    PARAMETER_NOT_ALLOWED,
    Command,
    ScpiError,
    ScpiParser,
    choice,
    number,
)
from simulators.wire.server import LineServer

IDN = "KEITHLEY INSTRUMENTS,MODEL 2450,04000000,1.7.12b"
MAX_CURRENT_A = 1.05
MAX_VOLTAGE_V = 210.0
SEGMENT_HORIZON_S = 86_400.0
_RECORD_DT_S = 1.0   # the cell models want one; the SMU samples segments itself
_MAX_CHAINED = 1000  # segments ended within one advance: more means a model that never moves

_FUNCTIONS = {"CURR": "CURR", "CURRENT": "CURR", "CURR:DC": "CURR", "CURRENT:DC": "CURR",
              "VOLT": "VOLT", "VOLTAGE": "VOLT", "VOLT:DC": "VOLT", "VOLTAGE:DC": "VOLT"}
_OFF_MODES = {"HIMP": "HIMP", "HIMPEDANCE": "HIMP", "NORM": "NORM", "NORMAL": "NORM",
              "ZERO": "ZERO", "GUAR": "GUAR", "GUARD": "GUAR"}
_ON_OFF = {"ON": True, "1": True, "OFF": False, "0": False}
_ELEMENTS = {"READ": "READ", "READING": "READ", "SOUR": "SOUR", "SOURCE": "SOUR",
             "SEC": "SEC", "SECONDS": "SEC"}


class Keithley2450Server(LineServer):
    """``cell``: any :class:`CellModel`, at ``temperature_C`` (degC, or a function of the
    simulated time: the air of a chamber served alongside). ``output_off_mode``: the off state
    at power-on (a saved setup; ``*RST`` restores the factory NORMal)."""

    terminator = "\n"
    name = "Keithley 2450"

    def __init__(self, cell: CellModel, *, host: str = "127.0.0.1", port: int = 0,
                 speed: float = 1.0,
                 temperature_C: float | Callable[[float], float] = 25.0,
                 output_off_mode: str = "HIMP") -> None:
        super().__init__(host=host, port=port, speed=speed)
        self.cell, self.temperature_C = cell, temperature_C
        self._factory_settings()
        if output_off_mode not in _OFF_MODES.values():
            raise ValueError(f"output_off_mode must be one of {sorted(set(_OFF_MODES.values()))},"
                             f" not {output_off_mode!r}")
        self.off_mode = {"CURR": output_off_mode, "VOLT": output_off_mode}
        self._now = 0.0
        self._segment: Segment
        self._stages: list[_Stage]
        self._seg_t0 = 0.0
        self.in_compliance = False
        self._begin(self._stages_now(), 0.0)
        self.scpi = ScpiParser(self._commands())

    def _temperature(self) -> float:
        t = self.temperature_C
        return float(t(self._now)) if callable(t) else float(t)

    def _factory_settings(self) -> None:
        self.source = "VOLT"
        self.sense = "CURR"
        self.current_A, self.voltage_V = 0.0, 0.0
        self.vlim_V, self.ilim_A = 21.0, 105e-6
        self.output = False
        self.off_mode = {"CURR": "NORM", "VOLT": "NORM"}
        self.readback = {"CURR": True, "VOLT": True}

    # -- the wire -----------------------------------------------------------------------------
    def respond(self, command: str, now_s: float) -> str | None:
        self._now = now_s
        return self.scpi.execute(command)

    def refuse(self, command: str, error: str | None) -> str | None:
        code, _, message = (error or '-221,"Settings conflict"').partition(",")
        self.scpi.push_error(int(code), message.strip('"'))
        return None

    def measure(self, now_s: float) -> tuple[float, float]:
        """(voltage_V, current_A) at the terminals at simulated time ``now_s``."""
        with self.lock:
            self._advance(now_s)
            t = min(now_s - self._seg_t0, self._segment.duration_s)
            v, i = self._segment.sample(np.array([t]))
            held = self._stages[0].technique
            if isinstance(held, ConstantVoltage):   # the SMU holds V, whatever a model says
                return held.voltage_V, float(i[0])
            return float(v[0]), float(i[0])

    # -- the command table --------------------------------------------------------------------
    def _commands(self) -> list[Command]:
        def setting(pattern: str, attr: str, low: float, high: float) -> Command:
            def on_set(p: list[str]) -> None:
                self._change(attr, number(p, low, high))
            return Command(pattern, on_set, lambda p: _fmt(getattr(self, attr)))

        return [
            Command("*IDN", None, lambda p: IDN),
            Command("*RST", lambda p: self._reset(), None),
            Command("*CLS", lambda p: self.scpi.errors.clear(), None),
            Command("*OPC", lambda p: None, lambda p: "1"),
            Command("*WAI", lambda p: None, None),
            Command("*LANG", None, lambda p: "SCPI"),
            Command("SYSTem:ERRor[:NEXT]", None, lambda p: self.scpi.next_error()),
            Command("SYSTem:ERRor:COUNt", None, lambda p: str(len(self.scpi.errors))),
            Command("SYSTem:ERRor:CLEar", lambda p: self.scpi.errors.clear(), None),
            Command("SOURce:FUNCtion[:MODE]",
                    lambda p: self._change("source", choice(p, _FUNCTIONS)),
                    lambda p: self.source),
            setting("SOURce:CURRent[:LEVel][:IMMediate][:AMPLitude]", "current_A",
                    -MAX_CURRENT_A, MAX_CURRENT_A),
            setting("SOURce:CURRent:VLIMit[:LEVel]", "vlim_V", 0.02, MAX_VOLTAGE_V),
            Command("SOURce:CURRent:VLIMit:TRIPped", None,
                    lambda p: str(int(self.in_compliance and self.source == "CURR"))),
            setting("SOURce:VOLTage[:LEVel][:IMMediate][:AMPLitude]", "voltage_V",
                    -MAX_VOLTAGE_V, MAX_VOLTAGE_V),
            setting("SOURce:VOLTage:ILIMit[:LEVel]", "ilim_A", 1e-9, MAX_CURRENT_A),
            Command("SOURce:VOLTage:ILIMit:TRIPped", None,
                    lambda p: str(int(self.in_compliance and self.source == "VOLT"))),
            Command("SOURce:CURRent:READ:BACK[:STATe]",
                    lambda p: self.readback.__setitem__("CURR", choice(p, _ON_OFF)),
                    lambda p: str(int(self.readback["CURR"]))),
            Command("SOURce:VOLTage:READ:BACK[:STATe]",
                    lambda p: self.readback.__setitem__("VOLT", choice(p, _ON_OFF)),
                    lambda p: str(int(self.readback["VOLT"]))),
            Command("SENSe:FUNCtion[:ON]",
                    lambda p: setattr(self, "sense", choice(p, _FUNCTIONS)),
                    lambda p: f'"{self.sense}:DC"'),
            Command("OUTPut[:STATe]", lambda p: self._change("output", choice(p, _ON_OFF)),
                    lambda p: str(int(self.output))),
            Command("OUTPut:CURRent:SMODe", lambda p: self._set_off_mode("CURR", p),
                    lambda p: self.off_mode["CURR"]),
            Command("OUTPut:VOLTage:SMODe", lambda p: self._set_off_mode("VOLT", p),
                    lambda p: self.off_mode["VOLT"]),
            Command("READ", None, self._read),
            Command("MEASure:VOLTage[:DC]", None, lambda p: self._measure_as("VOLT", p)),
            Command("MEASure:CURRent[:DC]", None, lambda p: self._measure_as("CURR", p)),
        ]

    def _read(self, params: list[str]) -> str:
        """``READ? ["defbuffer1"[, elements...]]``: the reading by default."""
        if params and params[0].strip("\"'").lower() not in ("defbuffer1", "defbuffer2"):
            raise ScpiError(*ILLEGAL_PARAMETER)
        elements = [_ELEMENTS.get(e.upper()) for e in params[1:]] or ["READ"]
        if None in elements:
            raise ScpiError(*ILLEGAL_PARAMETER)
        v, i = self.measure(self._now)
        values = {"VOLT": v, "CURR": i}
        source = values[self.source] if self.readback[self.source] else self._set_level()
        out = {"READ": values[self.sense], "SOUR": source, "SEC": self._now}
        return ",".join(_fmt(out[e]) for e in elements if e is not None)

    def _set_level(self) -> float:
        return self.current_A if self.source == "CURR" else self.voltage_V

    def _measure_as(self, function: str, params: list[str]) -> str:
        if params:
            raise ScpiError(*PARAMETER_NOT_ALLOWED)
        self.sense = function
        return self._read([])

    # -- the source ---------------------------------------------------------------------------
    def _reset(self) -> None:
        self._factory_settings()
        self._resource()

    def _set_off_mode(self, function: str, params: list[str]) -> None:
        self.off_mode[function] = choice(params, _OFF_MODES)
        if not self.output:
            self._resource()

    def _change(self, attr: str, value: object) -> None:
        if getattr(self, attr) != value:
            self._advance(self._now)   # what ran until now ran under the old settings
            setattr(self, attr, value)
            if self.output or attr == "output":
                self._resource()

    def _resource(self) -> None:
        """The source changed: finish the running segment now and begin what the SMU does."""
        now = self._now
        self._advance(now)
        self._segment.finish(min(now - self._seg_t0, self._segment.duration_s))
        self._begin(self._stages_now(), now)

    def _stages_now(self) -> list[_Stage]:
        """What the cell sees now: a technique, and what follows when it reaches its voltage."""
        h = SEGMENT_HORIZON_S
        if not self.output:
            if self.off_mode[self.source] == "HIMP":
                return [_Stage(OpenCircuit(h, _RECORD_DT_S))]
            return self._voltage_source(0.0, 0.1 * MAX_CURRENT_A)
        if self.source == "CURR":
            if self.current_A == 0:
                return [_Stage(OpenCircuit(h, _RECORD_DT_S))]
            limit = math.copysign(self.vlim_V, self.current_A)
            return [_Stage(ConstantCurrent(self.current_A, h, _RECORD_DT_S,
                                           until_voltage_V=limit)),
                    _Stage(ConstantVoltage(limit, h, _RECORD_DT_S), compliance=True)]
        return self._voltage_source(self.voltage_V, self.ilim_A)

    def _voltage_source(self, voltage_V: float, ilim_A: float) -> list[_Stage]:
        hold = _Stage(ConstantVoltage(voltage_V, SEGMENT_HORIZON_S, _RECORD_DT_S))
        probe = self.cell.begin(hold.technique, self._temperature())   # never finished
        i0 = float(probe.sample(np.array([0.0]))[1][0])
        if abs(i0) <= ilim_A:
            return [hold]
        limited = ConstantCurrent(math.copysign(ilim_A, i0), SEGMENT_HORIZON_S, _RECORD_DT_S,
                                  until_voltage_V=voltage_V)
        return [_Stage(limited, compliance=True), hold]

    def _begin(self, stages: list[_Stage], t0: float) -> None:
        segment = self.cell.begin(stages[0].technique, self._temperature())
        first = stages[0].technique
        if len(stages) > 1 and isinstance(first, ConstantCurrent):
            assert first.until_voltage_V is not None
            v0 = float(segment.sample(np.array([0.0]))[0][0])
            if (v0 - first.until_voltage_V) * first.current_A >= 0:   # at the limit already
                stages = stages[1:]
                segment = self.cell.begin(stages[0].technique, self._temperature())
        self._segment, self._stages, self._seg_t0 = segment, stages, t0
        self.in_compliance = self.output and stages[0].compliance

    def _advance(self, now: float) -> None:
        """Finish the segments that ended before ``now`` and begin what follows each."""
        for _ in range(_MAX_CHAINED):
            seg = self._segment
            if now - self._seg_t0 < seg.duration_s:
                return
            end = self._seg_t0 + seg.duration_s
            seg.finish(seg.duration_s)
            limit_reached = seg.end_reason == "voltage" and len(self._stages) > 1
            self._begin(self._stages[1:] if limit_reached else self._stages, end)


@dataclass(frozen=True)
class _Stage:
    technique: TimeSeriesTechnique
    compliance: bool = False   # the SMU is at its limit, not at its set level


def _fmt(value: float) -> str:
    return f"{value:.6E}"
