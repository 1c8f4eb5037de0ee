"""Run-store write throughput, durable, against raw sqlite3 and pandas CSV of the same rows.

    python benchmarks/store_throughput.py [--seconds 5]

A run store is written as a lab would fill it: many channels each adding a poll batch of
points, one durable commit (synchronous=FULL) per second of wall time. Prints points/s for the
run store, for raw ``sqlite3`` executemany (one row per point, WAL, same commit rhythm) and for
``pandas.DataFrame.to_csv`` of the same columns. Target: >= 500 000 points/s for the run store.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from store import SERIES_COLUMNS, Chunk, RunStore

CHANNELS = 16
POINTS_PER_POLL = 200


def batch(rng: np.random.Generator, t0: float) -> dict[str, np.ndarray]:
    cols = {name: rng.random(POINTS_PER_POLL) for name in SERIES_COLUMNS}
    cols["test_time_s"] = t0 + np.arange(POINTS_PER_POLL, dtype=float)
    return cols


def run_store(folder: Path, seconds: float) -> float:
    store = RunStore.create(folder, durable=True)
    rng = np.random.default_rng(0)
    data = [batch(rng, 0.0) for _ in range(CHANNELS)]
    with store.transaction():
        steps = [store.begin_step(f"c{k}", "e", 1, 0, "rest", 0, 0.0, {})
                 for k in range(CHANNELS)]
    points, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        second = time.perf_counter()
        with store.transaction():   # one durable commit per second
            while time.perf_counter() - second < 1.0:
                for k in range(CHANNELS):
                    store.append(steps[k], Chunk(f"c{k}", 1, 0, 0, "series", data[k]))
                    points += POINTS_PER_POLL
    elapsed = time.perf_counter() - start
    store.close()
    return points / elapsed


def raw_sqlite(folder: Path, seconds: float) -> float:
    conn = sqlite3.connect(folder / "raw.sqlite", isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    columns = ", ".join(f"{c} REAL" for c in SERIES_COLUMNS)
    conn.execute(f"CREATE TABLE points (cell TEXT, {columns})")
    rng = np.random.default_rng(0)
    rows = [(f"c{k}", *row) for k in range(CHANNELS)
            for row in zip(*batch(rng, 0.0).values(), strict=True)]
    sql = f"INSERT INTO points VALUES ({', '.join('?' * (len(SERIES_COLUMNS) + 1))})"
    points, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        second = time.perf_counter()
        conn.execute("BEGIN")
        while time.perf_counter() - second < 1.0:
            conn.executemany(sql, rows)
            points += len(rows)
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return points / elapsed


def pandas_csv(folder: Path, seconds: float) -> float:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({k: np.concatenate([batch(rng, 0.0)[k] for _ in range(CHANNELS)])
                          for k in SERIES_COLUMNS})
    points, start = 0, time.perf_counter()
    with (folder / "points.csv").open("w") as fh:
        while time.perf_counter() - start < seconds:
            frame.to_csv(fh, header=False, index=False)
            points += len(frame)
    return points / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        ours = run_store(folder, args.seconds)
        raw = raw_sqlite(folder, args.seconds)
        csv = pandas_csv(folder, args.seconds)
    print(f"run store (column chunks, durable commit per second): {ours:12,.0f} points/s")
    print(f"raw sqlite3 executemany (row per point, same commits):  {raw:12,.0f} points/s"
          f"  (run store x{ours / raw:.1f})")
    print(f"pandas DataFrame.to_csv:                              {csv:12,.0f} points/s"
          f"  (run store x{ours / csv:.1f})")


if __name__ == "__main__":
    main()
