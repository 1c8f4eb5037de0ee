"""Property tests of the store's row decoding: whatever a damaged store holds in a column, a
read either returns well-formed values or raises StoreDamaged; a salvaging read never
raises."""

from __future__ import annotations

import json
import math
import sqlite3

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from store import SERIES_COLUMNS, Chunk, RunStore
from store.rows import StoreDamaged, chunk_crc, decode_chunk, decode_json

#: Anything SQLite can hand back for a column.
sql_values = st.one_of(st.none(), st.integers(min_value=-(2**63), max_value=2**63 - 1),
                       st.floats(allow_nan=True), st.text(max_size=40),
                       st.binary(max_size=200))


@given(data=st.one_of(st.binary(max_size=400), sql_values), n=sql_values,
       crc=st.one_of(st.none(), sql_values), width=st.integers(1, 13))
def test_decode_chunk_returns_the_blob_or_raises_store_damaged(data, n, crc, width):
    names = tuple(f"c{i}" for i in range(width))
    try:
        block = decode_chunk(data, n, names, crc, "chunk")
    except StoreDamaged:
        return
    assert isinstance(data, bytes) and len(data) == 8 * n * width
    assert crc is None or crc == chunk_crc(data)
    assert block.shape == (width, n)


@given(st.binary(min_size=8, max_size=800).filter(lambda b: len(b) % 8 == 0),
       st.integers(0, 7), st.integers(0, 7))
def test_a_flipped_bit_never_passes_the_checksum(data, byte, bit):
    at = byte % len(data)
    flipped = bytearray(data)
    flipped[at] ^= 1 << bit
    with pytest.raises(StoreDamaged, match="checksum"):
        decode_chunk(bytes(flipped), len(data) // 8, ("v",), chunk_crc(data), "chunk")


@given(value=st.one_of(sql_values, st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5)),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                  max_size=3),
    max_leaves=10).map(json.dumps)), kind=st.sampled_from([None, dict, list]))
def test_decode_json_returns_the_value_or_raises_store_damaged(value, kind):
    try:
        out = decode_json(value, "column", kind)
    except StoreDamaged:
        return
    assert isinstance(value, str)
    assert kind is None or isinstance(out, kind)


# -- whole reads over a store whose rows hold anything --------------------------------------

COLUMNS = {
    "meta": ["key", "value"],
    "steps": ["cell", "experiment", "step_count", "step_index", "kind", "cycle", "started_t",
              "ended_t", "end_reason", "params", "end_counters"],
    "chunks": ["cell", "step_count", "step_index", "cycle", "kind", "n", "data", "crc"],
    "events": ["t", "utc", "cell", "kind", "message", "data"],
    "cell_state": ["cell", "state", "experiment", "step_count", "step_index", "step_kind",
                   "cycle", "step_started_t", "step_estimate_s", "checkpoint", "last",
                   "updated_t"],
}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("rows")
    s = RunStore.create(run_dir, meta={"manifest": {"campaign": "c"}, "status": "running"})
    with s.transaction():
        step = s.begin_step("a", "e", 1, 0, "rest", 0, 0.0, {"record_dt_s": 1.0})
        cols = {name: np.arange(5.0) for name in SERIES_COLUMNS}
        s.append(step, Chunk("a", 1, 0, 0, "series", cols))
        s.end_step(step, 5.0, "duration", {"charge_Ah": 0.0})
        s.event(1.0, 2.0, "a", "step_started", "m", {"k": 1})
        s.set_cell_state("a", "running", 1.0, step_count=1, cycle=0, checkpoint={},
                         last={"voltage_V": 1.0})
    yield s
    s.close()


def _reads(store: RunStore, damage: list[str] | None) -> None:
    store.meta(damage)
    store.cell_states(damage)
    store.steps(damage=damage)
    store.events(damage=damage)
    for cell in store.chunk_cells(damage):
        store.read(cell, "series", damage)
        store.read(cell, "series", damage, step_counts={1})   # the steps chosen in SQL


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(table=st.sampled_from(sorted(COLUMNS)), data=st.data(), value=sql_values)
def test_any_value_in_any_column_reads_well_or_raises_store_damaged(store, table, data,
                                                                    value):
    column = data.draw(st.sampled_from(COLUMNS[table]))
    conn = store._conn
    conn.execute("SAVEPOINT fuzz")
    try:
        try:
            conn.execute(f"UPDATE {table} SET {column} = ?", (value,))
        except sqlite3.IntegrityError:   # a NOT NULL or CHECK the schema keeps itself
            return
        try:
            _reads(store, None)
            strict_ok = True
        except StoreDamaged:
            strict_ok = False
        damage: list[str] = []
        _reads(store, damage)   # salvaging: never raises, and lists what the strict read met
        assert strict_ok == (not damage), damage
        for rec in store.cell_states(damage):
            assert isinstance(rec["checkpoint"], dict) and isinstance(rec["last"], dict)
        for ev in store.events(damage=damage):
            assert math.isfinite(ev["t"]) and isinstance(ev["data"], dict)
    finally:
        conn.execute("ROLLBACK TO fuzz")
        conn.execute("RELEASE fuzz")
