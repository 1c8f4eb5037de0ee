"""Step types and their handlers come from one declaration in each module: the union, the
handler tables and the dry run's placement follow, and a new step type is its own modules."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys
import typing
from pathlib import Path

import protocols.steps as steps
from protocols.steps import CHAMBER_STEPS, CONTAINERS, STEP_TYPES, Step
from protocols.steps.base import StepBase
from sequencer.handlers import EXPANSIONS, TECHNIQUES

TESTS = Path(__file__).parent


def test_the_step_union_is_the_one_list_of_step_types():
    (union, *_) = typing.get_args(Step)
    assert typing.get_args(union) == STEP_TYPES
    kinds = [t.model_fields["kind"].default for t in STEP_TYPES]
    assert kinds == sorted(set(kinds))
    declared = {obj for info in pkgutil.iter_modules(steps.__path__)
                for _, obj in inspect.getmembers(importlib.import_module(
                    f"protocols.steps.{info.name}"), inspect.isclass)
                if issubclass(obj, StepBase) and "kind" in obj.model_fields}
    assert declared == set(STEP_TYPES)   # no step class a module forgot to list in STEPS


def test_every_step_type_has_exactly_one_way_to_run():
    for step_type in STEP_TYPES:
        ways = [step_type in TECHNIQUES, step_type in EXPANSIONS, step_type in CONTAINERS,
                step_type in CHAMBER_STEPS and step_type not in CONTAINERS]
        assert ways.count(True) == 1, step_type.__name__


SCRIPT = """
import importlib.util, sys
from pathlib import Path

def unexecuted(name, extra=None):   # the package created, not yet run, extra among its folders
    spec = importlib.util.find_spec(name)
    if extra is not None:
        spec.submodule_search_locations.append(extra)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    return lambda: spec.loader.exec_module(module)

# the packages as they would be with the sketch's modules among theirs
run_protocols = unexecuted("protocols")
unexecuted("protocols.steps", sys.argv[1])()
run_protocols()
import sequencer
unexecuted("sequencer.handlers", sys.argv[2])()

from sequencer.runner import prepare, run_simulated
from store import RunStore
protocol = Path(sys.argv[3])
plan = prepare(protocol)
print("placed on", plan.station.instruments[plan.station.cells["s1"].instrument].driver)
outcome = run_simulated(protocol, Path(sys.argv[4]), seed=1)
store = RunStore.open(outcome.run_dir)
print("steps", [(s["kind"], s["end_reason"]) for s in store.steps("s1")])
print("points", len(store.read("s1")["voltage_V"]))
"""

PROTOCOL = """campaign: t
cells:
  - {id: s1, kind: blocking, electrolyte: AIOSE, thickness: 300 um, diameter: 16 mm}
experiments:
  - name: e
    cells: [s1]
    steps:
      - {kind: sketch_hold, voltage: 10 mV, duration: 10 min, record_every: 1 min}
"""


def test_a_step_type_added_in_its_own_modules_validates_places_and_runs(tmp_path):
    protocol = tmp_path / "p.yaml"
    protocol.write_text(PROTOCOL)
    ran = subprocess.run([sys.executable, "-c", SCRIPT, str(TESTS / "sketch_steps"),
                          str(TESTS / "sketch_handlers"), str(protocol), str(tmp_path / "run")],
                         capture_output=True, text=True, cwd=TESTS.parent)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines() == ["placed on sim.cycler",
                                       "steps [('sketch_hold', 'duration')]", "points 11"]
