"""The export writes a run chunk batch by chunk batch, CSV at the instruments' resolution,
and temperatures that are physical or empty; the chamber's air settles on its setpoint."""

from __future__ import annotations

import csv
import math

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from sequencer import export
from sequencer.export import export_run
from simulators.instruments.chamber import SimChamber
from store import Chunk, RunStore
from store import frames as store_frames
from store.resolution import CSV_RESOLUTION


class _Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t


def _run(tmp_path, temperatures: np.ndarray, chunks: int = 5, n: int = 40):
    """A store of one cell: ``chunks`` chunks of ``n`` points, with these temperatures."""
    tmp_path.mkdir()
    store = RunStore.create(tmp_path, durable=False, meta={"cells": {"c1": {}}})
    rng = np.random.default_rng(1)
    try:
        with store.transaction():
            step = store.begin_step("c1", "e", 1, 1, "constant_current", 1, 0.0, {})
            for k in range(chunks):
                t = k * n + np.arange(n) * 1.0001234567
                charge = 1e-4 * (k * n + np.arange(n)) * (1 + 1e-7 * rng.random(n))
                store.append(step, Chunk("c1", 1, 1, 1, "series", {
                    "test_time_s": t, "step_time_s": t, "utc_s": 1.8e9 + t,
                    "voltage_V": 3.7 + rng.normal(0, 1e-3, n),
                    "current_A": 4.297698750110837e-4 * (1 + rng.normal(0, 1e-4, n)),
                    "temperature_C": temperatures[k * n:(k + 1) * n],
                    "charge_Ah": charge, "discharge_Ah": np.zeros(n),
                    "charge_Wh": 3.7 * charge, "discharge_Wh": np.zeros(n)}))
            store.set_cell_state("c1", "completed", 1.0)
    finally:
        store.close()
    return tmp_path


def test_the_air_settles_on_a_0_degC_setpoint_exactly():
    clock = _Clock()
    chamber = SimChamber(clock, np.random.default_rng(0))
    chamber.set_temperature_C(25.0)
    clock.t = 1e5
    chamber.set_temperature_C(0.0)
    times = np.linspace(1e5, 1e6, 20_000)
    air = chamber.temperature_at(times)
    # approaching 0 degC, then 0 exactly: never a denormal-like 7e-100 degC
    tiny = (air != 0.0) & (np.abs(air) < 1e-9)
    assert not tiny.any(), air[tiny][:3]
    assert air[-1] == 0.0 and chamber.temperature_at(1e6) == 0.0
    assert chamber.temperature_now_C(1e6) == 0.0
    # the approach itself is unchanged: still short of the setpoint, within 0.1 K, two hours on
    assert 0 < abs(float(chamber.temperature_at(1e5 + 7200))) < 0.1


def test_csv_numbers_are_at_the_instruments_resolution(tmp_path):
    n = 200
    temps = np.full(n, 25.0) + np.linspace(0, 0.123456789, n)
    temps[7] = math.nan          # a channel without a probe, in no chamber
    run = _run(tmp_path / "run", temps)
    export_run(run, "csv")
    export_run(run, "parquet")
    path = run / "export" / "c1.csv"
    with path.open() as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    assert header[0] == "Test Time / s"          # bare names, as before
    assert len(body) == n
    column = {name: [r[k] for r in body] for k, name in enumerate(header)}
    decimals = {"Test Time / s": 3, "Voltage / V": 6, "Temperature T1 / degC": 2}
    for name, most in decimals.items():
        for text in column[name]:
            if text:
                assert "e" not in text.lower()
                assert len(text.partition(".")[2]) <= most, (name, text)
    for text in column["Current / A"]:
        digits = text.lstrip("-0.").replace(".", "").split("e")[0].split("E")[0]
        assert len(digits.rstrip("0")) <= 6, text
    # a missing temperature is an empty field; the others are physical
    assert column["Temperature T1 / degC"][7] == ""
    assert all(-100 < float(t) < 200 for t in column["Temperature T1 / degC"] if t)
    # within half a resolution step of what was stored (Parquet keeps it exactly)
    exact = pd.read_parquet(run / "export" / "c1.parquet")
    written = pd.read_csv(path)
    assert list(written.columns) == list(exact.columns)
    for name, resolution in CSV_RESOLUTION.items():
        if name not in exact:
            continue
        stored, text = exact[name].to_numpy(), written[name].to_numpy()
        ok = np.isfinite(stored)
        assert np.array_equal(ok, np.isfinite(text)), name
        if resolution.significant:
            bound = 0.5 * 10.0 ** (np.floor(np.log10(np.abs(stored[ok]) + 1e-300))
                                   - resolution.digits + 1)
        else:
            bound = 0.5 * 10.0 ** -resolution.digits
        assert np.all(np.abs(text[ok] - stored[ok]) <= bound * (1 + 1e-9) + 1e-300), name


def test_the_export_streams_in_batches_and_matches_the_store(tmp_path, monkeypatch):
    n, chunks = 40, 12
    run = _run(tmp_path / "run", np.full(n * chunks, 25.0), chunks=chunks, n=n)
    monkeypatch.setattr(store_frames, "BATCH_ROWS", 100)
    export_run(run, "parquet")
    path = run / "export" / "c1.parquet"
    assert pq.ParquetFile(path).num_row_groups == 4    # 120 rows (3 chunks) a row group
    store = RunStore.open(run)
    try:
        whole = store_frames.frame(store, "c1")
    finally:
        store.close()
    pd.testing.assert_frame_equal(pd.read_parquet(path), whole)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_cell_without_points_gets_no_file(tmp_path, fmt):
    (tmp_path / "run").mkdir()
    store = RunStore.create(tmp_path / "run", durable=False)
    with store.transaction():
        store.set_cell_state("c1", "completed", 0.0)
    store.close()
    done = export_run(tmp_path / "run", fmt)
    assert done.paths == [] and not list((tmp_path / "run" / "export").iterdir())


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_each_point_keeps_its_own_step_and_cycle(tmp_path, monkeypatch, fmt):
    (tmp_path / "run").mkdir()
    store = RunStore.create(tmp_path / "run", durable=False, meta={"cells": {"c1": {}}})
    counts = [(3, 2, 7), (4, 5, 7), (9, 1, 8)]   # (step count, step index, cycle), all apart
    with store.transaction():
        for k, (step_count, index, cycle) in enumerate(counts):
            step = store.begin_step("c1", "e", step_count, index, "rest", cycle, 0.0, {})
            for m in range(3):
                t = 100.0 * k + 10.0 * m + np.arange(10, dtype=float)
                store.append(step, Chunk("c1", step_count, index, cycle, "series", {
                    name: t + j for j, name in enumerate(
                        ("test_time_s", "step_time_s", "utc_s", "voltage_V", "current_A",
                         "temperature_C", "charge_Ah", "discharge_Ah", "charge_Wh",
                         "discharge_Wh"))}))
    store.close()
    monkeypatch.setattr(store_frames, "BATCH_ROWS", 25)   # batches that end inside a step
    monkeypatch.setattr(export, "CSV_BATCH_ROWS", 25)
    done = export_run(tmp_path / "run", fmt)
    written = pd.read_csv(done.paths[0]) if fmt == "csv" else pd.read_parquet(done.paths[0])
    assert len(written) == 90
    for name, column in (("step_count", "Step Count / 1"), ("step_index", "Step Index / 1"),
                         ("cycle", "Cycle Count / 1")):
        want = np.repeat([c[("step_count", "step_index", "cycle").index(name)]
                          for c in counts], 30)
        assert written[column].tolist() == want.tolist(), column
    assert written["Voltage / V"].tolist() == (np.concatenate(
        [100.0 * k + np.arange(30, dtype=float) for k in range(3)]) + 3).tolist()


def _reference_table(run, rounded: bool):
    """The cell's whole frame as one Arrow table, made the plain way (``pa.array`` from the
    frame's columns, NaN as null), rounded to the CSV resolution or not."""
    import pyarrow as pa

    store = RunStore.open(run)
    try:
        whole = store_frames.frame(store, "c1")
    finally:
        store.close()
    columns = {}
    for name in whole.columns:
        values = whole[name].to_numpy()
        if rounded and name in CSV_RESOLUTION:
            values = CSV_RESOLUTION[name].round(values)
        columns[name] = pa.array(values, from_pandas=True)
    return pa.table(columns)


def _nan_run(tmp_path):
    n, chunks = 40, 12
    temps = np.full(n * chunks, 25.0) + np.linspace(0, 0.5, n * chunks)
    temps[[3, 41, 42, 300]] = math.nan      # no probe at times: nulls, in several batches
    return _run(tmp_path / "run", temps, chunks=chunks, n=n)


def test_parquet_has_the_plain_tables_schema_and_values_nan_as_null(tmp_path, monkeypatch):
    run = _nan_run(tmp_path)
    monkeypatch.setattr(store_frames, "BATCH_ROWS", 100)   # row groups of 120 rows
    export_run(run, "parquet")
    path = run / "export" / "c1.parquet"
    written = pq.read_table(path)
    want = _reference_table(run, rounded=False)
    assert written.schema.equals(want.schema, check_metadata=True)
    assert written.equals(want)
    assert written["Temperature T1 / degC"].null_count == 4
    assert pd.read_parquet(path).equals(want.to_pandas())
    # the counts dictionary-encoded, the floats byte-stream split, all snappy-compressed
    meta = pq.ParquetFile(path).metadata
    for k in range(meta.num_columns):
        column = meta.row_group(0).column(k)
        assert column.compression == "SNAPPY"
        split = "BYTE_STREAM_SPLIT" in column.encodings
        assert split == (want.schema.field(k).type == "double"), column.path_in_schema


@pytest.mark.parametrize("batch_rows", [25, 100, 1000])
def test_csv_written_in_batches_is_the_plain_tables_csv_byte_for_byte(tmp_path, monkeypatch,
                                                                      batch_rows):
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    run = _nan_run(tmp_path)
    monkeypatch.setattr(export, "CSV_BATCH_ROWS", batch_rows)
    export_run(run, "csv")
    want = _reference_table(run, rounded=True)
    sink = pa.BufferOutputStream()
    pa_csv.write_csv(want, sink, pa_csv.WriteOptions(include_header=False,
                                                     quoting_style="none"))
    header = (",".join(want.column_names) + "\n").encode()
    assert (run / "export" / "c1.csv").read_bytes() == header + sink.getvalue().to_pybytes()
