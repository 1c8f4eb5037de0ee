"""An ESPEC chamber (SCP-220 / P-300 controller) on the wire: its ASCII protocol over TCP.

The air temperature is :class:`simulators.instruments.chamber.SimChamber`'s second-order response
on the server's time base; this module only adds the controller: a stored setpoint that is used
when the mode is CONSTANT (STANDBY and OFF drift to ambient), alarm limits, the alarm list (raised
through ``faults.raise_alarm``), the optional RS-485 address, and the replies instruments.md shows.
"""

from __future__ import annotations

import re

import numpy as np

from simulators.instruments.chamber import SimChamber
from simulators.wire.server import LineServer

_ADDRESSED = re.compile(r"^(\d+),(.*)$")
_SETTING = re.compile(r"^(TEMP|MODE)\s*,\s*(.*)$", re.IGNORECASE)
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")

MODES = ("OFF", "STANDBY", "CONSTANT")


class EspecServer(LineServer):
    """``rs485_address``: answer only commands prefixed ``N,`` with this address (multi-drop);
    None: no prefix. ``min_C`` / ``max_C``: setpoints outside get ``NA:DATA OUT OF RANGE``."""

    terminator = "\r\n"
    name = "ESPEC chamber"

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, speed: float = 1.0,
                 tau_s: float = 600.0, overshoot: float = 0.03, ambient_C: float = 22.0,
                 noise_K: float = 0.03, seed: int = 0, rs485_address: int | None = None,
                 min_C: float = -40.0, max_C: float = 100.0) -> None:
        super().__init__(host=host, port=port, speed=speed)
        self.rs485_address = rs485_address
        self.min_C, self.max_C = min_C, max_C
        self._rng = np.random.default_rng(seed)
        self.air = SimChamber(self.clock(), np.random.default_rng(seed), tau_s=tau_s,
                              overshoot=overshoot, ambient_C=ambient_C, noise_K=0.0,
                              min_C=min_C, max_C=max_C)
        self.noise_K = noise_K
        self.setpoint_C = ambient_C
        self.high_C, self.low_C = max_C, min_C
        self.mode = "STANDBY"

    def respond(self, command: str, now_s: float) -> str | None:
        addressed = _ADDRESSED.match(command)
        if self.rs485_address is not None:
            if addressed is None or int(addressed.group(1)) != self.rs485_address:
                return None   # another station's command on the bus (or no address): silence
            command = addressed.group(2).strip()
        upper = command.upper()
        if upper == "TEMP?":
            pv = self._pv(now_s)
            return f"{pv:.1f},{self.setpoint_C:.1f},{self.high_C:.1f},{self.low_C:.1f}"
        if upper == "MODE?":
            return self.mode
        if upper == "MON?":
            return f"{self._pv(now_s):.1f},,{self.mode},{len(self.faults.alarms)}"
        if upper == "ALARM?":
            return ",".join(str(x) for x in (len(self.faults.alarms), *self.faults.alarms))
        if upper == "TYPE?":
            return f"T,T,S2,{self.max_C:.1f}"
        if upper == "ROM?":
            return "P-300 SIM,1.00"
        setting = _SETTING.match(command)
        if setting is None:
            return "NA:CMD ERR"
        what, value = setting.group(1).upper(), setting.group(2).strip().upper()
        refusal = self._set_temperature(value) if what == "TEMP" else self._set_mode(value)
        return refusal or f"OK:{command}"

    def refuse(self, command: str, error: str | None) -> str | None:
        return f"NA:{error or 'CONT NOT READY-1'}"

    def _pv(self, now_s: float) -> float:
        return float(self.air.temperature_at(now_s)) + self._rng.normal(0.0, self.noise_K)

    def _set_temperature(self, value: str) -> str | None:
        kind, number = value[:1], value[1:].strip()
        if kind not in ("S", "H", "L") or not _NUMBER.match(number):
            return "NA:PARA ERR"
        t = float(number)
        if not self.min_C <= t <= self.max_C:
            return "NA:DATA OUT OF RANGE"
        if kind == "S":
            self.setpoint_C = t
            if self.mode == "CONSTANT":
                self.air.set_temperature_C(t)
        elif kind == "H":
            self.high_C = t
        else:
            self.low_C = t
        return None

    def _set_mode(self, value: str) -> str | None:
        if value not in MODES:
            return "NA:PARA ERR"   # programs (RUN n) are not simulated
        self.mode = value
        if value == "CONSTANT":
            self.air.set_temperature_C(self.setpoint_C)
        else:
            self.air.standby()
        return None
