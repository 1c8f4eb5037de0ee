"""Includes: the policy (inside the protocol's folder unless allowed), the campaign-wide limits,
and messages that lead from the file the user gave to the line at fault."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from protocols import ProtocolError, load_campaign
from protocols import loader as loader_module
from sequencer.cli import app
from sequencer.runner import prepare

runner = CliRunner()

CELL = """campaign: {name}
cells:
  - {{id: {cell}, kind: blocking, electrolyte: AIOSE, thickness: 300 um, diameter: 16 mm}}
"""
REST = """  - name: rest
    cells: [b1]
    steps: ['Rest for 1 minute']
"""
EXPERIMENT = """campaign: {name}
experiments:
  - name: {exp}
    cells: [{cell}]
    steps:
      - {step}
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def top(folder: Path, *includes: str, name: str = "top.yaml") -> Path:
    body = "campaign: top\ninclude:\n" + "".join(f"  - {ref}\n" for ref in includes)
    return write(folder / name, body)


def problems(path: Path, **kwargs: bool) -> list[str]:
    with pytest.raises(ProtocolError) as info:
        load_campaign(path, **kwargs)
    return [str(p) for p in info.value.problems]


# --- policy --------------------------------------------------------------------------------------

def test_includes_in_subfolders_are_read_and_named_by_their_path(tmp_path):
    write(tmp_path / "cells" / "c.yaml", CELL.format(name="c", cell="b1"))
    write(tmp_path / "exps" / "e.yaml", EXPERIMENT.format(name="e", exp="rest", cell="b1",
                                                          step="Rest for 1 hour"))
    campaign = load_campaign(top(tmp_path, "cells/c.yaml", "exps/e.yaml"))
    assert campaign.sources == ["top.yaml", "cells/c.yaml", "exps/e.yaml"]


@pytest.mark.parametrize("ref", ["../outside.yaml", "sub/../../outside.yaml", "{abs}"])
def test_an_include_leaving_the_protocols_folder_is_refused(tmp_path, ref):
    folder = tmp_path / "protocol"
    (folder / "sub").mkdir(parents=True)
    outside = write(tmp_path / "outside.yaml",
                    CELL.format(name="o", cell="b1") + "experiments:\n" + REST)
    ref = ref.format(abs=outside)
    path = top(folder, ref)
    [message] = problems(path)
    assert message.startswith("top.yaml:3: include[0]: include ")
    assert "pass --allow-outside-includes" in message
    campaign = load_campaign(path, allow_outside_includes=True)   # the user's explicit choice
    assert campaign.sources == ["top.yaml", "../outside.yaml"]


def test_an_absolute_path_is_refused_even_inside_the_folder(tmp_path):
    inside = write(tmp_path / "c.yaml", CELL.format(name="c", cell="b1"))
    [message] = problems(top(tmp_path, str(inside)))
    assert f"include '{inside}' is an absolute path" in message


def test_a_symbolic_link_leading_out_of_the_folder_is_refused(tmp_path):
    outside = write(tmp_path / "elsewhere" / "c.yaml", CELL.format(name="c", cell="b1"))
    folder = tmp_path / "protocol"
    folder.mkdir()
    (folder / "c.yaml").symlink_to(outside)
    [message] = problems(top(folder, "c.yaml"))
    assert "include 'c.yaml' leads outside the protocol's folder" in message


def test_the_cli_takes_allow_outside_includes_on_validate_plan_and_run(tmp_path):
    write(tmp_path / "shared" / "c.yaml", CELL.format(name="c", cell="b1"))
    folder = tmp_path / "protocol"
    write(folder / "e.yaml", EXPERIMENT.format(name="e", exp="rest", cell="b1",
                                               step="Rest for 1 minute"))
    path = top(folder, "../shared/c.yaml", "e.yaml")
    refused = runner.invoke(app, ["validate", str(path)])
    assert refused.exit_code == 2 and "leads outside the protocol's folder" in refused.output
    for args in (["validate", str(path)], ["plan", str(path)],
                 ["run", str(path), "--sim", "--out", str(tmp_path / "run"), "--no-report"]):
        result = runner.invoke(app, [*args, "--allow-outside-includes"])
        assert result.exit_code == 0, result.output


# --- limits --------------------------------------------------------------------------------------

def test_a_fan_out_of_one_file_is_refused_at_once(tmp_path):
    """Three levels of 100 includes of one file would be a million loads; a file is included
    once, so this is 3 loads and 297 refusals."""
    write(tmp_path / "leaf.yaml", CELL.format(name="leaf", cell="b1"))
    write(tmp_path / "l2.yaml", "campaign: l2\ninclude: [" + ", ".join(["leaf.yaml"] * 100) + "]\n")
    write(tmp_path / "l1.yaml", "campaign: l1\ninclude: [" + ", ".join(["l2.yaml"] * 100) + "]\n")
    path = write(tmp_path / "top.yaml",
                 "campaign: top\ninclude: [" + ", ".join(["l1.yaml"] * 100) + "]\n")
    found = problems(path)
    assert len(found) == 3 * 99
    assert ("l2.yaml:2: include[1]: 'leaf.yaml' is already part of the campaign (from"
            " l2.yaml:2); a file is included once (included from top.yaml:2 -> l1.yaml:2)"
            ) in found


def test_the_number_of_files_a_campaign_reads_is_bounded(tmp_path):
    for i in range(100):
        refs = ", ".join(f"leaf-{i}-{k}.yaml" for k in range(2))
        write(tmp_path / f"mid-{i}.yaml", f"campaign: m{i}\ninclude: [{refs}]\n")
        for k in range(2):
            write(tmp_path / f"leaf-{i}-{k}.yaml", f"campaign: l{i}x{k}\n")
    path = top(tmp_path, *(f"mid-{i}.yaml" for i in range(100)))
    found = problems(path)
    limit = [m for m in found if "includes more than 200 files (the limit)" in m]
    assert len(limit) == 1 and len(found) == 1


def test_the_bytes_a_campaign_reads_are_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(loader_module, "MAX_TOTAL_BYTES", 3000)
    for k in range(3):
        write(tmp_path / f"c{k}.yaml", CELL.format(name=f"c{k}", cell=f"b{k}") + "#" * 1000)
    [message] = problems(top(tmp_path, "c0.yaml", "c1.yaml", "c2.yaml"))
    assert message == ("top.yaml:5: include[2]: the campaign's files add up to more than"
                       " 3,000 bytes (the limit)")


def test_the_nodes_a_campaign_expands_to_are_bounded(tmp_path, monkeypatch):
    paths = [write(tmp_path / f"c{k}.yaml", CELL.format(name=f"c{k}", cell=f"b{k}"))
             for k in range(3)]
    path = top(tmp_path, "c0.yaml", "c1.yaml", "c2.yaml")
    nodes = [loader_module._parse(p.read_bytes(), p.name, 10**6)[2] for p in (path, *paths)]
    monkeypatch.setattr(loader_module, "MAX_TOTAL_NODES", sum(nodes) - 1)
    [message] = problems(path)
    assert (f"the campaign's files expand to more than {sum(nodes) - 1} YAML nodes in all"
            " (the limit)") in message
    assert message.startswith("c2.yaml: ") and message.endswith("(included from top.yaml:5)")


# --- messages ------------------------------------------------------------------------------------

@pytest.fixture
def nested(tmp_path: Path) -> Path:
    """top.yaml -> sub/mid.yaml -> sub/deep/leaf.yaml; the leaf is where things go wrong."""
    write(tmp_path / "sub" / "mid.yaml", "campaign: mid\ninclude:\n  - deep/leaf.yaml\n")
    return top(tmp_path, "sub/mid.yaml")


def test_a_schema_error_deep_down_names_the_chain_from_the_top_file(nested):
    write(nested.parent / "sub" / "deep" / "leaf.yaml",
          CELL.format(name="leaf", cell="b1").replace("300 um", "C/0"))
    [message] = problems(nested)
    assert message == ("sub/deep/leaf.yaml:3: cells[0].thickness: expected a length, got the"
                       " C-rate 'C/0' (included from top.yaml:3 -> sub/mid.yaml:3)")


def test_a_yaml_error_deep_down_names_the_chain(nested):
    write(nested.parent / "sub" / "deep" / "leaf.yaml", "campaign: leaf\ncells: [\n")
    [message] = problems(nested)
    assert message.startswith("sub/deep/leaf.yaml:3: invalid YAML")
    assert message.endswith("(included from top.yaml:3 -> sub/mid.yaml:3)")


def test_a_missing_file_deep_down_is_named_at_its_include_line(nested):
    [message] = problems(nested)
    assert message == ("sub/mid.yaml:3: include[0]: included file 'deep/leaf.yaml' does not"
                       " exist (included from top.yaml:3)")


def test_cross_file_checks_name_the_chain(nested):
    write(nested.parent / "sub" / "deep" / "leaf.yaml",
          EXPERIMENT.format(name="leaf", exp="e", cell="nobody", step="Rest for 1 hour"))
    found = problems(nested)
    assert ("sub/deep/leaf.yaml:4: experiments[0].cells[0]: cell 'nobody' is not among the"
            " cells (none) (included from top.yaml:3 -> sub/mid.yaml:3)") in found


def test_plan_problems_name_the_chain(nested):
    write(nested.parent / "sub" / "c.yaml", CELL.format(name="c", cell="b1"))
    write(nested.parent / "sub" / "mid.yaml",
          "campaign: mid\ninclude:\n  - c.yaml\n  - deep/leaf.yaml\n")
    write(nested.parent / "sub" / "deep" / "leaf.yaml",
          EXPERIMENT.format(name="leaf", exp="e", cell="b1",
                            step="{kind: rest, duration: 1 h, record_every: 1 us}"))
    with pytest.raises(ProtocolError) as info:
        prepare(nested)
    [message] = [str(p) for p in info.value.problems]
    assert message.startswith("sub/deep/leaf.yaml:6: experiments[0].steps[0]: cell b1: the step"
                              " records about 3.6e+09 points")
    assert message.endswith("(included from top.yaml:3 -> sub/mid.yaml:4)")


def test_the_campaign_lists_every_file_it_read_with_its_bytes(tmp_path):
    cells = write(tmp_path / "sub" / "c.yaml", CELL.format(name="c", cell="b1"))
    exps = write(tmp_path / "e.yaml", EXPERIMENT.format(name="e", exp="rest", cell="b1",
                                                        step="Rest for 1 hour"))
    path = top(tmp_path, "sub/c.yaml", "e.yaml")
    files = load_campaign(path).files
    assert [f.name for f in files] == ["top.yaml", "sub/c.yaml", "e.yaml"]
    assert [f.data for f in files] == [p.read_bytes() for p in (path, cells, exps)]
    assert files[1].sha256 == hashlib.sha256(cells.read_bytes()).hexdigest()
