"""The material library: every file loads, names as labs write them resolve, unknown names are
refused (at validate, at run --sim, in the simulator and in the analysis), and a lab's own folder
is read like a protocol."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from analysis.errors import AnalysisError
from analysis.materials import molar_properties
from materials import LIBRARY_DIR, UnknownMaterial, builtin, parse_recipe, read_material
from materials.provenance import split_names
from protocols import load_campaign
from protocols.errors import ProtocolError
from sequencer.cli import app
from sequencer.instruments import cell_model
from simulators.cells import ElectrodePairCell, FullCell

runner = CliRunner()

ISSUE_KINDS = {
    "cathode": ["LFP", "LCO", "LMO", "NMC111", "NMC532", "NMC622", "NMC811", "NCA", "LNMO"],
    "anode": ["Li", "graphite", "Si-graphite", "LTO"],
    "electrolyte": ["LiPF6 in EC/EMC", "LiPF6 in EC/DEC", "LiPF6 in EC/DMC",
                    "LiPF6 in EC/EMC + VC", "LiPF6 in EC/DMC + FEC", "PEO-LiTFSI", "Li6PS5Cl",
                    "Li3PS4", "LGPS", "LLZO", "Ta-LLZO", "Al-LLZO", "LATP", "LLTO", "Li3InCl6",
                    "AIOSE", "PEDL", "LLZTO", "c-LLZTO"],
}


def test_every_library_file_loads_with_sources_and_assumed_keys_that_exist():
    files = sorted(LIBRARY_DIR.glob("*.yaml"))
    assert len(files) == len(builtin().names()) >= 35
    for path in files:
        m = read_material(path)
        assert m.sources, path.name
        raw = yaml.safe_load(path.read_text())
        for entry in (n for e in m.assumed for n in split_names(e)):  # names a key of the file
            head, _, rest = entry.partition(".")
            assert head in raw, (path.name, entry)
            if rest:
                assert rest.split(".")[0] in raw[head], (path.name, entry)


@pytest.mark.parametrize(("kind", "names"), ISSUE_KINDS.items())
def test_the_issue_materials_are_in_the_library(kind, names):
    for name in names:
        assert builtin().resolve(name, kind).kind == kind


@pytest.mark.parametrize(("written", "canonical"), [
    ("NCM622", "NCM622"), ("NMC622", "NCM622"), ("nmc-811", "NCM811"), ("NCM 111", "NMC111"),
    ("1 M LiPF6 in EC:EMC 3:7 + 2 wt% VC", "LiPF6-EC-EMC+VC"),
    ("1.2 M LiPF6 in EMC/EC (7:3 v/v)", "LiPF6-EC-EMC"),
    ("LiPF6 EC:DMC 1:1 + 10 wt% FEC", "LiPF6-EC-DMC+FEC"),
    ("Ta-LLZO", "LLZTO"), ("LPSCl", "Li6PS5Cl"), ("argyrodite", "Li6PS5Cl"),
    ("Li (10 um sheet)", "Li"), ("lithium metal", "Li"), ("SiOx-graphite", "Si-graphite"),
])
def test_names_as_labs_write_them(written, canonical):
    assert builtin().resolve(written).name == canonical


def test_recipes_need_known_salts_and_solvents():
    assert parse_recipe("1 M LiPF6 in EC:EMC 3:7") == parse_recipe("LiPF6 EMC/EC")
    assert parse_recipe("1 M LiPF6 in EC:XYZ") is None
    assert parse_recipe("1 M LiPF6 in EC:EMC + unobtainium") is None
    with pytest.raises(UnknownMaterial):
        builtin().resolve("1 M LiPF6 in PC", "electrolyte")  # a recipe with no file


def test_unknown_names_are_refused_with_the_closest_and_how_to_add():
    with pytest.raises(UnknownMaterial) as err:
        builtin().resolve("Li6PS5Br", "electrolyte")
    text = str(err.value)
    assert "Li6PS5Cl" in text and "materials: ./materials/" in text
    with pytest.raises(UnknownMaterial, match="is an anode, not a cathode"):
        builtin().resolve("graphite", "cathode")


def test_the_analysis_accepts_what_the_simulator_accepts():
    nmc = molar_properties("NMC622")
    assert nmc == molar_properties("NCM622")
    assert nmc.molar_mass_kg_per_mol == pytest.approx(0.09693)  # LiNi0.6Mn0.2Co0.2O2
    assert molar_properties("graphite").density_kg_per_m3 == pytest.approx(2260.0)
    with pytest.raises(AnalysisError, match="unobtainium"):
        molar_properties("unobtainium")
    with pytest.raises(AnalysisError, match="no molar_mass"):
        molar_properties("AIOSE")


PROTOCOL = """\
campaign: lab
{materials}
cells:
  - id: nmc-gr-1
    kind: full_cell
    electrolyte: {electrolyte}
    anode: {anode}
    thickness: 25 um
    diameter: 16 mm
    cathode: {{material: {cathode}, loading: 10 mg/cm^2, diameter: 12 mm,
               specific_capacity: 180 mAh/g}}
experiments:
  - name: rest
    cells: [nmc-gr-1]
    steps:
      - {{kind: rest, duration: 1 min}}
"""


def _protocol(tmp_path: Path, materials: str = "", electrolyte: str = "LiPF6 EC/EMC",
              anode: str = "graphite", cathode: str = "NMC622") -> Path:
    path = tmp_path / "lab.yaml"
    path.write_text(PROTOCOL.format(materials=materials, electrolyte=electrolyte, anode=anode,
                                    cathode=cathode))
    return path


@pytest.mark.parametrize(("field", "kwargs", "where"), [
    ("electrolyte", {"electrolyte": "Li6PS5Cx"}, "lab.yaml:6: cells[0].electrolyte"),
    ("anode", {"anode": "graphene foam"}, "lab.yaml:7: cells[0].anode"),
    ("cathode", {"cathode": "NMC9055"}, "lab.yaml:10: cells[0].cathode.material"),
])
@pytest.mark.parametrize("verb", ["validate", "run"])
def test_validate_and_run_refuse_unknown_materials(tmp_path, field, kwargs, where, verb):
    path = _protocol(tmp_path, **kwargs)
    extra = ["--sim", "--out", str(tmp_path / "run")] if verb == "run" else []
    result = runner.invoke(app, [verb, str(path), *extra])
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert where in text and "cell 'nmc-gr-1'" in text and "closest known" in text
    assert "materials: ./materials/" in text and "Traceback" not in text
    assert not (tmp_path / "run").exists()


LAB_ELECTROLYTE = {
    **{k: v for k, v in yaml.safe_load((LIBRARY_DIR / "lipf6-ec-emc.yaml").read_text()).items()
       if k not in ("name", "aliases", "composition", "description", "sources")},
    "name": "HouseLyte-7", "aliases": ["HL7"], "sources": {"all": "our lab's measurements"},
}


def test_a_labs_own_folder_joins_the_library_and_is_listed_as_read(tmp_path):
    folder = tmp_path / "materials"
    folder.mkdir()
    (folder / "houselyte.yaml").write_text(yaml.safe_dump(LAB_ELECTROLYTE))
    campaign = load_campaign(_protocol(tmp_path, "materials: ./materials/", electrolyte="HL7"))
    assert campaign.material_files == ["materials/houselyte.yaml"]
    kept = {f.name: f.data for f in campaign.files}   # what a run directory keeps a copy of
    assert kept["materials/houselyte.yaml"] == (folder / "houselyte.yaml").read_bytes()
    cell = campaign.cells[0]
    model = cell_model(cell)
    assert isinstance(model, ElectrodePairCell)
    assert cell.material_library is not None and cell.material_library.find("HL7") is not None
    # without the folder the name is unknown
    with pytest.raises(ProtocolError, match="HL7"):
        load_campaign(_protocol(tmp_path, "", electrolyte="HL7"))


def test_a_bad_material_file_is_located_like_a_protocol(tmp_path):
    folder = tmp_path / "materials"
    folder.mkdir()
    bad = dict(LAB_ELECTROLYTE)
    bad["sigma_25C_S_per_cm"] = "fast"
    text = yaml.safe_dump(bad, sort_keys=False)
    (folder / "bad.yaml").write_text(text)
    with pytest.raises(ProtocolError) as err:
        load_campaign(_protocol(tmp_path, "materials: ./materials/", electrolyte="HL7"))
    assert "bad.yaml" in str(err.value) and "must be a number" in str(err.value)
    (folder / "bad.yaml").write_text(textwrap.dedent("""\
        name: NMC622
        kind: cathode
        sources: {all: ours}
        lithium_metal: false
    """))
    with pytest.raises(ProtocolError, match=r"bad.yaml:1: .*electrode block"):
        load_campaign(_protocol(tmp_path, "materials: ./materials/"))


def test_a_lab_file_may_not_take_a_library_name(tmp_path):
    folder = tmp_path / "materials"
    folder.mkdir()
    (folder / "mine.yaml").write_text(yaml.safe_dump({**LAB_ELECTROLYTE, "name": "LGPS"}))
    with pytest.raises(ProtocolError, match="already defined"):
        load_campaign(_protocol(tmp_path, "materials: ./materials/"))


def test_a_missing_materials_folder_is_a_located_problem(tmp_path):
    with pytest.raises(ProtocolError, match=r"lab.yaml:2: materials: materials folder 'nope/'"):
        load_campaign(_protocol(tmp_path, "materials: nope/"))


def test_paper_half_cells_keep_the_paper_model_and_others_get_two_electrodes(tmp_path):
    cells = {c.id: cell_model(c) for c in load_campaign(_protocol(tmp_path)).cells}
    assert isinstance(cells["nmc-gr-1"], ElectrodePairCell)
    paper = load_campaign(_protocol(tmp_path, electrolyte="AIOSE", anode="Li",
                                    cathode="NCM811")).cells[0]
    assert isinstance(cell_model(paper), FullCell)


def test_cellseq_materials_lists_the_library_and_shows_one():
    result = runner.invoke(app, ["materials"], env={"COLUMNS": "250"})
    assert result.exit_code == 0
    for name in ("Li6PS5Cl", "LiPF6-EC-EMC+VC", "graphite", "NCM811", "Chen2020"):
        assert name in result.output
    one = runner.invoke(app, ["materials", "argyrodite"])
    assert one.exit_code == 0 and "Li6PS5Cl (electrolyte)" in one.output
    assert "assumed:" in one.output and "Kraft" in " ".join(one.output.split())
    unknown = runner.invoke(app, ["materials", "unobtainium"])
    assert unknown.exit_code == 2 and "Traceback" not in unknown.output


def test_a_lab_file_cannot_claim_the_papers_calibrated_model(tmp_path):
    folder = tmp_path / "materials"
    folder.mkdir()
    (folder / "mine.yaml").write_text(yaml.safe_dump({**LAB_ELECTROLYTE, "paper": True}))
    with pytest.raises(ProtocolError, match=r"mine.yaml:\d+: paper: only the library's own"):
        load_campaign(_protocol(tmp_path, "materials: ./materials/", electrolyte="HL7"))


def test_cellseq_materials_lists_a_labs_folder_too(tmp_path):
    (tmp_path / "houselyte.yaml").write_text(yaml.safe_dump(LAB_ELECTROLYTE))
    result = runner.invoke(app, ["materials", "--folder", str(tmp_path)],
                           env={"COLUMNS": "250"})
    assert result.exit_code == 0 and "HouseLyte-7 *" in result.output
    one = runner.invoke(app, ["materials", "HL7", "--folder", str(tmp_path)])
    assert one.exit_code == 0 and "a lab file" in one.output
    assert runner.invoke(app, ["materials", "--folder", str(tmp_path / "no")]).exit_code == 2


def test_a_name_as_written_is_resolved_once_and_a_new_material_is_seen(tmp_path):
    from materials import Library

    lib = Library(builtin())
    assert lib.find("1 M LiPF6 in EC:EMC 3:7 + 2 wt% VC").name == "LiPF6-EC-EMC+VC"
    assert lib.find("1 M LiPF6 in EC:EMC 3:7 + 2 wt% VC").name == "LiPF6-EC-EMC+VC"
    assert (lib.lookups, lib.lookup_hits) == (2, 1)
    assert lib.find("HouseLi") is None and lib.find("HouseLi") is None   # misses remembered too
    path = tmp_path / "houseli.yaml"
    path.write_text(textwrap.dedent("""\
        name: HouseLi
        kind: anode
        lithium_metal: true
        sources: {all: "a lab's own Li foil"}
    """))
    lab = lib.with_files([path])
    assert lab.find("HouseLi").name == "HouseLi"   # the new library answers with the new file
    lib._add(read_material(path, builtin=False))
    assert lib.find("HouseLi").name == "HouseLi"   # a material added forgets remembered misses


def test_cellseq_materials_in_80_columns_counts_the_sources_instead_of_folding_them():
    """In a narrow terminal each citation would fold into a dozen lines (hundreds of lines in
    all): the table counts them, and `cellseq materials NAME` shows them."""
    result = runner.invoke(app, ["materials"], env={"COLUMNS": "80"})
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert max(len(line) for line in lines if "│" in line) <= 80   # the table's rows
    assert len(lines) < 200
    for name in ("Li6PS5Cl", "graphite", "NCM811"):
        assert name in result.output
    assert "Chen2020" not in result.output and "cellseq materials NAME" in " ".join(lines)


def test_the_library_index_reads_each_files_identity_as_the_whole_file_does():
    """builtin() indexes the files by their top-level identity entries alone; each entry must
    read as the whole file reads it, or a name would find the wrong file (or none)."""
    from materials.library import identity_entries

    for path in sorted(LIBRARY_DIR.glob("*.yaml")):
        found = identity_entries(path.read_text(encoding="utf-8"))
        whole = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert found is not None, path.name
        assert found == {k: whole[k] for k in ("name", "kind", "aliases", "composition")
                         if k in whole}, path.name


def test_a_library_file_is_read_in_full_only_when_a_name_finds_it():
    from materials.library import Library, _indexed, _Unread

    lib = Library(_indexed(p) for p in sorted(LIBRARY_DIR.glob("*.yaml")))
    assert all(isinstance(m, _Unread) for m in lib._by_name.values())
    m = lib.resolve("NMC811", "cathode")
    assert m == read_material(LIBRARY_DIR / "ncm811.yaml")
    assert [n for n, e in lib._by_name.items() if not isinstance(e, _Unread)] == ["NCM811"]
    assert [x.name for x in lib] == [x.name for x in builtin()]   # listing reads every file


@pytest.mark.parametrize("text", [
    "---\nname: X\nkind: anode\n",                   # a document marker at the top
    "{name: X, kind: anode}\n",                      # flow style
    "name: X\nname: Y\nkind: anode\n",               # an identity entry twice
    "name: X\n- kind\n",                             # not a mapping of plain keys
])
def test_a_file_whose_identity_cannot_be_read_apart_is_read_whole(text):
    from materials.library import identity_entries

    assert identity_entries(text) is None


def test_an_identity_that_reads_differently_in_full_is_refused_loudly(tmp_path):
    from materials.library import _Unread

    path = tmp_path / "ncm811.yaml"
    path.write_bytes((LIBRARY_DIR / "ncm811.yaml").read_bytes())
    entry = _Unread("NCM811", "cathode", ("NMC811",), None, path, True)   # aliases differ
    with pytest.raises(ValueError, match=r"^ncm811\.yaml: its name, kind, aliases"):
        entry.read()
