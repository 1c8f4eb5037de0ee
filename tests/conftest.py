from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Hypothesis's default 200 ms deadline per example fails tests on a loaded machine (CI runners,
# two xdist workers on two cores) for no fault of the code; a test that bounds its answer's time
# says so in its own settings.
settings.register_profile("cellseq", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("cellseq")

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "protocols" / "examples" / "quickstart.yaml"


@pytest.fixture
def write_yaml(tmp_path: Path):
    """Write a protocol text to a file and return its path."""
    def write(text: str, name: str = "protocol.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path
    return write


with contextlib.suppress(ImportError):   # the lab's tests need the `lab` extra (in `test`)
    from tests.lab_server import lab, pg  # noqa: F401 -- fixtures of the lab tests
