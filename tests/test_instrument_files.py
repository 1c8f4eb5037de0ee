"""Real instrument files (tests/data/yadg_eclab, tests/data/newarenda: see their READMEs):
`cellseq analyze eis` cuts them into their spectra, and `cellseq import` turns them into runs
that status, export and report read. Counts and intercepts are checked against what the files
themselves hold (their loop counters, their own columns), and .mpr against .mpt of one
measurement."""

from __future__ import annotations

import gzip
import json
import shutil

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from analysis.eis import bulk_resistance
from analysis.readers import read_recording
from analysis.spectrum_files import read_spectra
from sequencer.cli import app
from store import RunStore

from .conftest import ROOT

pytest.importorskip("galvani", reason="the EC-Lab .mpr reader (cellseq[eclab]) is not installed")

ECLAB = ROOT / "tests" / "data" / "yadg_eclab"
NEWARE = ROOT / "tests" / "data" / "newarenda"
runner = CliRunner()


def cellseq(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def unzipped(tmp_path, name: str):
    path = tmp_path / name
    path.write_bytes(gzip.decompress((ECLAB / f"{name}.gz").read_bytes()))
    return path


def intercepts(path, **kwargs) -> list[float]:
    return [bulk_resistance(p.spectrum.frequency_Hz, p.spectrum.z_real_ohm,
                            p.spectrum.z_imag_ohm) for p in read_spectra(path, **kwargs).spectra]


# --- analyze eis -----------------------------------------------------------------------------

def test_a_32_loop_peis_mpr_gives_one_result_per_spectrum_in_file_order():
    result = cellseq("analyze", "eis", ECLAB / "vsp_peis_with.mpr", "--thickness", "300um",
                     "--diameter", "16mm")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    spectra = doc["spectra"]
    assert [s["index"] for s in spectra] == list(range(1, 33))
    assert all(s["points"] == 70 for s in spectra)
    # the file's first loop crosses the real axis at 14.6 Ohm, its last at 27.6 (the aging
    # series the file holds), not one mixed figure for all 2,240 points
    assert spectra[0]["bulk_resistance_ohm"] == pytest.approx(14.60, abs=0.01)
    assert spectra[-1]["bulk_resistance_ohm"] == pytest.approx(27.62, abs=0.01)
    times = [s["time_s"] for s in spectra]
    assert times == sorted(times) and len(set(times)) == 32
    assert all(s["fit"] is None for s in spectra)
    assert "fit cross-check not run: the file holds 32 spectra" in result.stderr
    area = np.pi * 0.008**2
    assert spectra[0]["ionic_conductivity_mS_cm"] == pytest.approx(
        300e-6 / (area * spectra[0]["bulk_resistance_ohm"]) * 10)


def test_mpr_and_mpt_of_one_measurement_give_the_same_numbers(tmp_path):
    for mpr, mpt, loops in (("vsp_peis_with.mpr", unzipped(tmp_path, "vsp_peis_with.mpt"), 32),
                            ("peis.issue_149.mpr", ECLAB / "peis.issue_149.mpt", 4),
                            ("geis.mpr", unzipped(tmp_path, "geis.mpt"), 61)):
        binary, text = intercepts(ECLAB / mpr), intercepts(mpt)
        assert len(binary) == len(text) == loops
        assert binary == pytest.approx(text, rel=1e-6)


def test_spectra_follow_the_files_own_loop_counter():
    recording = read_recording(ECLAB / "peis.issue_149.mpr").recording
    series = read_spectra(ECLAB / "peis.issue_149.mpr")
    loops = recording.counters["cycle"]
    assert [len(p.spectrum) for p in series.spectra] == \
        [int(np.count_nonzero(loops == k)) for k in np.unique(loops)]


def test_geis_rest_rows_and_high_frequency_artefacts_are_left_out_visibly():
    series = read_spectra(ECLAB / "geis.mpr")
    assert series.galvanostatic and len(series.spectra) == 61
    assert "29 rows with frequency 0 and no impedance" in " ".join(series.notes)
    first = series.spectra[0]
    assert first.left_out.startswith("galvanostatic: the 8 highest-frequency points")
    recording = read_recording(ECLAB / "geis.mpr").recording
    sweep = np.flatnonzero((recording.counters["cycle"] == 1) &
                           (recording.columns["frequency_Hz"] > 0))
    re_z = recording.columns["z_real_ohm"][sweep]
    assert re_z[0] < 0            # the 1 MHz point is no impedance of a cell
    kept = first.spectrum
    assert len(kept) == len(sweep) - 8
    # the intercept is read from the kept points: Re Z at the first of them (still capacitive)
    assert intercepts(ECLAB / "geis.mpr")[0] == pytest.approx(kept.z_real_ohm[0])
    assert kept.z_imag_ohm[0] < 0
    # read as potentiostatic, the 1 MHz point would be taken for the intercept
    assert intercepts(ECLAB / "geis.mpr", galvanostatic=False)[0] == pytest.approx(re_z[0])
    result = cellseq("analyze", "eis", ECLAB / "geis.mpr")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["galvanostatic"] and doc["spectra"][0]["left_out"] == first.left_out


def test_plot_of_a_series(tmp_path):
    png = tmp_path / "series.png"
    result = cellseq("analyze", "eis", ECLAB / "peis.issue_149.mpr", "--plot", png)
    assert result.exit_code == 0, result.output
    assert png.read_bytes().startswith(b"\x89PNG") and json.loads(result.stdout)["plot"]


# --- import ----------------------------------------------------------------------------------

FULL_CELL = ("--kind", "full_cell", "--electrolyte", "LP30", "--thickness", "25um",
             "--diameter", "16mm", "--cathode", "NCM811", "--loading", "10mg/cm^2",
             "--cathode-diameter", "12mm", "--specific-capacity", "200mAh/g")


def imported(tmp_path, name: str, *files, options=FULL_CELL):
    run = tmp_path / name
    result = cellseq("import", *files, "--out", run, *options)
    assert result.exit_code == 0, result.output
    return run, result


def summary(run) -> dict:
    result = cellseq("report", run)
    assert result.exit_code == 0, result.output
    return json.loads((run / "report" / "summary.json").read_text())


def test_an_ec_lab_gcpl_import_is_a_run_that_report_and_export_handle(tmp_path):
    runs = {}
    for name in ("gcpl.issue_149.mpr", "gcpl.issue_149.mpt"):
        # a microgram-scale cathode: the file's half cycles move 0.08 uAh each
        small = tuple("0.01mg/cm^2" if o == "10mg/cm^2" else o for o in FULL_CELL)
        run, _ = imported(tmp_path, name, ECLAB / name, options=small)
        store = RunStore.open(run)
        try:
            assert store.point_count() == 132
            steps = store.steps()
        finally:
            store.close()
        assert [s["kind"] for s in steps[:3]] == ["rest", "constant_current", "constant_current"]
        assert {s["cycle"] for s in steps} == {1, 2, 3, 4}
        manifest = json.loads((run / "manifest.json").read_text())
        assert manifest["mode"] == "imported"
        assert manifest["files"][0]["sha256"] == read_recording(ECLAB / name).sha256
        results = summary(run)["results"]
        runs[name] = {(r["quantity"], r["conditions"]["cycle"]): r["value"] for r in results
                      if "cycle" in r["conditions"]}
        export = cellseq("export", run)
        assert export.exit_code == 0, export.output
        assert len(pd.read_csv(run / "export" / "gcpl.issue_149.csv")) == 132
    assert runs["gcpl.issue_149.mpr"].keys() == runs["gcpl.issue_149.mpt"].keys()
    assert all(runs["gcpl.issue_149.mpr"][("discharge_capacity", c)] > 0 for c in (1, 2, 3))
    for key, value in runs["gcpl.issue_149.mpr"].items():
        other = runs["gcpl.issue_149.mpt"][key]
        assert (value is None) == (other is None), key
        assert value is None or value == pytest.approx(other, rel=1e-6), key


def test_a_neware_import_gives_the_files_own_capacities(tmp_path):
    path = NEWARE / "TESTCELL0001-B2-2025-M50T_NewareNDA_Investigation.ndax"
    big = ("--kind", "full_cell", "--cathode", "NCM811", "--loading", "100mg/cm^2",
           "--cathode-area", "250cm2", "--specific-capacity", "200mAh/g")   # a 4.7 Ah cell
    run, _ = imported(tmp_path, "neware", path, options=big)
    store = RunStore.open(run)
    try:
        assert store.point_count() == 77_745
        assert len(store.steps()) == 32
        info = store.meta()["cells"]["TESTCELL0001-B2-2025-M50T_NewareNDA_Investigation"]
    finally:
        store.close()
    capacities = {r["conditions"]["cycle"]: r["value"] for r in summary(run)["results"]
                  if r["quantity"] == "discharge_capacity"}
    assert sorted(capacities) == list(range(1, 9))
    import NewareNDA

    frame = NewareNDA.read(str(path))
    own = frame.groupby(["Cycle", "Step"])["Discharge_Capacity(mAh)"].max().groupby("Cycle").sum()
    for cycle, mAh in own.items():
        assert capacities[cycle] * info["active_mass_kg"] * 1e3 == pytest.approx(mAh, rel=1e-6)
    status = cellseq("status", run)
    assert status.exit_code == 0 and "imported" in status.output
    export = cellseq("export", run)
    assert export.exit_code == 0, export.output


def test_files_of_one_cell_are_joined_in_time_order(tmp_path):
    run, result = imported(tmp_path, "joined", NEWARE / "TestFile.nda",
                           ECLAB / "gcpl.issue_149.mpr", "--cell", "cell-7")
    store = RunStore.open(run)
    try:
        steps = store.steps()
        series = store.read("cell-7")
    finally:
        store.close()
    assert steps[0]["experiment"] == "gcpl.issue_149"    # recorded first
    assert steps[-1]["experiment"] == "TestFile"
    assert np.all(np.diff(series["test_time_s"]) >= 0)
    gcpl = max(s["cycle"] for s in steps if s["experiment"] == "gcpl.issue_149")
    assert min(s["cycle"] for s in steps if s["experiment"] == "TestFile") == gcpl + 1
    assert np.all(np.diff(series["charge_Ah"]) >= 0)
    assert "cycles numbered on from 5" in result.output


def test_a_file_given_twice_or_overlapping_is_refused(tmp_path):
    twice = cellseq("import", ECLAB / "gcpl.issue_149.mpr", ECLAB / "gcpl.issue_149.mpr",
                    "--out", tmp_path / "a")
    assert twice.exit_code == 2 and "same file" in twice.output
    overlap = cellseq("import", ECLAB / "gcpl.issue_149.mpr", ECLAB / "gcpl.issue_149.mpt",
                      "--out", tmp_path / "b")
    assert overlap.exit_code == 2 and "overlap in time" in overlap.output
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize(("name", "data", "message"), [
    ("fake.mpr", b"EC-Lab ASCII FILE\r\n", "not an EC-Lab .mpr file"),
    ("fake.mpt", b"freq/Hz\tRe(Z)/Ohm\n1\t2\n", "not an EC-Lab .mpt file"),
    ("fake.ndax", b"NEWARE not a zip", "not a Neware .ndax file (an .ndax is a zip archive"),
    ("fake.nda", b"PK\x03\x04", "not a Neware .nda file"),
    ("fake.csv", b"time,volts\n1,2\n", "not a BDF CSV file: no 'Test Time / s' column"),
    ("fake.txt", b"x", "unknown kind of file '.txt'"),
])
def test_a_file_that_is_not_what_it_claims_exits_2_naming_it(tmp_path, name, data, message):
    path = tmp_path / name
    path.write_bytes(data)
    result = cellseq("import", path, "--out", tmp_path / "run")
    assert result.exit_code == 2, result.output
    assert f"{path}: {message}" in result.output.replace("\n", " ") or message in result.output
    assert "Traceback" not in result.output and not (tmp_path / "run").exists()


@pytest.mark.parametrize(("name", "keep", "rows"), [
    ("gcpl.issue_149.mpr", 15_000, None), ("gcpl.issue_149.mpt", 40_000, None)])
def test_a_truncated_file_imports_what_it_holds_and_says_where_it_ends(tmp_path, name, keep,
                                                                        rows):
    whole = (ECLAB / name).read_bytes()
    cut = tmp_path / name
    cut.write_bytes(whole[:keep])
    run, result = imported(tmp_path, "cut", cut)
    full = len(read_recording(ECLAB / name).recording)
    store = RunStore.open(run)
    try:
        points = store.point_count()
    finally:
        store.close()
    assert 0 < points < full
    assert "warning:" in result.output and "cut off" in result.output
    assert "file_truncated" in (run / "run.log").read_text()
    notes = " ".join(summary(run)["notes"])
    assert "cut off" in notes


NDAX = NEWARE / "TESTCELL0001-B2-2025-M50T_NewareNDA_Investigation.ndax"


def member_span(path, member: str) -> tuple[int, int]:
    """Where a member's compressed bytes lie in a zip (its local header first)."""
    import zipfile

    info = zipfile.ZipFile(path).getinfo(member)
    return info.header_offset, info.header_offset + 30 + len(member) + 20 + info.compress_size


def test_a_truncated_ndax_imports_the_points_it_times_and_names_what_was_lost(tmp_path):
    whole = NDAX.read_bytes()
    begin, end = member_span(NDAX, "data_runInfo.ndc")   # times and capacities, the last
    keep = (begin + end) // 2                           # member the points need
    cut = tmp_path / "cut.ndax"
    cut.write_bytes(whole[:keep])
    run, result = imported(tmp_path, "cut", cut)
    full = read_recording(NDAX).recording
    store = RunStore.open(run)
    try:
        points = store.point_count()
        series = store.read(store.cells()[0])
    finally:
        store.close()
    assert 1000 < points < len(full)
    # what is imported is what the whole file says of those points, no time made up after
    assert series["test_time_s"] == pytest.approx(full.columns["time_s"][:points])
    assert series["voltage_V"] == pytest.approx(full.columns["voltage_V"][:points])
    said = " ".join(result.output.split())
    assert "warning:" in said and f"cut off at byte {keep:,}" in said
    assert "inside its member data_runInfo.ndc" in said and f"{points:,} points are read" in said
    assert "file_truncated" in (run / "run.log").read_text()
    manifest = json.loads((run / "manifest.json").read_text())
    assert "data_runInfo.ndc" in manifest["files"][0]["truncated"]
    assert any("data_runInfo.ndc" in n for n in summary(run)["notes"])


def test_a_truncated_ndax_without_its_times_is_refused_naming_byte_and_member(tmp_path):
    begin, end = member_span(NDAX, "data.ndc")
    cut = tmp_path / "cut.ndax"
    cut.write_bytes(NDAX.read_bytes()[:(begin + end) // 2])
    result = cellseq("import", cut, "--out", tmp_path / "run")
    said = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert f"{cut}: the .ndax is cut off at byte {(begin + end) // 2:,} (inside data.ndc)" in said
    assert "data_runInfo.ndc and data_step.ndc" in said and "Traceback" not in said
    assert not (tmp_path / "run").exists()


def test_a_truncated_nda_says_where_it_ends(tmp_path):
    cut = tmp_path / "cut.nda"
    cut.write_bytes((NEWARE / "TestFile.nda").read_bytes()[:100_000])
    run, result = imported(tmp_path, "cut", cut)
    assert "file_truncated" in (run / "run.log").read_text()
    assert "warning:" in result.output and "footer block, which is missing" in result.output
    assert 0 < len(read_recording(cut).recording) < len(read_recording(NEWARE /
                                                                        "TestFile.nda").recording)
    assert read_recording(NEWARE / "TestFile.nda").recording.truncated is None


def test_an_mpr_cut_before_its_data_is_refused_naming_module_and_byte(tmp_path):
    cut = tmp_path / "cut.mpr"
    cut.write_bytes((ECLAB / "gcpl.issue_149.mpr").read_bytes()[:5000])
    result = cellseq("import", cut, "--out", tmp_path / "run")
    assert result.exit_code == 2, result.output
    said = " ".join(result.output.split())
    assert f"{cut}: the .mpr is cut off at byte 5,000, inside its VMP Set module" in said
    assert "nothing imported" in said and not (tmp_path / "run").exists()


def test_cellseqs_own_eis_export_is_cut_into_its_spectra(tmp_path):
    run, _ = imported(tmp_path, "peis", ECLAB / "vsp_peis_with.mpr",
                      options=("--kind", "blocking"))
    assert cellseq("export", run).exit_code == 0
    exported = run / "export" / "vsp_peis_with-eis.csv"
    # the CSV keeps 7 significant digits of Z (what EC-Lab's float32 keeps): the intercepts
    # read back agree to well under a millionth
    assert intercepts(exported) == pytest.approx(intercepts(ECLAB / "vsp_peis_with.mpr"),
                                                 rel=1e-6)
    results = summary(run)
    r_b = [r["value"] for r in results["results"] if r["quantity"] == "bulk_resistance"]
    assert r_b == pytest.approx(intercepts(ECLAB / "vsp_peis_with.mpr"))
    assert any("ionic conductivity not derived" in n for n in results["notes"])
    resume = cellseq("resume", run)
    assert resume.exit_code == 2 and "imported run" in resume.output


def test_a_cell_file_is_validated_like_a_protocol(tmp_path):
    cell = tmp_path / "cell.yaml"
    cell.write_text("id: c1\nkind: blocking\nthickness: -3 um\n")
    result = cellseq("import", ECLAB / "peis.issue_149.mpr", "--out", tmp_path / "r",
                     "--cell-file", cell)
    assert result.exit_code == 2
    assert "cell.yaml:3" in result.output and "thickness" in result.output
    cell.write_text("id: c1\nkind: blocking\nthickness: 300 um\ndiameter: 16 mm\n")
    run, _ = imported(tmp_path, "ok", ECLAB / "peis.issue_149.mpr",
                      options=("--cell-file", cell))
    sigma = [r for r in summary(run)["results"] if r["quantity"] == "ionic_conductivity"]
    assert len(sigma) == 4


def test_the_readers_are_optional_and_named_when_missing(tmp_path, monkeypatch):
    import builtins

    real = builtins.__import__

    def no_galvani(name, *args, **kwargs):
        if name.startswith("galvani"):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_galvani)
    copy = tmp_path / "x.mpr"
    shutil.copy(ECLAB / "peis.issue_149.mpr", copy)
    result = cellseq("analyze", "eis", copy)
    assert result.exit_code == 2 and "pip install 'cellseq[eclab]'" in result.output


def test_damaged_mpr_bytes_are_read_or_refused_never_a_traceback(tmp_path):
    """Bytes flipped, cut or overwritten anywhere in a real .mpr: galvani's asserts and
    errors become the file's refusal, and what reads is what the bytes hold."""
    import random

    from analysis.errors import AnalysisError

    rng = random.Random(7)
    raw = (ECLAB / "peis.issue_149.mpr").read_bytes()
    path = tmp_path / "damaged.mpr"
    outcomes = set()
    for _ in range(150):
        data = bytearray(raw)
        if rng.random() < 0.5:
            data = data[:rng.randrange(len(data))]
        else:
            for _ in range(rng.randint(1, 10)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        path.write_bytes(bytes(data))
        try:
            read_spectra(path)
            outcomes.add("read")
        except AnalysisError as exc:
            assert str(exc).startswith(f"{path}"), exc
            outcomes.add("refused")
    assert outcomes == {"read", "refused"}


def test_a_commercial_cell_imported_with_its_nominal_capacity_gives_mAh_and_c_rates(tmp_path):
    """A bought cell's file states no cathode: --nominal-capacity is its 1C, its capacities
    are the cell's own mAh (the file's own numbers) and each cycle's C-rate is its current
    over that capacity; the import says so."""
    run, result = imported(tmp_path, "bought", NDAX, options=("--nominal-capacity", "4.7 A h"))
    assert "1C = 4.7 A h (the nominal capacity given)" in result.output
    assert "taken as a full_cell" in result.output
    manifest = json.loads((run / "manifest.json").read_text())
    assert any(n.startswith("1C = 4.7 A h") for n in manifest["notes"])
    results = summary(run)["results"]
    capacities = {r["conditions"]["cycle"]: r for r in results
                  if r["quantity"] == "discharge_capacity"}
    assert {r["unit"] for r in capacities.values()} == {"mAh"}
    import NewareNDA

    frame = NewareNDA.read(str(NDAX))
    own = frame.groupby(["Cycle", "Step"])["Discharge_Capacity(mAh)"].max().groupby("Cycle").sum()
    assert sorted(capacities) == sorted(own.index)
    for cycle, mAh in own.items():
        assert capacities[cycle]["value"] == pytest.approx(mAh, rel=1e-6)
    store = RunStore.open(run)
    try:
        steps = store.steps()
    finally:
        store.close()
    first_discharge = next(s for s in steps if s["cycle"] == 2 and s["params"]["current_A"] < 0
                           and s["kind"] == "constant_current")
    rate = abs(first_discharge["params"]["current_A"]) / 4.7
    assert capacities[2]["conditions"]["c_rate"] == pytest.approx(rate, rel=0.02)


@pytest.mark.parametrize(("value", "message"), [
    ("3 V", "--nominal-capacity: expected a charge, got '3 V' (a voltage)"),
    ("-2Ah", "--nominal-capacity: must be greater than zero, got '-2 Ah'"),
    ("2.5", "--nominal-capacity: expected a charge written with its unit"),
    ("nan A h", "--nominal-capacity: 'nan A h' is not a finite number"),
])
def test_a_bad_nominal_capacity_exits_2_naming_the_option(tmp_path, value, message):
    result = cellseq("import", NDAX, "--out", tmp_path / "r", "--nominal-capacity", value)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "r").exists()


def test_a_nominal_capacity_beside_a_cathode_or_on_a_blocking_cell_is_refused(tmp_path):
    both = cellseq("import", NDAX, "--out", tmp_path / "r", *FULL_CELL,
                   "--nominal-capacity", "4.7 A h")
    assert both.exit_code == 2 and "not both" in both.output
    blocking = cellseq("import", NDAX, "--out", tmp_path / "r", "--kind", "blocking",
                       "--nominal-capacity", "4.7 A h")
    assert blocking.exit_code == 2 and "a blocking cell has no nominal capacity" in blocking.output


def test_a_cathode_option_left_out_is_named_as_an_option(tmp_path):
    result = cellseq("import", NDAX, "--out", tmp_path / "r", "--kind", "full_cell",
                     "--cathode", "NCM811", "--loading", "10mg/cm^2")
    assert result.exit_code == 2
    assert "missing --specific-capacity" in result.output
    assert "missing --cathode-diameter" not in result.output   # diameter or area: not named
