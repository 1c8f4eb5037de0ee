"""Every protocol file shipped in protocols/ validates and plans."""

from __future__ import annotations

import pytest

from sequencer.runner import prepare

from .conftest import ROOT

FILES = sorted((ROOT / "protocols").rglob("*.yaml"))


def test_the_library_is_not_empty():
    names = {p.name for p in FILES}
    assert "quickstart.yaml" in names


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_protocol_file_validates_and_plans(path):
    plan = prepare(path)
    assert plan.experiments
    assert plan.makespan_s > 0
    for exp in plan.experiments:
        assert exp.end_s >= exp.start_s
