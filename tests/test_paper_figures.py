"""Acceptance: dry runs of the paper's experiments, reported, give the paper's figures.

Each protocol file declares the paper's values as ``expected``; the report compares them with
what the analysis derived from the simulated raw data. The long-cycling file (1000-cycle runs,
about 30 s of dry run) is left to ``benchmarks/paper_figures.py``.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from sequencer.cli import app

from .conftest import ROOT

FILES = ["conductivity", "transference", "symmetric_cycling", "ccd", "li_cu", "lsv",
         "ncm811_temperature", "ncm811_rate", "lfp_ncm622"]


@pytest.mark.parametrize("name", FILES)
def test_the_paper_figures_come_out_of_the_raw_data(tmp_path, name):
    protocol = ROOT / "protocols" / "aiose" / f"{name}.yaml"
    result = CliRunner().invoke(app, ["run", str(protocol), "--sim", "--seed", "7", "--out",
                                      str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "run" / "report" / "summary.json").read_text())
    checks = summary["checks"]
    assert checks, "the protocol declares no expected values"
    failing = [(c["cell"], c["quantity"], c["conditions"], c["measured"], c["expected"])
               for c in checks if c["status"] != "pass"]
    assert not failing
