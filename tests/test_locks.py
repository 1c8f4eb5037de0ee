"""Two runs never drive the same instrument channel; a run directory has one process at a time."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from sequencer.cli import app
from sequencer.locks import LockError, claim_channels, hold_run_dir
from sequencer.station import load_station

from .conftest import ROOT

PROTOCOL = ROOT / "protocols" / "examples" / "quickstart.yaml"
STATION = """station: bench
instruments:
  vsp: {driver: sim.potentiostat, channels: 6, address: "192.0.2.10"}
  cycler: {driver: sim.cycler, channels: 8}
  chamber: {driver: sim.chamber}
cells:
  aiose-blocking-1: {instrument: vsp, channel: CH_A, chamber: chamber}
  ncm811-1: {instrument: cycler, channel: 0, chamber: chamber}
"""


@pytest.fixture(autouse=True)
def private_lock_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("CELLSEQ_LOCK_DIR", str(tmp_path / "locks"))


def station(tmp_path, name: str, channel: int):
    path = tmp_path / f"{name}.yaml"
    path.write_text(STATION.replace("CH_A", str(channel)))
    return path


def test_a_second_run_on_a_claimed_channel_exits_2_and_names_the_holder(tmp_path):
    holder = tmp_path / "first-run"
    with claim_channels(load_station(station(tmp_path, "a", 2)), holder):
        result = CliRunner().invoke(app, ["run", str(PROTOCOL), "--station",
                                          str(station(tmp_path, "b", 2)), "--out",
                                          str(tmp_path / "second")])
        assert result.exit_code == 2
        assert "vsp channel 2 (192.0.2.10) is in use by run" in result.output
        assert str(holder.resolve()) in result.output
        assert not (tmp_path / "second").exists()          # nothing created, nothing driven
        other = CliRunner().invoke(app, ["run", str(PROTOCOL), "--station",
                                         str(station(tmp_path, "c", 3)), "--out",
                                         str(tmp_path / "third"), "--no-report"])
        assert other.exit_code == 0, other.output          # another channel is free
    again = CliRunner().invoke(app, ["run", str(PROTOCOL), "--station",
                                     str(station(tmp_path, "d", 2)), "--out",
                                     str(tmp_path / "fourth"), "--no-report"])
    assert again.exit_code == 0, again.output              # released when the first ended


def test_a_run_directory_is_held_by_one_process(tmp_path):
    with hold_run_dir(tmp_path), pytest.raises(LockError, match="is in use by"), \
            hold_run_dir(tmp_path):
        pass
