"""The run store: chunks round-trip, transactions are atomic, readers see committed data."""

import itertools

import numpy as np
import pytest

from sequencer.counters import SMALL_POLL, Counters
from store import SERIES_COLUMNS, Chunk, RunStore, StoreError
from store import files as store_files
from store.run_store import GROUPED_PAGE_BYTES


def series(n: int, t0: float = 0.0) -> dict[str, np.ndarray]:
    cols = {name: np.arange(n, dtype=float) + k for k, name in enumerate(SERIES_COLUMNS)}
    cols["test_time_s"] = t0 + np.arange(n, dtype=float)
    return cols


def test_chunks_round_trip(tmp_path):
    store = RunStore.create(tmp_path)
    with store.transaction():
        sid = store.begin_step("c1", "e", 1, 0, "rest", 0, 0.0, {})
        store.append(sid, Chunk("c1", 1, 0, 0, "series", series(5)))
        store.append(sid, Chunk("c1", 2, 3, 1, "series", series(3, t0=5)))
        store.set_cell_state("c1", "running", 8.0)
    data = store.read("c1")
    assert list(data["test_time_s"]) == [0, 1, 2, 3, 4, 5, 6, 7]
    assert list(data["cycle"]) == [0] * 5 + [1] * 3
    assert list(data["step_index"]) == [0] * 5 + [3] * 3
    assert np.array_equal(data["voltage_V"][:5], np.arange(5) + 3.0)
    assert store.point_count() == 8
    store.close()


def test_a_failed_transaction_leaves_nothing(tmp_path):
    store = RunStore.create(tmp_path)
    with pytest.raises(RuntimeError), store.transaction():
        sid = store.begin_step("c1", "e", 1, 0, "rest", 0, 0.0, {})
        store.append(sid, Chunk("c1", 1, 0, 0, "series", series(5)))
        raise RuntimeError("crash between writes")
    assert store.point_count() == 0 and store.steps() == []


def test_a_reader_sees_only_committed_data(tmp_path):
    writer = RunStore.create(tmp_path)
    reader = RunStore.open(tmp_path)
    with writer.transaction():
        sid = writer.begin_step("c1", "e", 1, 0, "rest", 0, 0.0, {})
        writer.append(sid, Chunk("c1", 1, 0, 0, "series", series(4)))
        assert reader.point_count() == 0
    assert reader.point_count() == 4


def test_a_dry_run_store_has_large_pages_and_the_same_log_threshold_in_bytes(tmp_path):
    """A store that groups its commits gets 64 KiB pages, and a chunk of a few KiB sits in its
    row; one that commits every block keeps SQLite's 4 KiB. Either copies its log into the
    database after about 4 MB of it."""
    for durable, page in ((True, 4096), (False, GROUPED_PAGE_BYTES)):
        run_dir = tmp_path / f"durable-{durable}"
        run_dir.mkdir()
        store = RunStore.create(run_dir, durable=durable)
        with store.transaction():
            sid = store.begin_step("c1", "e", 1, 0, "rest", 0, 0.0, {})
            store.append(sid, Chunk("c1", 1, 0, 0, "series", series(60)))
        store.close()
        conn = store_files.connect(run_dir / "run.sqlite", readonly=False)
        try:
            assert conn.execute("PRAGMA page_size").fetchone() == (page,)
            (threshold,) = conn.execute("PRAGMA wal_autocheckpoint").fetchone()
            assert abs(threshold * page - 4_096_000) < page
            (overflow,) = conn.execute("SELECT count(*) FROM dbstat WHERE name = 'chunks'"
                                       " AND pagetype = 'overflow'").fetchone()
        finally:
            conn.close()
        assert (overflow == 0) == (not durable)   # 60 points are 4800 bytes
        reader = RunStore.open(run_dir)
        assert list(reader.read("c1")["test_time_s"]) == list(range(60))
        reader.close()


def test_not_a_run_directory(tmp_path):
    with pytest.raises(StoreError, match="is not a cellseq run directory"):
        RunStore.open(tmp_path)
    (tmp_path / "run.sqlite").write_bytes(b"not a database at all" * 100)
    with pytest.raises(StoreError, match="cannot be read as a run store"):
        RunStore.open(tmp_path)


def test_counters_integrate_charge_and_energy_across_polls():
    c = Counters()
    t = np.arange(0.0, 3601.0, 60.0)           # one hour at 1 mA, 4 V
    i, v = np.full_like(t, 1e-3), np.full_like(t, 4.0)
    whole = Counters().accumulate(t, v, i, None)
    first = c.accumulate(t[:30], v[:30], i[:30], None)
    second = c.accumulate(t[30:], v[30:], i[30:], (t[29], v[29], i[29]))
    joined = np.concatenate([first["charge_Ah"], second["charge_Ah"]])
    assert np.allclose(joined, whole["charge_Ah"])
    assert c.charge_Ah == pytest.approx(1e-3) and c.charge_Wh == pytest.approx(4e-3)
    assert c.discharge_Ah == 0
    c.accumulate(t, v, -i, None)
    assert c.discharge_Ah == pytest.approx(1e-3) and c.charge_Ah == pytest.approx(1e-3)


def test_a_chunk_of_lists_is_stored_as_the_same_chunk_of_arrays(tmp_path):
    """A few points come as lists of floats (the step driver's small polls): the blob, its
    checksum and its times are those of the same points as arrays."""
    rng = np.random.default_rng(3)
    arrays = {name: rng.normal(size=3) for name in SERIES_COLUMNS}
    arrays["temperature_C"][1] = np.nan
    arrays["test_time_s"] = np.array([1.5, 2.25, 1e-300])
    store = RunStore.create(tmp_path, durable=False)
    with store.transaction():
        sid = store.begin_step("c1", "e", 1, 0, "rest", 0, 0.0, {})
        store.append(sid, Chunk("c1", 1, 0, 0, "series", arrays))
        store.append(sid, Chunk("c1", 1, 0, 0, "series",
                                {k: v.tolist() for k, v in arrays.items()}))
    store.commit()
    rows = store._conn.execute("SELECT n, t_first, t_last, data, crc FROM chunks").fetchall()
    assert len(rows) == 2 and rows[0] == rows[1]
    assert rows[0][:3] == (3, 1.5, 1e-300)
    store.close()


def test_a_dry_run_store_groups_blocks_and_a_failed_block_leaves_only_itself_out(tmp_path):
    store = RunStore.create(tmp_path, durable=False)
    reader = RunStore.open(tmp_path)
    with store.transaction():
        sid = store.begin_step("c1", "e", 1, 0, "rest", 0, 0.0, {})
        store.append(sid, Chunk("c1", 1, 0, 0, "series", series(4)))
    with pytest.raises(RuntimeError), store.transaction():
        store.append(sid, Chunk("c1", 1, 0, 0, "series", series(3, t0=4)))
        raise RuntimeError("a block fails half way")
    with store.transaction():
        store.append(sid, Chunk("c1", 1, 0, 0, "series", series(2, t0=4)))
    assert store.point_count() == 6             # the writer sees its own blocks
    store.commit()
    assert reader.point_count() == 6            # committed: the failed block is not there
    assert list(reader.read("c1")["test_time_s"]) == [0, 1, 2, 3, 4, 5]
    store.close()


def test_a_small_poll_is_counted_bit_for_bit_as_a_large_one():
    rng = np.random.default_rng(7)
    for n in (1, 2, 5, SMALL_POLL):
        t = 100.0 + np.cumsum(rng.random(n) * 30)
        v = 3.0 + rng.random(n)
        i = (rng.random(n) - 0.5) * 2e-3
        i[0] = -0.0                                  # a zero's sign must not matter either
        for previous in (None, (t[0] - 7.0, 3.5, 4e-4)):
            start = {"charge_Ah": 0.1, "discharge_Ah": 0.2, "charge_Wh": 0.3,
                     "discharge_Wh": 0.4}
            few, many = Counters(**start), Counters(**start)
            got = few.accumulate(t, v, i, previous)
            ref = _summed_by_numpy(many, t, v, i, previous)
            for name, column in got.items():
                assert column.tobytes() == ref[name].tobytes(), (n, previous, name)
            assert few.as_dict() == {k: float(ref[k][n - 1]) for k in got}


def _summed_by_numpy(counters: Counters, t: np.ndarray, v: np.ndarray, i: np.ndarray,
                     previous: tuple[float, float, float] | None) -> dict[str, np.ndarray]:
    """The counters of a poll as numpy sums them: the poll padded past the small-poll size
    (later points change no earlier sum), cut back; ``counters`` then stand at its last
    point."""
    n, pad = len(t), SMALL_POLL + 1
    later = np.arange(1, pad + 1) * 1e3 + t[-1]
    before = counters.as_dict()
    padded = Counters(**before).accumulate(np.concatenate([t, later]),
                                           np.concatenate([v, np.ones(pad)]),
                                           np.concatenate([i, np.zeros(pad)]), previous)
    out = {name: column[:n] for name, column in padded.items()}
    for name, column in out.items():
        setattr(counters, name, float(column[-1]))
    return out


def test_the_plain_float_sums_are_numpys_to_the_bit_nan_and_infinity_included():
    """accumulate_few against numpy's sums of the same points, for polls long and short: a
    NaN or an infinite reading, a zero current and negative zeros included."""
    rng = np.random.default_rng(11)
    for n in (13, 20, 44, 90):
        t = 100.0 + np.cumsum(rng.random(n) * 60)
        v = 3.0 + rng.random(n)
        i = (rng.random(n) - 0.5) * 2e-3
        # no current at first (zero increments onto counters at -0.0), then a NaN current, a
        # NaN voltage, an infinite current and a negative zero
        i[0], i[1], i[5], v[7], i[9], i[10] = 0.0, 0.0, np.nan, np.nan, np.inf, -0.0
        for previous, at in itertools.product((None, (t[0] - 7.0, 3.5, -4e-4)), (-0.0, 0.1)):
            start = dict.fromkeys(("charge_Ah", "discharge_Ah", "charge_Wh", "discharge_Wh"), at)
            few, many = Counters(**start), Counters(**start)
            got = few.accumulate_few(t.tolist(), v.tolist(), i.tolist(), previous)
            ref = _summed_by_numpy(many, t, v, i, previous)
            for name, column in got.items():
                assert np.array(column).tobytes() == ref[name].tobytes(), (n, previous, name)
            assert np.array(list(few.as_dict().values())).tobytes() == \
                np.array(list(many.as_dict().values())).tobytes()


def test_a_step_written_and_ended_in_one_commit_is_one_row_with_its_ids_in_order(tmp_path):
    store = RunStore.create(tmp_path, durable=False)
    with store.transaction():
        first = store.begin_step("c1", "e", 1, 0, "rest", 0, 0.0, {"technique": "Rest"})
        store.append(first, Chunk("c1", 1, 0, 0, "series", series(2)))
        store.end_step(first, 2.0, "done", {"charge_Ah": 0.0, "discharge_Ah": 0.0,
                                           "charge_Wh": 0.0, "discharge_Wh": 0.0})
    with store.transaction():
        second = store.begin_step("c1", "e", 2, 1, "rest", 0, 2.0, {})
    store.commit()
    with store.transaction():
        store.end_step(second, 3.0, "done")   # its row is in SQLite already: updated
    store.close()
    reader = RunStore.open(tmp_path)
    steps = reader.steps("c1")
    assert [s["id"] for s in steps] == [first, second] == [1, 2]
    assert [(s["ended_t"], s["end_reason"]) for s in steps] == [(2.0, "done"), (3.0, "done")]
    assert steps[0]["end_counters"] == {"charge_Ah": 0.0, "discharge_Ah": 0.0,
                                        "charge_Wh": 0.0, "discharge_Wh": 0.0}
    assert steps[0]["params"] == {"technique": "Rest"}
    reader.close()


def test_a_block_that_read_its_own_rows_and_failed_leaves_them_out(tmp_path):
    """A read inside a block puts its rows into SQLite (under a savepoint): the block failing
    afterwards takes them back, and the next step gets the id the failed one had."""
    store = RunStore.create(tmp_path, durable=False)
    with store.transaction():
        sid = store.begin_step("c1", "e", 1, 0, "rest", 0, 0.0, {})
        store.append(sid, Chunk("c1", 1, 0, 0, "series", series(3)))
    with pytest.raises(RuntimeError), store.transaction():
        failed = store.begin_step("c1", "e", 2, 1, "rest", 0, 3.0, {})
        store.append(failed, Chunk("c1", 2, 1, 0, "series", series(2, t0=3)))
        store.event(3.0, 3.0, "c1", "note", "inside the failing block")
        assert store.point_count() == 5      # the block's own rows are read back
        assert store.last_point(failed)["test_time_s"] == 4.0
        raise RuntimeError("a block fails after reading")
    assert store.point_count() == 3
    with store.transaction():
        again = store.begin_step("c1", "e", 2, 1, "rest", 0, 3.0, {})
    assert again == failed == 2
    store.close()
    reader = RunStore.open(tmp_path)
    assert [s["id"] for s in reader.steps()] == [1, 2] and reader.point_count() == 3
    assert reader.events() == []
    reader.close()


@pytest.mark.parametrize("durable", [True, False])
def test_a_cells_state_commits_with_its_block_and_a_failed_block_takes_its_state_back(
        tmp_path, durable):
    store = RunStore.create(tmp_path, durable=durable)
    reader = RunStore.open(tmp_path)
    with store.transaction():
        store.set_cell_state("c1", "running", 1.0, step_count=1, checkpoint={"n": 1},
                             last={"t": 1.0})
        store.set_cell_state("c1", "running", 2.0, checkpoint={"n": 2}, last={"t": 2.0})
        # the writer reads the state it set; the merged fields are the last of each
        (state,) = store.cell_states()
        assert (state["updated_t"], state["step_count"], state["checkpoint"]) == (2.0, 1,
                                                                                 {"n": 2})
    with pytest.raises(RuntimeError), store.transaction():
        store.set_cell_state("c1", "faulted", 3.0, checkpoint={"n": 3}, last={"t": 3.0})
        store.set_cell_state("c2", "running", 3.0, checkpoint={}, last={})
        raise RuntimeError("a block fails half way")
    assert [(s["cell"], s["state"]) for s in store.cell_states()] == [("c1", "running")]
    store.commit()
    (state,) = reader.cell_states()
    assert (state["state"], state["updated_t"], state["step_count"], state["checkpoint"],
            state["last"]) == ("running", 2.0, 1, {"n": 2}, {"t": 2.0})
    store.close()
    reader.close()


@pytest.mark.parametrize("counters", [
    {"charge_Ah": 0.1, "discharge_Ah": 0.0, "charge_Wh": 1e-300, "discharge_Wh": 5e-324},
    {"charge_Ah": -0.0, "discharge_Ah": 0.0, "charge_Wh": 1.0, "discharge_Wh": 2.0},
    {"charge_Ah": float("inf"), "discharge_Ah": 0.0, "charge_Wh": 1.0, "discharge_Wh": 2.0},
    {"charge_Ah": float("nan"), "discharge_Ah": 0.0, "charge_Wh": 1.0, "discharge_Wh": 2.0},
    {"charge_Ah": 1e308, "discharge_Ah": 1e308, "charge_Wh": 1.0, "discharge_Wh": 2.0},
    {"charge_Ah": 1, "discharge_Ah": 0.0, "charge_Wh": 1.0, "discharge_Wh": 2.0},
    {"discharge_Ah": 0.0, "charge_Ah": 0.1, "charge_Wh": 1.0, "discharge_Wh": 2.0},
])
def test_a_steps_end_counters_are_the_text_json_writes(tmp_path, counters):
    import json

    store = RunStore.create(tmp_path, durable=False)
    with store.transaction():
        sid = store.begin_step("c1", "e", 1, 0, "rest", 0, 0.0, {})
        store.end_step(sid, 1.0, "done", counters)
    store.commit()
    (text,) = store._conn.execute("SELECT end_counters FROM steps").fetchone()
    assert text == json.dumps(counters)
    store.close()
