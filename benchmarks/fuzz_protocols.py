"""Protocol fuzzing over the loader and the planner: zero tracebacks.

    python benchmarks/fuzz_protocols.py [--examples 5000]

Every protocol file of the library (the quickstart and the paper's campaign files) is mutated
by hypothesis (a key deleted, a value replaced or inserted: scalars, unit strings, NaN,
infinities, nested lists and maps), plus raw byte strings and damaged YAML, and each result is
loaded and planned (``cellseq validate`` does the same). A run either works or raises a
ProtocolError naming the file (and, for a problem in an included file, the chain of includes
from the file given); anything else is a traceback a user would see. Prints the number of inputs
tried, how many loaded, how many were refused cleanly, and the tracebacks (target: 0).
``benchmarks/fuzz_inputs.py`` fuzzes values, include trees and spectrum files the same way.
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols import ProtocolError
from sequencer.runner import prepare

ROOT = Path(__file__).resolve().parents[1]
FILES = [ROOT / "protocols" / "examples" / "quickstart.yaml",
         *sorted((ROOT / "protocols" / "aiose").glob("*.yaml"))]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**15, 10**15), st.floats(allow_nan=True),
    st.text(max_size=30),
    st.sampled_from(["10 mV", "3 MHz", "-20 degC", "0.1C", "C/10", "nan mV", "1e999 s", "-0 s",
                     "0.35 mA/cm^2", "10 mA", "-1 h", "cm2", "1 parsec", "inf", "rest", "peis",
                     "loop", "Charge at C/10 until 4.2 V", "Rest for", "%", "1e-320 V",
                     "*anchor", "!!python/object:os.system", "${HOME}", "../../etc/passwd"]),
)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=16)


def paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += paths(v, (*prefix, i))
    return out


def mutate(doc: Any, path: tuple, action: str, value: Any) -> Any:
    doc = copy.deepcopy(doc)
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    key = path[-1]
    if action == "delete":
        del parent[key]
    elif action == "replace":
        parent[key] = value
    elif isinstance(parent, dict):
        parent[f"extra_{value!s:.5}"] = value
    else:
        parent.insert(key, value)
    return doc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=5_000)
    args = parser.parse_args()
    tally: Counter[str] = Counter()
    tracebacks: list[str] = []
    unplaced: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="cellseq-fuzz-"))
    docs = [(f, yaml.safe_load(f.read_text(encoding="utf-8"))) for f in FILES]
    cases = [(f, d, p) for f, d in docs for p in paths(d) if p]

    def check(text: str | bytes, name: str) -> None:
        path = folder / name
        path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
        try:
            prepare(path)
            tally["loaded"] += 1
        except ProtocolError as exc:
            # a campaign's problems may sit in the files it includes (mutated copies beside it);
            # those must name the chain of includes from the file given
            ok = bool(exc.problems) and all(
                p.file and (folder / p.file).is_file() and p.message
                and (p.via[0].startswith(f"{name}:") if p.file != name else not p.via)
                for p in exc.problems)
            tally["refused cleanly" if ok else "refused without a place"] += 1
            if not ok and len(unplaced) < 5:
                unplaced.append(str(exc)[:300])
        except Exception:   # what the fuzzing is for: any other exception is a finding
            tally["traceback"] += 1
            tracebacks.append(traceback.format_exc(limit=3))

    settings_ = settings(max_examples=args.examples, deadline=None, database=None,
                         derandomize=False, suppress_health_check=list(HealthCheck))

    @settings_
    @given(case=st.sampled_from(cases), action=st.sampled_from(["delete", "replace", "insert"]),
           value=values)
    def mutated(case: tuple, action: str, value: Any) -> None:
        source, doc, path = case
        check(yaml.safe_dump(mutate(doc, path, action, value), allow_unicode=True), source.name)

    @settings(max_examples=max(args.examples // 10, 100), deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(raw=st.one_of(st.binary(max_size=400), st.text(max_size=400)))
    def raw_bytes(raw: bytes | str) -> None:
        check(raw, "raw.yaml")

    wall = time.perf_counter()
    mutated()
    raw_bytes()
    wall = time.perf_counter() - wall
    tried = sum(tally.values())
    print(f"inputs tried        {tried:>8,}  ({wall:.0f} s, {tried / wall:,.0f}/s)")
    for key in ("loaded", "refused cleanly", "refused without a place", "traceback"):
        print(f"{key:<20}{tally[key]:>8,}")
    for tb in tracebacks[:5]:
        print("---\n" + tb)
    for text in unplaced:
        print("--- refused without naming the file's place:\n" + text)


if __name__ == "__main__":
    main()
