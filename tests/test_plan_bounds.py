"""Sizes a plan refuses before anything runs: points per step, points and steps in all,
step durations and the campaign's length, each refusal naming the limit."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from protocols import ProtocolError
from sequencer import bounds
from sequencer.cli import app
from sequencer.runner import prepare

runner = CliRunner()

CELLS = """campaign: sizes
cells:
  - {id: b1, kind: blocking, electrolyte: AIOSE, thickness: 300 um, diameter: 16 mm}
  - id: f1
    kind: full_cell
    electrolyte: AIOSE
    thickness: 300 um
    diameter: 16 mm
    cathode: {material: NCM811, loading: 1.9 mg/cm^2, diameter: 12 mm,
              specific_capacity: 200 mAh/g}
experiments:
  - name: e
    cells: [CELL]
    steps:
"""


def protocol(tmp_path, *steps: str, cell: str = "b1"):
    path = tmp_path / "p.yaml"
    path.write_text(CELLS.replace("CELL", cell) + "".join(f"      - {s}\n" for s in steps))
    return path


def refusal(path) -> str:
    with pytest.raises(ProtocolError) as info:
        prepare(path)
    return "\n".join(str(p) for p in info.value.problems)


def test_one_microsecond_recording_over_an_hour_names_the_points_limit(tmp_path):
    message = refusal(protocol(tmp_path, "{kind: rest, duration: 1 h, record_every: 1 us}"))
    assert message == ("p.yaml:15: experiments[0].steps[0]: cell b1: the step records about"
                       " 3.6e+09 points; the limit is 10,000,000 points per step (raise"
                       " record_every, or split the step)")


def test_a_1e12_hour_rest_is_refused_where_it_is_written(tmp_path):
    message = refusal(protocol(tmp_path, "{kind: rest, duration: 1e12 h}"))
    assert message == ("p.yaml:15: experiments[0].steps[0].duration: '1e12 h' is outside the"
                       " durations cellseq runs, 1 us to 730.5 days (2 years)")


def test_a_vanishing_current_without_a_duration_is_refused_by_its_time_limit(tmp_path):
    message = refusal(protocol(
        tmp_path, "{kind: constant_current, direction: charge, current: 1e-30 A,"
        " until_voltage: 4.2 V}", cell="f1"))
    assert message.startswith("p.yaml:15: experiments[0].steps[0]: cell f1: the step may run"
                              " 7.35e+22 years; the longest a step may run is 730.5 days")
    assert "give a duration or a larger current" in message


def test_a_tiny_c_rate_in_a_pybamm_string_is_refused_too(tmp_path):
    message = refusal(protocol(tmp_path, "Charge at C/1e9 until 4.2 V", cell="f1"))
    assert "the step may run 1.71e+05 years" in message


def test_a_slow_sweep_is_refused_by_its_duration(tmp_path):
    message = refusal(protocol(tmp_path, "{kind: lsv, vertex: 5 V, scan_rate: 1e-12 V/s}"))
    assert "the step may run" in message and "raise the scan rate" in message


def test_nested_loops_are_bounded_in_steps_run(tmp_path):
    step = ("{kind: loop, count: 1000000, steps: [{kind: loop, count: 1000000,"
            " steps: ['Rest for 1 second (1 second period)']}]}")
    message = refusal(protocol(tmp_path, step))
    assert "the campaign runs about 1e+12 steps in all, loop iterations counted" in message
    assert "the limit is 10,000,000" in message


def test_the_total_points_of_a_campaign_are_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(bounds, "MAX_STEPS_RUN", 10**12)
    step = "{kind: loop, count: 1000000, steps: [{kind: rest, duration: 1 h, record_every: 1 s}]}"
    message = refusal(protocol(tmp_path, step))
    assert ("p.yaml:12: experiments[0]: the campaign records about 3.6e+09 points in all (this"
            " experiment 3.6e+09); the limit is 200,000,000 points") in message


def test_the_campaigns_length_is_bounded(tmp_path, monkeypatch):
    step = "{kind: loop, count: 10000, steps: [{kind: rest, duration: 1 day}]}"
    message = refusal(protocol(tmp_path, step))
    assert message == "p.yaml: the campaign is planned to take 27.4 years; the limit is 10 years"


def test_a_fifty_day_run_recorded_every_second_is_planned(tmp_path):
    path = protocol(tmp_path, "{kind: rest, duration: 50 day, record_every: 1 s}",
                    "{kind: loop, count: 240, steps: ['Charge at 0.2C until 4.3 V (1 second"
                    " period)', 'Discharge at 0.2C until 2.8 V (1 second period)']}", cell="f1")
    plan = prepare(path)
    assert plan.makespan_s > 50 * 86400


def test_validate_exits_2_on_a_size_refusal(tmp_path):
    path = protocol(tmp_path, "{kind: rest, duration: 1 h, record_every: 1 us}")
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2 and "10,000,000 points per step" in result.output


@pytest.mark.parametrize(("step", "match"), [
    ("{kind: loop, count: true, steps: ['Rest for 1 hour']}", "count: Input should be a valid"
                                                               " integer"),
    ("{kind: loop, count: 2.0, steps: ['Rest for 1 hour']}", "count: Input should be a valid"
                                                              " integer"),
    ("{kind: plating_stripping, current_density: 0.1 mA/cm^2, half_cycle: 1 h, cycles: true}",
     "cycles: Input should be a valid integer"),
    ("{kind: constant_current, direction: charge, current: C/0, duration: 1 h}",
     "current: a C-rate must be a positive finite number, got 'C/0'"),
    ("'Charge at C/0 until 4.2 V'", "current: a C-rate must be a positive finite number"),
    ("'Hold at 4.2 V until C/0'", "until_current: a C-rate must be a positive finite number"),
    ("{kind: rest, duration: C/0}", "duration: expected a duration, got the C-rate 'C/0'"),
    ("{kind: rest, duration: '\uff11 h'}", "duration: '\uff11 h': write numbers with the"
                                           " digits 0-9"),
    ("{kind: rest, duration: '1 h)'}", "duration: unknown unit 'h)'"),
    ("'Rest for 1 hour" + " (1 minute period)" * 12 + "'",
     "a step string has at most 200 characters, this one has 231"),
])
def test_bad_values_in_steps_are_protocol_errors_naming_the_field(tmp_path, step, match):
    message = refusal(protocol(tmp_path, step, cell="f1"))
    assert message.startswith("p.yaml:15: experiments[0].steps[0]")
    assert match in message


@pytest.mark.parametrize(("field", "value", "message"), [
    ("diameter: 16 mm", "diameter: 1e200 m", "cells[0].diameter: '1e200 m' is outside the lengths"
                                             " of a cell, 1 nm to 10 m"),
    ("thickness: 300 um", "thickness: 1e-300 m", "cells[0].thickness: '1e-300 m' is outside"),
    ("loading: 1.9 mg/cm^2", "loading: 1e300 mg/cm^2", "cells[1].cathode.loading: '1e300 mg/cm^2'"
                                                       " is outside the loadings"),
    ("specific_capacity: 200 mAh/g", "specific_capacity: 1e9 mAh/g",
     "cells[1].cathode.specific_capacity: '1e9 mAh/g' is outside"),
])
def test_cell_geometry_that_would_overflow_is_refused(tmp_path, field, value, message):
    path = protocol(tmp_path, "Rest for 1 hour")
    path.write_text(path.read_text().replace(field, value, 1))
    assert message in refusal(path)


def test_a_c_rate_beyond_any_cell_is_refused(tmp_path):
    message = refusal(protocol(tmp_path, "Charge at 1e300C until 4.2 V", cell="f1"))
    assert "a C-rate above 100000C is not one a cell survives, got '1e300C'" in message


@pytest.mark.parametrize(("f_start_Hz", "f_end_Hz", "per_decade", "average"), [
    (1e5, 0.1, 10, 1), (7e6, 1e-2, 6, 2), (1.0, 1e6, 20, 3), (3e5, 0.05, 5, 1)])
def test_a_spectrums_estimate_is_its_points_durations_summed(f_start_Hz, f_end_Hz, per_decade,
                                                               average):
    """The plan estimates a sweep without numpy; the simulator times its points with it."""
    from drivers.techniques import Impedance

    eis = Impedance(f_start_Hz, f_end_Hz, 0.01, per_decade, average=average)
    assert eis.frequency_count() == len(eis.frequencies_Hz())
    assert eis.sweep_duration_s() == pytest.approx(float(eis.point_durations_s().sum()),
                                                   rel=1e-14)
