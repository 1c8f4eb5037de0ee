"""Protocol documents: what validates, and how invalid ones are reported."""

import math

import pytest

from protocols import ProtocolError, load_campaign
from protocols.steps import ConstantCurrent, Loop, SetTemperature

from .conftest import QUICKSTART

CELLS = """
campaign: t
cells:
  - id: b1
    kind: blocking
    electrolyte: AIOSE
    thickness: 300 um
    diameter: 16 mm
  - id: f1
    kind: full_cell
    electrolyte: AIOSE
    thickness: 300 um
    diameter: 16 mm
    cathode: {material: NCM811, loading: 1.9 mg/cm^2, diameter: 12 mm,
              specific_capacity: 200 mAh/g}
"""


def doc(steps: str, cells: str = "[b1]") -> str:
    return CELLS + f"""
experiments:
  - name: e
    cells: {cells}
    steps:
{steps}
"""


def errors_of(write_yaml, text: str) -> list[str]:
    with pytest.raises(ProtocolError) as info:
        load_campaign(write_yaml(text))
    return [str(p) for p in info.value.problems]


def test_quickstart_loads_with_si_values():
    c = load_campaign(QUICKSTART)
    blocking, full = c.cells
    assert blocking.thickness == pytest.approx(300e-6)
    assert blocking.membrane_area_m2 == pytest.approx(math.pi * 0.008**2)
    # 1.9 mg/cm^2 on a 12 mm disc at 200 mAh/g: 2.149 mg, 0.4298 mAh (physics.md)
    assert full.cathode.active_mass_kg == pytest.approx(2.149e-6, rel=1e-3)
    assert full.capacity_Ah == pytest.approx(0.4298e-3, rel=1e-3)
    soak = c.experiments[0].steps[0]
    assert isinstance(soak, SetTemperature) and soak.target == pytest.approx(298.15)
    loop = c.experiments[1].steps[2]
    assert isinstance(loop, Loop) and loop.count == 3
    charge = loop.steps[0]
    assert isinstance(charge, ConstantCurrent)
    assert charge.current.kind == "c_rate" and charge.current.value == pytest.approx(0.1)
    assert charge.until_voltage == pytest.approx(4.35)


def test_wrong_dimension_names_the_field_and_line(write_yaml):
    text = doc("""      - kind: peis
        f_start: 3 MHz
        f_end: 0.1 Hz
        amplitude: 10 mA""")
    (msg,) = errors_of(write_yaml, text)
    assert msg == ("protocol.yaml:24: experiments[0].steps[0].amplitude: expected a voltage,"
                   " got '10 mA' (a current)")


def test_unknown_step_kind(write_yaml):
    (msg,) = errors_of(write_yaml, doc("      - kind: teleport\n        duration: 1 h"))
    assert msg.startswith("protocol.yaml:21: experiments[0].steps[0]: unknown step kind"
                          " 'teleport'; known kinds: 'cc_discharge', 'cccv_charge', 'ccd_ramp', ")
    assert "'plating_stripping'" in msg and "'set_temperature'" in msg


def test_missing_field(write_yaml):
    (msg,) = errors_of(write_yaml, doc("      - kind: rest"))
    assert msg == "protocol.yaml:21: experiments[0].steps[0]: missing required field 'duration'"


def test_unknown_key(write_yaml):
    (msg,) = errors_of(write_yaml, doc("      - kind: rest\n        duration: 1 h\n"
                                       "        durration: 2 h"))
    assert msg == "protocol.yaml:23: experiments[0].steps[0].durration: unknown key 'durration'"


def test_invalid_yaml_gives_the_line(write_yaml):
    (msg,) = errors_of(write_yaml, "campaign: t\ncells: [\n  - id: x\n")
    assert msg.startswith("protocol.yaml:3: invalid YAML")


def test_every_problem_is_listed(write_yaml):
    text = doc("""      - kind: rest
        duration: -1 h
      - kind: peis
        f_start: 3 MHz
        f_end: 3 MHz
        amplitude: 10 mV
      - kind: constant_current
        direction: charge
        current: 1 mA""")
    msgs = errors_of(write_yaml, text)
    assert len(msgs) == 3
    assert "steps[0].duration: must be greater than zero, got '-1 h'" in msgs[0]
    assert "steps[1]: f_start and f_end must differ" in msgs[1]
    assert "steps[2]: give until_voltage, duration or both" in msgs[2]


def test_c_rate_needs_a_cathode(write_yaml):
    text = doc("""      - kind: constant_current
        direction: charge
        current: 0.1C
        duration: 1 h""")
    (msg,) = errors_of(write_yaml, text)
    assert "cell 'b1' (blocking) has no cathode capacity" in msg


def test_cells_must_exist(write_yaml):
    (msg,) = errors_of(write_yaml, doc("      - kind: rest\n        duration: 1 h", "[nope]"))
    assert msg == "protocol.yaml:19: experiments[0].cells[0]: cell 'nope' is not among the" \
        " cells (b1, f1)"


def test_full_cell_needs_cathode(write_yaml):
    text = CELLS.replace("    cathode: {material: NCM811, loading: 1.9 mg/cm^2, diameter: 12 mm,\n"
                         "              specific_capacity: 200 mAh/g}\n", "")
    text += "experiments:\n  - name: e\n    cells: [f1]\n    steps:\n      - kind: rest\n" \
            "        duration: 1 h\n"
    (msg,) = errors_of(write_yaml, text)
    assert "cells[1]: a full_cell needs a cathode" in msg


def test_geometry_needs_exactly_one_of_area_and_diameter(write_yaml):
    text = CELLS.replace("    diameter: 16 mm\n", "    diameter: 16 mm\n    area: 2 cm^2\n", 1)
    text += "experiments:\n  - name: e\n    cells: [b1]\n    steps:\n      - kind: rest\n" \
            "        duration: 1 h\n"
    (msg,) = errors_of(write_yaml, text)
    assert "cells[0]: give exactly one of area or diameter" in msg


@pytest.mark.parametrize(("text", "expected"), [
    ("", "the file is empty"),
    ("- a\n- b\n", "the top level must be a mapping of keys, not a list"),
    ("a: 1\na: 2\n", "key 'a' appears twice"),
    ("!!python/object/apply:os.system ['true']\n", "invalid YAML"),
    # read first by libyaml, whose messages say less: the alias is named as PyYAML names it
    ("campaign: t\ncells: *cells\n", ":2: invalid YAML: found undefined alias 'cells'"),
    ("campaign: t\n\tcells: []\n", ":2: invalid YAML: found character '\\t' that cannot"),
])
def test_malformed_files(write_yaml, text, expected):
    (msg,) = errors_of(write_yaml, text)
    assert expected in msg


def test_non_utf8(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_bytes(b"campaign: t\ndescription: \xff\xfe\n")
    with pytest.raises(ProtocolError, match=r"^bad.yaml:2: not UTF-8 text \(byte 0xff\)$"):
        load_campaign(path)


def test_alias_bomb_fails_fast(write_yaml):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for k in range(1, 10):
        prev = f"*a{k - 1}"
        lines.append(f"a{k}: &a{k} [{', '.join([prev] * 10)}]")
    (msg,) = errors_of(write_yaml, "\n".join(lines) + "\n")
    assert "expands to more than" in msg


def test_set_temperature_in_a_loop_is_refused(write_yaml):
    text = doc("""      - kind: loop
        count: 2
        steps:
          - kind: set_temperature
            target: 30 degC""")
    (msg,) = errors_of(write_yaml, text)
    assert "set_temperature inside a loop is not supported" in msg


def test_every_only_inside_loops(write_yaml):
    (msg,) = errors_of(write_yaml, doc("      - kind: rest\n        duration: 1 h\n"
                                       "        every: 5"))
    assert "'every' only applies inside a loop" in msg


def test_includes_merge_cells_and_experiments(tmp_path):
    (tmp_path / "cells.yaml").write_text(CELLS)
    (tmp_path / "top.yaml").write_text(
        "campaign: top\ninclude: [cells.yaml]\nexperiments:\n  - name: e\n    cells: [f1]\n"
        "    steps: ['Rest for 1 hour']\n")
    c = load_campaign(tmp_path / "top.yaml")
    assert [x.id for x in c.cells] == ["b1", "f1"] and c.experiments[0].cells == ["f1"]
    assert c.sources == ["top.yaml", "cells.yaml"]


def test_include_cycles_and_duplicates_name_the_files(tmp_path):
    (tmp_path / "a.yaml").write_text(CELLS.replace("campaign: t", "campaign: a")
                                     + "include: [b.yaml]\n")
    (tmp_path / "b.yaml").write_text("campaign: b\ninclude: [a.yaml, missing.yaml]\n")
    with pytest.raises(ProtocolError) as info:
        load_campaign(tmp_path / "a.yaml")
    msgs = [str(p) for p in info.value.problems]
    assert ("b.yaml:2: include[0]: include cycle: a.yaml -> b.yaml -> a.yaml"
            " (included from a.yaml:16)") in msgs
    assert ("b.yaml:2: include[1]: included file 'missing.yaml' does not exist"
            " (included from a.yaml:16)") in msgs
    (tmp_path / "b.yaml").write_text(CELLS.replace("campaign: t", "campaign: b"))
    with pytest.raises(ProtocolError) as info:
        load_campaign(tmp_path / "a.yaml")
    msgs = [str(p) for p in info.value.problems]
    assert ("b.yaml:4: cells[0].id: cell id 'b1' is already used in a.yaml (cells[0])"
            " (included from a.yaml:16)") in msgs


def test_pybamm_strings_are_steps(write_yaml):
    text = doc("""      - Charge at C/10 until 4.35 V
      - Hold at 4.35 V until C/50
      - Rest for 1 hour (1 minute period)
      - Discharge at 0.5 mA for 2 hours or until 2.8 V""", "[f1]")
    c = load_campaign(write_yaml(text))
    charge, hold, rest, discharge = c.experiments[0].steps
    assert charge.kind == "constant_current" and charge.direction == "charge"
    assert charge.current.kind == "c_rate" and charge.until_voltage == 4.35
    assert hold.kind == "constant_voltage" and hold.until_current.value == pytest.approx(0.02)
    assert rest.duration == 3600 and rest.record_every == 60
    assert discharge.duration == 7200 and discharge.current.value == pytest.approx(5e-4)


def test_a_bad_pybamm_string_names_the_step(write_yaml):
    (msg,) = errors_of(write_yaml, doc("      - Charge at 4 W for 1 hour", "[f1]"))
    assert msg == ("protocol.yaml:21: experiments[0].steps[0]: 'Charge at 4 W for 1 hour':"
                   " power and resistance control are not supported")
