"""A cell's points read through one streamed query (all of its steps asked for) are the
points read step by step: the same chunks, in the same order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

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
        streamed = list(source.blocks(counts))
        filtered = list(plain.blocks(counts))
        assert [c[0] for c in streamed] == [c[0] for c in filtered]
        for (_, step_a, block_a), (_, step_b, block_b) in zip(streamed, filtered, strict=True):
            assert step_a == step_b
            assert np.array_equal(block_a, block_b, equal_nan=True)
        # a subset of the steps reads only those
        some = set(sorted(counts)[: max(1, len(counts) // 2)])
        assert {step for _, step, _ in source.blocks(some)} <= some
        checked += len(streamed)
    assert checked > 0


def test_outcomes_folded_chunk_by_chunk_are_those_of_the_whole_series(tmp_path, monkeypatch):
    """The fold over the store's chunks (in batches that end inside steps) gives each step
    what the whole series in memory gives it: amounts passed, temperature, how it ended."""
    from analysis.cycle_steps import StepFold
    from analysis.run_data import CellExperiment

    monkeypatch.setattr(StepFold, "BATCH", 50)
    run_simulated(ROOT / "protocols/examples/quickstart.yaml", tmp_path / "run", seed=2)
    compared = 0
    for ce in RunData(tmp_path / "run").cell_experiments():
        folded = ce.outcomes()   # before its series is read: the fold over the chunks
        assert ce._series is None
        whole = CellExperiment(ce.experiment, ce.cell, ce.info, ce.steps, series=ce.series)
        reference = whole.outcomes()
        assert ce.has_points == whole.has_points
        assert [s.step_count for s in folded] == [s.step_count for s in reference]
        for a, b in zip(folded, reference, strict=True):
            for name in ("charge_Ah", "discharge_Ah", "charge_Wh", "discharge_Wh",
                         "temperature_degC"):
                assert getattr(a, name) == pytest.approx(getattr(b, name), rel=1e-9,
                                                         abs=1e-15), (a.step_count, name)
            assert (a.kind, a.end_reason) == (b.kind, b.end_reason)
        compared += sum(1 for s in folded if s.charge_Ah or s.discharge_Ah)
    assert compared > 0
