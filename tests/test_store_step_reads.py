"""A read of some steps' chunks is one streamed query: the chunks of those steps, in the
order stored, and no others; a damaged chunk among them is named, one of another step is
not read at all."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from store import SERIES_COLUMNS, Chunk, RunStore
from store.rows import StoreDamaged
from store.schema import DB_NAME

#: (step count, points of each of its chunks): steps of one, two and three chunks
STEPS = [(1, [5]), (2, [4, 6]), (3, [3]), (4, [7, 2, 5]), (5, [4])]


def _store(run_dir):
    run_dir.mkdir()
    store = RunStore.create(run_dir, durable=False, meta={"cells": {"c1": {}, "c2": {}}})
    t = 0.0
    with store.transaction():
        for step_count, sizes in STEPS:
            for cell in ("c1", "c2"):
                step = store.begin_step(cell, "e", step_count, step_count, "rest", 1, t, {})
                for n in sizes:
                    values = t + np.arange(n, dtype=float)
                    store.append(step, Chunk(cell, step_count, step_count, 1, "series",
                                             {name: values + k for k, name in
                                              enumerate(SERIES_COLUMNS)}))
                    t += n
    store.close()
    return run_dir


def _chunk_queries(store: RunStore) -> list[str]:
    sent: list[str] = []
    store._conn.set_trace_callback(sent.append)
    return sent


@pytest.mark.parametrize("wanted", [{2}, {1, 4}, {2, 3, 5}, {9}, set(), {1, 2, 3, 4, 5}])
def test_some_steps_are_read_in_one_query_as_the_whole_read_filtered(tmp_path, wanted):
    run = _store(tmp_path / "run")
    store = RunStore.open(run)
    try:
        every = list(store.chunks("c1"))
        sent = _chunk_queries(store)
        some = list(store.chunks("c1", step_counts=wanted))
        assert len([q for q in sent if "FROM chunks" in q]) == 1
        read = store.read("c1", step_counts=wanted, columns=("voltage_V",))
    finally:
        store.close()
    expected = [c for c in every if c.step_count in wanted]
    assert [c.id for c in some] == [c.id for c in expected]
    for a, b in zip(some, expected, strict=True):
        assert (a.step_count, a.step_index, a.cycle, a.n) == \
            (b.step_count, b.step_index, b.cycle, b.n)
        for name in SERIES_COLUMNS:
            assert np.array_equal(a.columns[name], b.columns[name])
    want_v = np.concatenate([c.columns["voltage_V"] for c in expected]) if expected else \
        np.empty(0)
    assert np.array_equal(read["voltage_V"], want_v)
    assert read["step_count"].tolist() == [c.step_count for c in expected for _ in range(c.n)]


def test_numpy_step_counts_are_read_as_whole_numbers(tmp_path):
    run = _store(tmp_path / "run")
    store = RunStore.open(run)
    try:
        got = [c.step_count for c in store.chunks("c2", step_counts={np.int64(4)})]
    finally:
        store.close()
    assert got == [4, 4, 4]


def _sql(run_dir, sql: str) -> None:
    conn = sqlite3.connect(run_dir / DB_NAME, isolation_level=None)
    try:
        conn.execute(sql)
    finally:
        conn.close()


def _ids(run_dir, cell: str, step_count: int) -> list[int]:
    conn = sqlite3.connect(run_dir / DB_NAME)
    try:
        return [r[0] for r in conn.execute(
            "SELECT id FROM chunks WHERE cell = ? AND step_count = ? ORDER BY id",
            (cell, step_count))]
    finally:
        conn.close()


def test_a_damaged_blob_of_a_wanted_step_is_named_and_one_of_another_step_is_not_read(
        tmp_path):
    run = _store(tmp_path / "run")
    wanted_bad, other_bad = _ids(run, "c1", 4)[1], _ids(run, "c1", 2)[0]
    for chunk_id in (wanted_bad, other_bad):   # zeroed: the checksum no longer fits
        _sql(run, "UPDATE chunks SET data = CAST(zeroblob(length(data)) AS BLOB)"
                  f" WHERE id = {chunk_id}")
    store = RunStore.open(run, salvage=True)
    try:
        with pytest.raises(StoreDamaged, match=f"chunk {wanted_bad} of 'c1'"):
            list(store.chunks("c1", step_counts={4}))
        damage: list[str] = []
        got = [c.id for c in store.chunks("c1", damage=damage, step_counts={4, 5})]
    finally:
        store.close()
    assert got == [i for i in _ids(run, "c1", 4) + _ids(run, "c1", 5) if i != wanted_bad]
    assert len(damage) == 1 and f"chunk {wanted_bad} of 'c1'" in damage[0]
    assert "checksum" in damage[0]


def test_a_chunk_whose_step_count_is_no_number_is_named_not_skipped(tmp_path):
    run = _store(tmp_path / "run")
    bad = _ids(run, "c1", 3)[0]
    _sql(run, f"UPDATE chunks SET step_count = 'three' WHERE id = {bad}")
    store = RunStore.open(run, salvage=True)
    try:
        damage: list[str] = []
        got = [c.step_count for c in store.chunks("c1", damage=damage, step_counts={1})]
    finally:
        store.close()
    assert got == [1]
    assert len(damage) == 1 and f"chunk {bad} of 'c1': step_count" in damage[0]
