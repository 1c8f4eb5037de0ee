"""Every value of the material library is either sourced (a citation) or assumed (with the
reason), never both and never neither; names in ``sources``/``assumed`` must mention a key; a
lab's file that names an unknown value is refused, naming the file."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from materials import LIBRARY_DIR, read_material
from materials.provenance import WIDTH, account, describe
from protocols import load_campaign
from protocols.errors import ProtocolError
from sequencer.cli import app
from tests.test_materials import _protocol

runner = CliRunner()
FILES = sorted(LIBRARY_DIR.glob("*.yaml"))


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_every_library_value_is_sourced_or_assumed_with_a_reason(path):
    m = read_material(path)
    rows, missing, both = m.provenance()
    assert not missing, f"{path.name}: neither sourced nor assumed: {missing}"
    assert not both, f"{path.name}: both sourced and assumed: {both}"
    assert rows, path.name
    blank = [name for name, reason in m.assumed_reasons.items() if not reason.strip()]
    assert not blank, f"{path.name}: assumed without a reason: {blank}"
    for entry, text in m.sources.items():
        assert len(text.strip()) >= 10, f"{path.name}: source {entry!r} cites nothing"
        covered = [r for r in rows if r.entry == entry and r.status == "sourced"]
        assert covered, f"{path.name}: source {entry!r} gives no value"


def test_the_accounting_sees_a_value_left_out_and_a_name_in_both():
    data = {"name": "x", "kind": "electrolyte", "a_V": 1.0, "b_V": 2.0,
            "electrode": {"c": 1, "d": 2}}
    rows, missing, both = account(data, {"a_V": "paper", "electrode": "set"},
                                  {"electrode.d": "guess", "a_V": "guess"})
    assert missing == ["b_V"] and both == ["a_V"]
    assert {(r.value, r.status) for r in rows} == {
        ("a_V", "assumed"), ("electrode.c", "sourced"), ("electrode.d", "assumed")}
    lines = describe(data, {"a_V": "paper"}, {})
    assert any("NOT ACCOUNTED FOR" in line and "b_V" in line for line in lines)


def _lab_file(folder: Path, assumed: str) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / "houseli.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: HouseLi
        kind: anode
        lithium_metal: true
        molar_mass_g_per_mol: 6.94
        sources: {{molar_mass_g_per_mol: "standard atomic weight"}}
        assumed: {assumed}
    """))
    return path


def test_a_library_name_that_mentions_no_key_is_refused(tmp_path):
    bad = yaml.safe_load((LIBRARY_DIR / "lgps.yaml").read_text())
    bad["sources"]["sigma_bulk_S_per_cm"] = "Kamaya 2011"
    path = tmp_path / "lgps.yaml"
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(ValueError, match=r"lgps.yaml: sources.sigma_bulk_S_per_cm: .*"
                       r"'sigma_bulk_S_per_cm', which is not a key"):
        read_material(path)
    bad["sources"].pop("sigma_bulk_S_per_cm")
    bad["assumed"]["oxidation_onset_V"] = "a guess"   # sourced already
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(ValueError, match="'oxidation_onset_V' is both in sources and in assumed"):
        read_material(path)


def test_a_lab_file_assuming_an_unknown_value_is_refused_naming_the_file(tmp_path):
    folder = tmp_path / "materials"
    _lab_file(folder, "{density_mystery: we guessed}")
    result = runner.invoke(app, ["materials", "--folder", str(folder)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    text = " ".join(result.output.split())
    assert "houseli.yaml: assumed.density_mystery: assumed names 'density_mystery'" in text
    # in a protocol's materials folder: located at the entry's line
    with pytest.raises(ProtocolError, match=r"houseli.yaml:6: assumed.density_mystery: "
                       r"assumed names 'density_mystery'"):
        load_campaign(_protocol(tmp_path, "materials: ./materials/"))
    validate = runner.invoke(app, ["validate", str(tmp_path / "lab.yaml")])
    assert validate.exit_code == 2 and "houseli.yaml:6" in validate.output


def test_a_lab_file_may_list_assumed_names_without_reasons(tmp_path):
    folder = tmp_path / "materials"
    path = _lab_file(folder, "[]")
    path.write_text(path.read_text().replace("lithium_metal: true\n",
                                             "lithium_metal: true\ndensity_g_per_cm3: 0.534\n")
                    .replace("assumed: []", "assumed: [density_g_per_cm3]"))
    m = read_material(path, builtin=False)
    assert m.assumed_reasons == {"density_g_per_cm3": ""}
    one = runner.invoke(app, ["materials", "HouseLi", "--folder", str(folder)])
    assert one.exit_code == 0 and "(no reason given)" in one.output


def test_cellseq_materials_name_fits_80_columns_and_lists_both_kinds():
    for name in ("NCM811", "LiPF6-EC-EMC+VC", "LTO", "AIOSE"):
        result = runner.invoke(app, ["materials", name])
        assert result.exit_code == 0, result.output
        lines = result.output.splitlines()
        assert max(len(line) for line in lines) <= WIDTH, name
        assert any(line.startswith("  sourced: ") for line in lines)
        assert any(line.startswith("  assumed: ") for line in lines)
    graphite = runner.invoke(app, ["materials", "graphite"]).output
    assert "Chen2020" in graphite and "electrode.v_min_V" in graphite


def test_docs_materials_page_lists_every_material_sourced_then_assumed_as_the_library_says():
    from materials import builtin
    from materials.docs import PAGE, render

    page = PAGE.read_text(encoding="utf-8")
    assert page == render(page, builtin()), "run python -m materials.docs"
    for m in builtin():
        section = page.split(f"**{m.name}** (`{m.path.name}`", 1)[1].split("\n**", 1)[0]
        assert "Sourced:" in section and "Assumed:" in section, m.name
