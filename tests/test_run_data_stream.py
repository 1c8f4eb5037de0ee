"""A cell's points read through one streamed query (all of its steps asked for) are the
points read step by step: the same chunks, in the same order."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from analysis.run_data import PointSource, RunData
from sequencer.runner import run_simulated

ROOT = Path(__file__).resolve().parents[1]


def test_streamed_and_filtered_reads_give_the_same_chunks(tmp_path):
    run_simulated(ROOT / "protocols/examples/quickstart.yaml", tmp_path / "run", seed=2)
    data = RunData(tmp_path / "run")
    checked = 0
    for ce in data.cell_experiments():
        source = ce._source
        assert source is not None and source.cell_steps
        plain = PointSource(source.run_dir, source.cell, [])
        counts = {int(s["step_count"]) for s in ce.steps}
        columns = ("voltage_V", "current_A")
        streamed = list(source.chunks(counts, columns))
        filtered = list(plain.chunks(counts, columns))
        assert [c.id for c in streamed] == [c.id for c in filtered]
        for a, b in zip(streamed, filtered, strict=True):
            assert a.step_count == b.step_count
            for name in columns:
                assert np.array_equal(a.columns[name], b.columns[name])
        # a subset of the steps reads only those
        some = set(sorted(counts)[: max(1, len(counts) // 2)])
        assert {c.step_count for c in source.chunks(some, columns)} <= some
        checked += len(streamed)
    assert checked > 0
