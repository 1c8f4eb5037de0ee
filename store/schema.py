"""The run store's schema: its tables, what a store must hold to be trusted, its file names.

One SQLite database per run (``run.sqlite``, WAL mode): ``meta`` (the run's manifest, cells,
experiments, expected values), ``steps``, ``chunks`` (one row per poll batch, every column
packed in one float64 BLOB with its CRC-32), ``events`` (the journal) and ``cell_state`` (each
cell's checkpoint and last values).
"""

from __future__ import annotations

DB_NAME = "run.sqlite"
SCHEMA_VERSION = 3

SERIES_COLUMNS = ("test_time_s", "step_time_s", "utc_s", "voltage_V", "current_A",
                  "temperature_C", "charge_Ah", "discharge_Ah", "charge_Wh", "discharge_Wh")
SPECTRUM_COLUMNS = (*SERIES_COLUMNS, "frequency_Hz", "z_real_ohm", "z_imag_ohm")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS steps (
    id INTEGER PRIMARY KEY, cell TEXT NOT NULL, experiment TEXT NOT NULL,
    step_count INTEGER NOT NULL, step_index INTEGER NOT NULL, kind TEXT NOT NULL,
    cycle INTEGER NOT NULL, started_t REAL NOT NULL, ended_t REAL, end_reason TEXT,
    params TEXT NOT NULL DEFAULT '{}', end_counters TEXT);
CREATE INDEX IF NOT EXISTS steps_cell ON steps (cell, step_count);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY, cell TEXT NOT NULL, step_id INTEGER NOT NULL,
    step_count INTEGER NOT NULL, step_index INTEGER NOT NULL, cycle INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('series', 'spectrum')), n INTEGER NOT NULL,
    t_first REAL NOT NULL, t_last REAL NOT NULL, data BLOB NOT NULL, crc INTEGER);
CREATE INDEX IF NOT EXISTS chunks_cell ON chunks (cell, kind, id);
CREATE INDEX IF NOT EXISTS chunks_step ON chunks (step_id, id);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY, t REAL NOT NULL, utc REAL NOT NULL, cell TEXT,
    kind TEXT NOT NULL, message TEXT NOT NULL, data TEXT NOT NULL DEFAULT '{}');
CREATE TABLE IF NOT EXISTS cell_state (
    cell TEXT PRIMARY KEY, state TEXT NOT NULL, experiment TEXT, step_count INTEGER,
    step_index INTEGER, step_kind TEXT, cycle INTEGER, step_started_t REAL,
    step_estimate_s REAL, checkpoint TEXT NOT NULL DEFAULT '{}', last TEXT NOT NULL DEFAULT '{}',
    updated_t REAL NOT NULL);
"""


#: The tables and columns a run store must have before it is trusted.
REQUIRED_COLUMNS = {
    "meta": {"key", "value"},
    "steps": {"id", "cell", "experiment", "step_count", "step_index", "kind", "cycle",
              "started_t", "ended_t", "end_reason", "params", "end_counters"},
    "chunks": {"id", "cell", "step_id", "step_count", "step_index", "cycle", "kind", "n",
               "t_first", "t_last", "data"},
    "events": {"id", "t", "utc", "cell", "kind", "message", "data"},
    "cell_state": {"cell", "state", "experiment", "step_count", "step_index", "step_kind",
                   "cycle", "step_started_t", "step_estimate_s", "checkpoint", "last",
                   "updated_t"},
}
#: The JSON type of each meta entry cellseq writes (others are read as they are).
META_KINDS: dict[str, type] = {"schema_version": int, "manifest": dict, "cells": dict,
                               "experiments": list, "expected": list, "status": str,
                               "sim_snapshot": dict}
#: Store schemas this cellseq reads; 2 lacks the chunks' checksums (see :mod:`store.rows`).
READABLE_SCHEMAS = (2, SCHEMA_VERSION)
#: Beside the store: what SQLite keeps next to it, and what :meth:`RunStore.create` builds.
STORE_FILES = (DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm", f"{DB_NAME}-journal",
               f"{DB_NAME}.new", f"{DB_NAME}.new-wal", f"{DB_NAME}.new-shm",
               f"{DB_NAME}.new-journal")
