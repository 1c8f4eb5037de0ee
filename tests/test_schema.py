"""`cellseq schema` describes what `cellseq validate` accepts, so an editor flags nothing valid.

Every file of the protocol library, and every mutation of one that validates, passes the JSON
Schema (checked with the jsonschema package). The reverse holds where a schema can say it:
unknown keys, missing fields, unknown step kinds, counts out of range or not integers, values
without a number: the schema refuses, and so does validate. Units, dimensions, references
between cells and experiments and cross-field rules are validate's alone.
"""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols import ProtocolError, load_campaign
from protocols.campaign import protocol_json_schema

from .conftest import QUICKSTART, ROOT
from .test_protocol_fuzz import mutate, paths, values

LIBRARY = sorted((ROOT / "protocols").rglob("*.yaml"))
VALIDATOR = jsonschema.Draft202012Validator(protocol_json_schema())
BASE = yaml.safe_load(QUICKSTART.read_text(encoding="utf-8"))
STANDALONE = {p.name: yaml.safe_load(p.read_text(encoding="utf-8")) for p in LIBRARY
              if p.name != "campaign.yaml"}


def schema_errors(doc: object) -> list[str]:
    return [e.message for e in VALIDATOR.iter_errors(doc)]


def validates(tmp_path: Path, doc: object, name: str = "p.yaml") -> bool:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    try:
        load_campaign(path)
    except ProtocolError:
        return False
    return True


def test_the_schema_is_a_valid_json_schema():
    jsonschema.Draft202012Validator.check_schema(protocol_json_schema())


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_library_file_passes_the_schema(path):
    load_campaign(path)   # validate accepts it ...
    assert schema_errors(yaml.safe_load(path.read_text(encoding="utf-8"))) == []   # ... and so
    # does the schema


def test_pybamm_strings_and_includes_pass_the_schema():
    doc = copy.deepcopy(BASE)
    doc["include"] = ["more.yaml"]
    doc["experiments"][0]["steps"] = ["Charge at C/10 until 4.2 V", "rest for 1 hour",
                                      "HOLD at 4.2 V until C/50"]
    assert schema_errors(doc) == []


@pytest.mark.parametrize(("where", "value"), [
    (("bogus",), 1),
    (("experiments", 0, "steps", 0, "bogus"), 1),
    (("experiments", 0, "steps", 0, "kind"), "jump"),
    (("experiments", 0, "steps", 0), {"duration": "1 h"}),
    (("experiments", 0, "steps", 0), "Jump for 1 hour"),
    (("experiments", 0, "steps", 1, "count"), 0),
    (("experiments", 0, "steps", 1, "count"), 2_000_000),
    (("experiments", 0, "steps", 1, "count"), True),
    (("experiments", 0, "steps", 1, "count"), "3"),
    (("cells", 0, "thickness"), 300),
    (("cells", 0, "thickness"), "um"),
    (("cells", 0, "id"), "bad id!"),
    (("include",), "other.yaml"),
    (("campaign",), None),
])
def test_what_the_schema_refuses_validate_refuses(tmp_path, where, value):
    doc = copy.deepcopy(BASE)
    parent = doc
    for key in where[:-1]:
        parent = parent[key]
    if value is None:
        del parent[where[-1]]
    else:
        parent[where[-1]] = value
    assert schema_errors(doc), f"the schema accepts {where} = {value!r}"
    assert not validates(tmp_path, doc)


MUTABLE = [(name, p) for name, doc in STANDALONE.items() for p in paths(doc) if p]


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(case=st.sampled_from(MUTABLE), action=st.sampled_from(["delete", "replace", "insert"]),
       value=values)
def test_whatever_validates_passes_the_schema(tmp_path, case, action, value):
    name, where = case
    doc = mutate(STANDALONE[name], where, action, value)
    if validates(tmp_path, doc, name):
        assert schema_errors(doc) == []
