"""The packages form layers with no back edge: import-linter's contracts (``pyproject.toml``)
hold for cellseq, a back edge breaks them, and a hardware run loads none of the simulators'
physics."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

from .conftest import ROOT

#: Layers top to bottom, as ``[tool.importlinter]`` states them (a `|` joins independent ones).
LAYERS = ["sequencer", "simulators | analysis", "store | drivers | protocols", "materials",
          "core"]
LINT = ("import sys; from importlinter.cli import lint_imports;"
        " sys.exit(lint_imports(config_filename=sys.argv[1], no_cache=True, no_logo=True))")


def lint(config: Path, cwd: Path, python_path: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": python_path}
    return subprocess.run([sys.executable, "-c", LINT, str(config)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_cellseq_keeps_every_import_contract():
    result = lint(ROOT / "pyproject.toml", ROOT, str(ROOT))
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"Contracts: (\d+) kept, 0 broken", result.stdout)


def test_the_contract_states_the_layers_the_readme_shows():
    config = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    stated = re.search(r"layers = \[(.*?)\]", config, re.S)
    assert stated is not None
    assert re.findall(r'"([^"]+)"', stated.group(1)) == LAYERS
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    shown = readme[readme.index("## How it is built"):]
    positions = [shown.index(f"`{layer.split(' | ')[0]}/`") for layer in LAYERS]
    assert positions == sorted(positions)


def test_a_back_edge_breaks_the_layers_even_inside_a_function(tmp_path):
    # the same contracts over a sketch of the packages with two back edges: a driver that
    # imports a protocol model when called, and a store that imports the analysis
    for package in ("core", "materials", "protocols", "drivers", "store", "simulators",
                    "analysis", "sequencer"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "protocols" / "steps.py").write_text("")
    (tmp_path / "drivers" / "sketch.py").write_text(textwrap.dedent("""
        def build():
            from protocols import steps
            return steps
    """))
    (tmp_path / "store" / "sketch.py").write_text("import analysis\n")
    (tmp_path / "sequencer" / "sketch.py").write_text("import analysis, drivers, store\n")
    config = tmp_path / "pyproject.toml"
    source = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    config.write_text(source[source.index("[tool.importlinter]"):], encoding="utf-8")
    result = lint(config, tmp_path, str(tmp_path))
    report = " ".join(result.stdout.split())
    assert result.returncode == 1, result.stdout + result.stderr
    assert "drivers.sketch -> protocols.steps" in report
    assert "store.sketch -> analysis" in report
    assert "sequencer.sketch" not in report   # a higher layer may import a lower one


STATION = """station: bench
instruments:
  vsp: {driver: biologic.vsp300, channels: 6, address: "192.0.2.10"}
  bts: {driver: neware.bts, channels: 8, address: "tcp://192.0.2.30:502",
        password_env: CELLSEQ_TEST_BTS_PASSWORD,
        options: {max_current_A: 0.1, min_voltage_V: 0.0, max_voltage_V: 5.0}}
  chamber: {driver: espec, address: "tcp://192.0.2.40:57732"}
cells:
  aiose-blocking-1: {instrument: vsp, channel: 0, chamber: chamber}
  ncm811-1: {instrument: bts, channel: 0, chamber: chamber}
"""
HARDWARE_RUN = """
import sys
from pathlib import Path

import sequencer.cli, sequencer.executor, sequencer.runner
from drivers.clock import WallClock
from sequencer.instruments import build_hardware

plan = sequencer.runner.prepare(Path(sys.argv[1]), Path(sys.argv[2]))
build_hardware(plan.station, WallClock())
print(sorted(m for m in sys.modules if m.split(".")[0] == "simulators"))
"""


def test_a_hardware_run_loads_only_the_simulators_specs(tmp_path):
    station = tmp_path / "station.yaml"
    station.write_text(STATION, encoding="utf-8")
    env = {**os.environ, "CELLSEQ_TEST_BTS_PASSWORD": "secret"}
    result = subprocess.run(
        [sys.executable, "-c", HARDWARE_RUN, str(ROOT / "protocols/examples/quickstart.yaml"),
         str(station)], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['simulators', 'simulators.specs']"
