"""The digits a measured quantity carries in a text export: the instruments' resolution.

A float64 printed in full has 17 significant digits, most of them noise below what any
instrument resolves (``3.7123456789012345`` V from a 16-bit converter). A CSV export writes
each column at the resolution of what measured it instead, so the files are about half the
size and say what was measured, no more. Parquet keeps the stored float64 as it is.

Each column is rounded either to a number of decimals (an absolute resolution: the quantity is
read on one scale whatever its value) or to a number of significant digits (a relative one:
the instrument changes range with the value). The choice, per column:

- times (test, step, Unix): 1 ms. Cyclers log time in ms (Neware's ``testtime``, EC-Lab's
  time base is finer but its exports print ms), and no step ends sharper than that.
- voltage: 1 uV (6 decimals). Finer than a VSP-300 or a BTS channel resolves (a 16-bit
  converter on a 10 V range is 0.3 mV before averaging, tens of uV after); a Keithley 2450's
  6.5 digits on its 2 V range are 1 uV.
- current: 6 significant digits. A potentiostat reads current on ranges (VSP-300: 10 uA to
  1 A in decades, each resolved to about 1/300 000 of its full scale after averaging), so its
  resolution follows the value: 6 significant digits are at least as fine as the range's
  resolution for a reading above a tenth of its range, where the range is chosen.
- temperature: 0.01 K (2 decimals). A chamber controller shows 0.1 K; a thermocouple logger
  0.01 K.
- charge and energy counters: 9 significant digits. They are running sums over the whole run,
  and a cycle's capacity is the difference of two of them: 9 digits keep a cycle's capacity to
  1e-5 of itself after ten thousand cycles.
- frequency and impedance: 7 significant digits, what EC-Lab keeps of them (its data files
  store them as 32-bit floats, 24 bits of mantissa: about 7 digits).
- counts (cycle, step): whole numbers, as stored.

The rounding is to the nearest decimal (numpy's ``round``), so the float written is the one
nearest that decimal and prints as it (``3.712346``, not ``3.7123460000000001``). A missing
value (NaN: a channel without a temperature probe in no chamber) is written as an empty field.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Resolution:
    """``digits`` decimals, or, where ``significant``, significant digits."""

    digits: int
    significant: bool = False

    def round(self, values: np.ndarray) -> np.ndarray:
        """``values`` at this resolution (NaN and inf as they are)."""
        if not self.significant:
            return np.round(values, self.digits)
        with np.errstate(divide="ignore", invalid="ignore"):
            magnitude = np.floor(np.log10(np.abs(values)))
        decimals = np.where(np.isfinite(magnitude), self.digits - 1 - magnitude, 0.0)
        # 10**22 is the largest power of ten a float64 holds exactly; beyond it (a value below
        # 1e-16 at 6 digits) the value is far below any instrument's resolution anyway
        decimals = np.clip(decimals, -22, 22)
        up = decimals >= 0
        scale = 10.0 ** np.abs(decimals)
        with np.errstate(invalid="ignore", over="ignore"):
            return np.where(up, np.round(values * scale) / scale,
                            np.round(values / scale) * scale)


#: Each float column's resolution in a CSV export (BDF names, as :mod:`store.frames`).
CSV_RESOLUTION: dict[str, Resolution] = {
    "Test Time / s": Resolution(3),
    "Step Time / s": Resolution(3),
    "Unix Time / s": Resolution(3),
    "Voltage / V": Resolution(6),
    "Current / A": Resolution(6, significant=True),
    "Temperature T1 / degC": Resolution(2),
    "Charging Capacity / Ah": Resolution(9, significant=True),
    "Discharging Capacity / Ah": Resolution(9, significant=True),
    "Charging Energy / Wh": Resolution(9, significant=True),
    "Discharging Energy / Wh": Resolution(9, significant=True),
    "Frequency / Hz": Resolution(7, significant=True),
    "Z Real / Ohm": Resolution(7, significant=True),
    "Z Imag / Ohm": Resolution(7, significant=True),
}
