"""Output in an 80-column terminal: experiment and cell ids, written with hyphens and no
spaces, wrap after a hyphen (or between ids) rather than being folded mid-word
(``interfacial-im`` / ``pedance``), in ``plan``, ``status`` and the printed summary."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console
from rich.table import Table
from typer.testing import CliRunner

from protocols.loader import load_campaign
from sequencer.breakable import Breakable, pieces, wrap_at_breaks
from sequencer.cli import app
from sequencer.summary import print_summary

from .conftest import ROOT

CAMPAIGN = ROOT / "protocols" / "aiose" / "campaign.yaml"


def whole_pieces_shown(name: str, text: str) -> bool:
    """Every piece of ``name`` (up to and with its hyphen) appears unbroken in ``text``."""
    return all(re.search(rf"(?<!\w){re.escape(p.strip())}", text) for p in pieces(name))


@pytest.mark.parametrize(("text", "width", "lines"), [
    ("interfacial-impedance-20-days", 14, ["interfacial-", "impedance-20-", "days"]),
    ("li-aiose-long-1, li-liquid-long-1", 16, ["li-aiose-long-1,", "li-liquid-long-1"]),
    ("li-aiose-long-1, li-liquid-long-1", 14, ["li-aiose-long-", "1,", "li-liquid-", "long-1"]),
    ("chamber-1, vsp300-1/ch0", 30, ["chamber-1, vsp300-1/ch0"]),
    ("discharge_capacity / mAh/g", 20, ["discharge_capacity /", "mAh/g"]),
    ("abcdefghij", 4, ["abcd", "efgh", "ij"]),          # no break at all: folded, never cut
    ("a\nb-c", 10, ["a", "b-c"]),
])
def test_lines_break_after_hyphens_between_words_and_fold_only_what_has_no_break(
        text, width, lines):
    assert wrap_at_breaks(text, width) == lines
    assert "".join(wrap_at_breaks(text, width)).replace(" ", "") == \
        text.replace("\n", "").replace(" ", "")


def test_a_table_gives_a_breakable_cell_its_widest_piece():
    table = Table("experiment", "start (h)")
    table.add_row(Breakable("interfacial-impedance-20-days"), "0.0")
    buffer = io.StringIO()
    Console(file=buffer, width=28, color_system=None).print(table)
    assert "interfacial-" in buffer.getvalue() and "impedance-" in buffer.getvalue()


def test_plan_at_80_columns_breaks_no_name_mid_word():
    campaign = load_campaign(CAMPAIGN)
    result = CliRunner().invoke(app, ["plan", str(CAMPAIGN)], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    table = result.stdout.split("makespan")[0]
    assert max(len(line) for line in table.splitlines()) <= 80
    names = [e.name for e in campaign.experiments] + [c.id for c in campaign.cells]
    broken = [n for n in names if not whole_pieces_shown(n, table)]
    assert broken == []


def test_the_summary_at_80_columns_wraps_a_long_cell_id_at_its_hyphens():
    cell = "ncm811-20c-60degc-liquid-electrolyte-reference-1"
    buffer = io.StringIO()
    status = {"campaign": "c", "status": "completed",
              "cells": [{"cell": cell, "state": "completed", "step_count": 3, "cycle": 0,
                         "points": 10, "last": {"t": 3600.0}}]}
    results = [{"cell": cell, "quantity": "diffusion_coefficient", "value": 1e-9,
                "unit": "cm2/s", "conditions": {"temperature_degC": 25}}]
    print_summary(Console(file=buffer, width=80, color_system=None), status,
                  {"run": {"status": "completed"}, "results": results})
    printed = buffer.getvalue()
    assert max(len(line) for line in printed.splitlines()) <= 80
    assert whole_pieces_shown(cell, printed)
    assert "diffusion_coefficient" in printed   # the quantity wraps at " / ", not inside
