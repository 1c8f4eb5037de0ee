from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

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
