"""The summary a run prints: many values of one quantity (pulses, GITT, long cycling) come as
what they span, per kind (basis, direction, ...), in a terminal of 80 columns; a few are listed
with their conditions."""

from __future__ import annotations

import io

from rich.console import Console

from sequencer.summary import print_summary


def _printed(results: list[dict], width: int = 400) -> str:
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, color_system=None)
    status = {"campaign": "c", "status": "completed",
              "cells": [{"cell": "c1", "state": "completed", "step_count": 3, "cycle": 0,
                         "points": 10, "last": {"t": 3600.0}}]}
    print_summary(console, status, {"run": {"status": "completed"}, "results": results})
    return buffer.getvalue()


def _result(quantity: str, value: float | None, unit: str, **conditions) -> dict:
    return {"cell": "c1", "quantity": quantity, "value": value, "unit": unit,
            "conditions": conditions}


def test_many_values_print_as_their_span_per_kind_and_never_mix_bases():
    results = [_result("diffusion_coefficient", 2e-9, "cm2/s", statistic="median over pulses",
                       pulses=40, basis="electrode")]
    for basis, scale in (("electrode", 1e-9), ("particle", 1e-11)):
        results += [_result("diffusion_coefficient", scale * (1 + k / 100), "cm2/s",
                            basis=basis, pulse=k + 1, soc_percent=2.5 * (k + 1),
                            temperature_degC=25) for k in range(40)]
    results.append(_result("pulse_resistance", None, "Ohm", direction="charge", soc_percent=100.0))
    results += [_result("pulse_resistance", 20.0 + k, "Ohm", direction="charge",
                        soc_percent=90.0 - 10 * k) for k in range(9)]
    assert max(len(line) for line in _printed(results, 80).splitlines()) <= 80
    flat = " ".join(_printed(results).split())
    assert "statistic=median over pulses, basis=electrode: 2e-09 (pulses=40)" in flat
    assert "basis=electrode: 40 values, first 1e-09, last 1.39e-09, 1e-09 to 1.39e-09" in flat
    assert "basis=particle: 40 values, first 1e-11, last 1.39e-11" in flat
    assert "pulse 1 to 40, soc_percent 2.5 to 100.0, temperature_degC=25" in flat
    # a null counts, and is said; the range is of the values there are
    assert "direction=charge: 10 values (1 null), first null, last 28, 20 to 28" in flat
    assert "1.2e-09" not in flat, "not every value is listed"
    assert "every value with its conditions: the report's summary.json" in flat


def test_a_few_values_are_listed_with_their_conditions():
    text = _printed([_result("bulk_resistance", r, "Ohm", temperature_degC=t)
                     for r, t in ((519.3, -20), (38.36, 25), (None, 80))])
    flat = " ".join(text.split())
    assert ("519.3 (temperature_degC=-20); 38.36 (temperature_degC=25); null"
            " (temperature_degC=80)") in flat
    assert "every value" not in flat


def test_the_cycles_column_counts_the_cycles_the_results_number_not_loop_iterations():
    """The executor's counter says 0 for a check-up written without a loop; the results say
    ``cycle=1``: the printed column follows the results, per experiment, and says ``-`` (not 0)
    for a cell whose results number no cycle."""
    results = [_result("discharge_capacity", 190.0 - k, "mAh/g", cycle=k + 1) for k in range(3)]
    results += [_result("coulombic_efficiency", 99.0, "%", cycle=k + 1) for k in range(3)]
    results += [{**_result("discharge_capacity", 180.0, "mAh/g", cycle=1), "experiment": "x"}]
    assert _cycles_column(_printed(results)) == "4", "3 cycles of one experiment, 1 of another"
    assert _cycles_column(_printed([_result("bulk_resistance", 38.4, "Ohm",
                                            temperature_degC=25)])) == "-"


def _cycles_column(printed: str) -> str:
    row = next(line for line in printed.splitlines() if line.startswith("│ c1 "))
    return row.split("│")[4].strip()
