"""What a command loads before it answers: ``--help`` and ``status`` none of the heavy
libraries, ``validate`` and ``plan`` not pint when every unit is in the table of pint's results
(:mod:`protocols.si_table`), nor numpy, and nothing heavy; a dry run no plotting before its
report, and none at all without one. Each command runs in a fresh interpreter;
``benchmarks/startup.py`` measures the time it takes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sequencer.runner import run_simulated

from .conftest import QUICKSTART

CAMPAIGN = Path(__file__).resolve().parents[1] / "protocols" / "aiose" / "campaign.yaml"
ONE_STEP = """campaign: t
cells:
  - {id: s1, kind: symmetric_li, electrolyte: AIOSE, thickness: 300 um, diameter: 16 mm}
experiments:
  - name: e
    cells: [s1]
    steps:
      - {kind: rest, duration: 1 min}
"""

#: Libraries no quick command needs: plotting, tables, the event loop, the test runner, the
#: fitting and file libraries.
HEAVY = {"pandas", "matplotlib", "pyarrow", "impedance", "trio", "_pytest", "pytest", "galvani",
         "NewareNDA", "pyvisa", "serial"}
COMMAND = """
import sys
from sequencer.cli import main
sys.argv = ["cellseq", *sys.argv[1:]]
code = 0
try:
    main()
except SystemExit as exc:
    code = exc.code
print(f"exit {code}", file=sys.stderr)
print(" ".join(sorted({m.split(".")[0] for m in sys.modules})), file=sys.stderr)
"""


def loaded(*args: str) -> set[str]:
    """The top-level packages ``cellseq ARGS`` has imported when it ends (it must succeed)."""
    done = subprocess.run([sys.executable, "-c", COMMAND, *args], capture_output=True,
                          text=True, timeout=120)
    *_, code, modules = done.stderr.strip().splitlines()
    assert code in ("exit 0", "exit None"), done.stderr
    return set(modules.split())


def test_help_loads_no_numpy_and_nothing_heavy():
    modules = loaded("--help")
    assert modules & (HEAVY | {"numpy", "pint", "protocols", "store"}) == set()


def test_status_reads_a_run_without_numpy_units_or_the_event_loop(tmp_path):
    protocol = tmp_path / "p.yaml"
    protocol.write_text(ONE_STEP, encoding="utf-8")
    run_simulated(protocol, tmp_path / "run", seed=1)
    modules = loaded("status", str(tmp_path / "run"))
    assert modules & (HEAVY | {"numpy", "pint", "protocols", "simulators"}) == set()


def test_validate_loads_no_pint_simulator_physics_or_event_loop():
    modules = loaded("validate", str(QUICKSTART))
    assert "protocols" in modules
    assert modules & (HEAVY | {"pint", "numpy", "tenacity"}) == set()
    simulators = subprocess.run(
        [sys.executable, "-c", COMMAND.replace(
            'print(" ".join(sorted({m.split(".")[0] for m in sys.modules})), file=sys.stderr)',
            'print(" ".join(sorted(m for m in sys.modules if m.startswith("simulators"))),'
            " file=sys.stderr)"), "validate", str(Path(QUICKSTART))],
        capture_output=True, text=True, timeout=120)
    assert simulators.stderr.strip().splitlines()[-1].split() == ["simulators", "simulators.specs"]


def test_a_dry_run_loads_no_pytest_helpers(tmp_path):
    """trio.testing (MockClock's home) loads pytest's helpers when pytest is installed (as
    here): a dry run keeps its virtual time with a clock of its own and never imports it."""
    from drivers.clock import TrioClock
    from drivers.virtual_time import VirtualTime

    assert type(TrioClock(virtual=True).trio_clock()) is VirtualTime
    protocol = tmp_path / "p.yaml"
    protocol.write_text(ONE_STEP, encoding="utf-8")
    code = ("import sys\nfrom pathlib import Path\nfrom sequencer.runner import run_simulated\n"
            "run_simulated(Path(sys.argv[1]), Path(sys.argv[2]), 0, None, None)\n"
            "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})), file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code, str(protocol), str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    modules = set(done.stderr.strip().splitlines()[-1].split())
    assert "trio" in modules
    assert modules & {"_pytest", "pytest"} == set()


def test_planning_a_whole_campaign_loads_no_numpy_pint_or_transport_retries():
    """Durations written "2 hours", expected values in their quantity's unit, spectra whose
    length is estimated, the drivers' specs read for the station: none of it needs numpy,
    pint or tenacity."""
    modules = loaded("plan", str(CAMPAIGN))
    assert {"protocols", "drivers", "simulators"} <= modules
    assert modules & (HEAVY | {"numpy", "pint", "tenacity"}) == set()


def test_a_run_without_report_prints_its_summary_without_plotting_or_tables(tmp_path):
    """The summary derives the results from the stored points, and imports pandas (and with
    it pyarrow) only where a derivation makes a frame: a rest makes none."""
    protocol = tmp_path / "p.yaml"
    protocol.write_text(ONE_STEP, encoding="utf-8")
    modules = loaded("run", str(protocol), "--sim", "--no-report", "--out", str(tmp_path / "run"))
    assert (tmp_path / "run" / "run.log").read_text(encoding="utf-8").count("run_completed") == 1
    assert "analysis" in modules   # the summary was derived, not skipped
    assert modules & {"matplotlib", "PIL", "pandas", "pyarrow"} == set()


def test_a_dry_run_itself_loads_neither_plotting_nor_tables(tmp_path):
    """What a run imports before and while it runs: the report's libraries come after."""
    protocol = tmp_path / "p.yaml"
    protocol.write_text(ONE_STEP, encoding="utf-8")
    code = ("import sys\nfrom pathlib import Path\nfrom sequencer.runner import run_simulated\n"
            "run_simulated(Path(sys.argv[1]), Path(sys.argv[2]), 0, None, None)\n"
            "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})), file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code, str(protocol), str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    modules = set(done.stderr.strip().splitlines()[-1].split())
    assert {"trio", "numpy"} <= modules
    assert modules & {"matplotlib", "PIL", "pandas", "pyarrow", "pint"} == set()
