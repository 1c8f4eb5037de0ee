"""Property tests: whatever a protocol file holds, loading it either works or raises a
ProtocolError that names the file; never another exception."""

from __future__ import annotations

import copy

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols import ProtocolError, load_campaign
from protocols.loader import parse_yaml

from .conftest import QUICKSTART

BASE = yaml.safe_load(QUICKSTART.read_text())

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True),
    st.text(max_size=20),
    st.sampled_from(["10 mV", "3 MHz", "-20 degC", "0.1C", "C/10", "nan mV", "1e999 s",
                     "0.35 mA/cm^2", "10 mA", "-1 h", "cm2", "1 parsec", "inf", "rest",
                     "peis", "loop", "Charge at C/10 until 4.2 V", "Rest for", "%"]),
)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12)


def paths(doc, prefix=()):
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from paths(v, (*prefix, i))


ALL_PATHS = [p for p in paths(BASE) if p]


def mutate(doc, path, action, value):
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


def loads_cleanly(tmp_path, text: str | bytes) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    try:
        load_campaign(path)
    except ProtocolError as exc:
        assert exc.problems
        assert all(p.file == "fuzz.yaml" for p in exc.problems), exc
        assert all(p.message for p in exc.problems)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(ALL_PATHS), action=st.sampled_from(["delete", "replace", "insert"]),
       value=values)
def test_mutated_protocols_fail_cleanly(tmp_path, path, action, value):
    doc = mutate(BASE, path, action, value)
    loads_cleanly(tmp_path, yaml.safe_dump(doc, allow_unicode=True))


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=300))
def test_arbitrary_bytes_fail_cleanly(tmp_path, raw):
    loads_cleanly(tmp_path, raw)


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(alphabet=st.sampled_from(list("{}[]:-&*!|>'\"#%@` \n\tabc01")),
                    max_size=200))
def test_yaml_punctuation_soup_fails_cleanly(tmp_path, text):
    loads_cleanly(tmp_path, text)


def test_huge_files_are_refused_quickly(tmp_path):
    path = tmp_path / "huge.yaml"
    path.write_bytes(b"campaign: t\n" + b"# padding\n" * 300_000)
    with pytest.raises(ProtocolError, match=r"huge\.yaml: is 3,000,012 bytes; the limit is"
                                            r" 2,097,152 bytes"):
        load_campaign(path)


def test_recursive_alias_is_refused():
    with pytest.raises(ProtocolError) as info:
        parse_yaml(b"a: &a [*a, *a]\n", "r.yaml")
    assert [str(p) for p in info.value.problems] == [
        "r.yaml:1: the document nests deeper than 64 levels"]


def test_an_alias_bomb_is_refused_by_its_expanded_size():
    lines = [b"l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [b"l%d: &l%d [" % (k, k) + b", ".join([b"*l%d" % (k - 1)] * 10) + b"]"
              for k in range(1, 9)]
    with pytest.raises(ProtocolError) as info:
        parse_yaml(b"\n".join(lines) + b"\n", "r.yaml")
    assert [str(p) for p in info.value.problems] == [
        "r.yaml: the document expands to more than 200000 nodes (aliases repeated too often?)"]


@pytest.mark.parametrize(("raw", "message"), [
    (b"a: " + b"[" * 5000 + b"]" * 5000, "r.yaml: the document nests too deeply"),
    (b"a: " + b"{b: " * 3000 + b"1" + b"}" * 3000, "r.yaml: the document nests too deeply"),
    (b"a: " + b"[" * 100 + b"]" * 100, "r.yaml:1: the document nests deeper than 64 levels"),
    (b"a:\n" + b"".join(b"  " * k + b"- \n" for k in range(1, 80)),
     "r.yaml:"),
])
def test_deep_nesting_is_refused(raw, message):
    with pytest.raises(ProtocolError) as info:
        parse_yaml(raw, "r.yaml")
    [problem] = info.value.problems
    assert str(problem).startswith(message)
    assert "nests" in problem.message


def test_nesting_within_the_limit_is_read():
    data, _ = parse_yaml(b"a: " + b"[" * 60 + b"]" * 60, "r.yaml")
    assert isinstance(data["a"], list)
