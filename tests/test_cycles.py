"""A cycle is a charge and the discharge after it however the loops nest; cycles of one tag,
C-rate and temperature are a series, and retention compares a cycle with its series' first."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from analysis.cycles import StepOutcome, cycles_of, series_of, series_retention
from analysis.summary_record import summary_of
from sequencer.cli import app
from sequencer.runner import run_simulated
from store import RunStore

ONE_C = 1e-3   # A


def cc(count: int, amps: float, ah: float, tag: str = "", kind: str = "constant_current",
       written: str = "", temperature: float = 25.0) -> StepOutcome:
    """A step that passed ``ah`` in the direction of ``amps``."""
    charge, discharge = (ah, 0.0) if amps > 0 else (0.0, ah)
    return StepOutcome(count, kind, charge, discharge, 3.9 * charge, 3.7 * discharge,
                       current_A=amps, tag=tag, written_kind=written or kind,
                       temperature_degC=temperature)


def rest(count: int) -> StepOutcome:
    return StepOutcome(count, "rest", 1e-9, 1e-9)


def test_a_check_up_inside_an_aging_loop_is_a_cycle_of_its_own():
    """Iteration 1 of a 1C loop with a C/3 check-up every 100: the check-up and the 1C cycle
    are two cycles, not one summed (the issue's 340 mAh/g)."""
    steps = [cc(1, ONE_C / 3, 1.0e-3), rest(2), cc(3, -ONE_C / 3, 0.98e-3),      # check-up
             cc(4, ONE_C, 0.95e-3), cc(5, -ONE_C, 0.93e-3)]                     # 1C
    first, second = cycles_of(steps)
    assert first.discharge_Ah == pytest.approx(0.98e-3)
    assert second.discharge_Ah == pytest.approx(0.93e-3)
    assert first.c_rate(ONE_C) == 0.33 and second.c_rate(ONE_C) == 1.0


def test_nested_loops_and_a_discharge_after_a_loop_do_not_merge_cycles():
    steps, k = [], 0
    for _outer in range(2):           # outer loop: check-up, then an inner loop of 1C cycles
        k += 1
        steps += [cc(k, ONE_C / 3, 1e-3), cc(k + 1, -ONE_C / 3, 1e-3)]
        k += 1
        for _ in range(3):
            steps += [cc(k + 1, ONE_C, 0.9e-3), rest(k + 2), cc(k + 3, -ONE_C, 0.9e-3)]
            k += 3
    steps += [cc(k + 1, ONE_C / 2, 0.9e-3), cc(k + 2, -5 * ONE_C, 0.6e-3)]   # after the loops
    cycles = cycles_of(steps)
    assert [c.c_rate(ONE_C) for c in cycles] == [0.33, 1, 1, 1, 0.33, 1, 1, 1, 5]
    assert all(len(c.charges) == 1 and len(c.discharges) == 1 for c in cycles)
    assert cycles[-1].discharge_Ah == pytest.approx(0.6e-3)


def test_halves_hold_several_steps_and_measuring_steps_belong_to_no_cycle():
    steps = [cc(1, ONE_C, 0.9e-3),
             StepOutcome(2, "constant_voltage", 0.08e-3, 0.0),           # CV after CC charge
             StepOutcome(3, "peis", 0.0, 0.0), rest(4),
             cc(5, -ONE_C, 0.8e-3), cc(6, -ONE_C / 10, 0.15e-3),          # 1C then C/10
             cc(7, ONE_C / 10, 0.01e-3, written="gitt")]                  # a titration pulse
    (cycle,) = cycles_of(steps)
    assert [s.step_count for s in cycle.steps] == [1, 2, 5, 6]
    assert cycle.coulombic_efficiency == pytest.approx(0.95e-3 / 0.98e-3)
    assert cycle.c_rate(ONE_C) == 1.0     # the first discharge's rate


def test_a_discharge_first_and_a_change_of_tag_start_cycles():
    steps = [cc(1, -ONE_C, 0.2e-3), cc(2, ONE_C, 1e-3), cc(3, -ONE_C, 1e-3),
             cc(4, -ONE_C, 0.1e-3, tag="rpt")]
    a, b, c = cycles_of(steps)
    assert a.coulombic_efficiency is None and not a.charges
    assert b.coulombic_efficiency == pytest.approx(1.0)
    assert c.tag == "rpt" and not c.charges


def test_series_are_tag_rate_and_temperature_and_span_interruptions():
    steps, k = [], 0

    def cycle(amps, ah, tag="", temperature=25.0):
        nonlocal k
        steps.extend([cc(k + 1, amps, ah, tag, temperature=temperature),
                      cc(k + 2, -amps, ah, tag, temperature=temperature)])
        k += 2

    fade = [1.0e-3 * (1 - 0.01 * n) for n in range(10)]
    for n, q in enumerate(fade):
        if n % 4 == 0:
            cycle(ONE_C / 3, 1.1e-3 * (1 - 0.005 * n))          # check-up every 4
        cycle(ONE_C, q)
    cycle(ONE_C, 0.5e-3, tag="aging")                        # tagged: a series of its own
    cycle(ONE_C, 0.4e-3, temperature=60.0)                   # another temperature
    cycles = cycles_of(steps)
    series = series_of(cycles, ONE_C)
    names = [str(s.key) for s in series]
    assert names == ["0.33C, 25 degC", "1C, 25 degC", "aging, 1C, 25 degC", "1C, 60 degC"]
    assert [len(s.cycles) for s in series] == [3, 10, 1, 1]
    one_c = series[1].cycles
    # like with like: the last 1C cycle over the first, across the check-ups between them
    assert series_retention(cycles[:-2], ONE_C) == pytest.approx(fade[-1] / fade[0])
    assert series_retention(cycles, ONE_C, one_c[4]) == pytest.approx(fade[4] / fade[0])
    checkups = series[0].cycles
    assert series_retention(cycles, ONE_C, checkups[-1]) == pytest.approx(0.96 / 1.0)
    # a cycle alone in its series compares with itself; nothing discharged: nothing to compare
    assert series_retention(cycles, ONE_C) == pytest.approx(1.0)
    assert series_retention([], ONE_C) is None


RPT_IN_AGING = """
campaign: rpt
cells:
  - id: ncm-1
    kind: full_cell
    electrolyte: AIOSE
    thickness: 300 um
    diameter: 16 mm
    cathode: {material: NCM811, loading: 1.9 mg/cm^2, diameter: 12 mm,
              specific_capacity: 200 mAh/g}
    limits: {max_voltage: 4.45 V, min_voltage: 2.5 V, max_current: 5 mA}
experiments:
  - name: aging
    cells: [ncm-1]
    steps:
      - {kind: set_temperature, target: 25 degC, tolerance: 0.5 K, hold: 10 min, timeout: 3 h}
      - kind: loop
        count: 3
        steps:
          - {kind: cccv_charge, current: C/3, voltage: 4.35 V, until_current: C/50, tag: rpt}
          - {kind: constant_current, direction: discharge, current: C/3, until_voltage: 2.8 V,
             tag: rpt}
          - kind: loop
            count: 8
            tag: aging
            steps:
              - {kind: cccv_charge, current: 1C, voltage: 4.35 V, until_current: C/20}
              - {kind: rest, duration: 5 min}
              - {kind: cc_discharge, current: 1C, until_voltage: 2.8 V}
      - {kind: constant_current, direction: charge, current: 0.5C, until_voltage: 4.35 V}
      - {kind: constant_current, direction: discharge, current: 5C, until_voltage: 2.8 V,
         record_every: 2 s}
"""


@pytest.fixture(scope="module")
def aging_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("aging")
    (tmp / "p.yaml").write_text(RPT_IN_AGING, encoding="utf-8")
    outcome = run_simulated(tmp / "p.yaml", tmp / "run", seed=3)
    assert not outcome.faulted
    return tmp / "run"


def test_nested_check_ups_are_their_own_series_in_the_report(aging_run):
    results = summary_of(aging_run)["results"]
    capacity = {r["conditions"]["cycle"]: r for r in results
                if r["quantity"] == "discharge_capacity"}
    assert sorted(capacity) == list(range(1, 3 * 9 + 2))    # 3 x (1 check-up + 8) + the 5C
    rpt = [c for c, r in capacity.items() if r["conditions"].get("tag") == "rpt"]
    assert rpt == [1, 10, 19]
    assert {capacity[c]["conditions"]["c_rate"] for c in rpt} == {0.33}
    aging = [c for c, r in capacity.items() if r["conditions"].get("tag") == "aging"]
    assert len(aging) == 24 and {capacity[c]["conditions"]["c_rate"] for c in aging} == {1.0}
    assert capacity[28]["conditions"]["c_rate"] == 5.0 and "tag" not in capacity[28]["conditions"]
    # no cycle sums two discharges: every one is below the cell's nominal 200 mAh/g
    assert all(r["value"] < 215 for r in capacity.values())
    slow = [capacity[c]["value"] for c in rpt]
    fast = [capacity[c]["value"] for c in aging]
    assert min(slow) > max(fast) > capacity[28]["value"]          # C/3 > 1C > 5C
    series = {capacity[c]["conditions"]["series"] for c in rpt} | \
        {capacity[c]["conditions"]["series"] for c in aging}
    assert len(series) == 2
    retention = [r for r in results if r["quantity"] == "capacity_retention"]
    (kept,) = retention        # the aging series spans 26 cycles; the check-ups span 19
    assert kept["conditions"]["tag"] == "aging" and kept["conditions"]["cycles"] == 24
    assert (kept["conditions"]["first_cycle"], kept["conditions"]["last_cycle"]) == (2, 27)
    assert 90 < kept["value"] <= 100.5


def test_the_tag_is_kept_with_each_step_the_loop_and_compound_steps_became(aging_run):
    store = RunStore.open(aging_run)
    try:
        steps = store.steps("ncm-1")
    finally:
        store.close()
    tags = {(s["kind"], s["params"].get("written_kind"), s["params"].get("tag"))
            for s in steps if s["kind"] != "set_temperature"}
    assert ("constant_voltage", "cccv_charge", "aging") in tags   # compound step in a loop
    assert ("rest", "rest", "aging") in tags
    assert ("constant_voltage", "cccv_charge", "rpt") in tags       # its own tag
    assert ("constant_current", "constant_current", "rpt") in tags
    assert ("constant_current", "constant_current", "") in tags   # the 5C after the loops


def test_export_cycles_writes_one_row_per_cycle_with_bdf_names(aging_run, tmp_path):
    result = CliRunner().invoke(app, ["export", str(aging_run), "--cycles", "--to",
                                      str(tmp_path)])
    assert result.exit_code == 0, result.output
    import pandas as pd

    table = pd.read_csv(tmp_path / "cycles.csv", keep_default_na=False)
    assert list(table.columns) == [
        "Cell", "Experiment", "Cycle Count / 1", "Tag", "Series / 1", "Charging Capacity / Ah",
        "Discharging Capacity / Ah", "Charging Energy / Wh", "Discharging Energy / Wh",
        "Coulombic Efficiency / %", "Mean Charge Voltage / V", "Mean Discharge Voltage / V",
        "Charge End Reason", "Discharge End Reason", "Temperature T1 / degC", "C-Rate / 1",
        "Charge C-Rate / 1", "Note"]
    assert table["Cycle Count / 1"].tolist() == list(range(1, 29))
    assert table["Tag"].tolist()[:10] == ["rpt"] + ["aging"] * 8 + ["rpt"]
    ce = table["Coulombic Efficiency / %"].astype(float)
    ratio = 100 * table["Discharging Capacity / Ah"] / table["Charging Capacity / Ah"]
    assert ce.to_numpy() == pytest.approx(ratio.to_numpy())
    v_charge = table["Mean Charge Voltage / V"].astype(float)
    v_discharge = table["Mean Discharge Voltage / V"].astype(float)
    assert ((v_discharge > 2.8) & (v_discharge < v_charge) & (v_charge < 4.35)).all()
    assert set(table["Discharge End Reason"]) == {"voltage"}
    assert set(table["Temperature T1 / degC"]) == {25.0}
    assert table["C-Rate / 1"].tolist()[-1] == 5.0 and table["Charge C-Rate / 1"].tolist()[-1] \
        == 0.5
    report = summary_of(aging_run)["results"]
    q = {r["conditions"]["cycle"]: r["value"] for r in report
         if r["quantity"] == "discharge_capacity"}
    # the table's capacities are the report's
    assert (table["Discharging Capacity / Ah"] / table["Discharging Capacity / Ah"][1]).tolist() \
        == pytest.approx([q[c] / q[2] for c in range(1, 29)])


def test_a_cell_called_cycles_keeps_its_file_and_the_table_goes_beside_it(write_yaml,
                                                                          tmp_path):
    protocol = write_yaml(RPT_IN_AGING.replace("ncm-1", "cycles").replace("count: 8",
                                                                        "count: 1")
                          .replace("count: 3", "count: 1"))
    run_simulated(protocol, tmp_path / "run", seed=1)
    result = CliRunner().invoke(app, ["export", str(tmp_path / "run"), "--cycles"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / "export" / "cycles~2.csv").exists()
    assert "cycles~2.csv" in result.output


def test_a_li_cu_cycle_plates_then_strips():
    plate, strip = 1e-4, 0.96e-4
    steps = [cc(1, -1e-4, plate), cc(2, 1e-4, strip), cc(3, -1e-4, plate), cc(4, 1e-4, strip)]
    cycles = cycles_of(steps, leading="discharge")
    assert len(cycles) == 2
    assert [c.coulombic_efficiency for c in cycles] == pytest.approx([0.96, 0.96])
    # counted charge-first, the same steps pair a stripping with the next plating
    assert [c.coulombic_efficiency for c in cycles_of(steps)][1] == pytest.approx(1 / 0.96)
