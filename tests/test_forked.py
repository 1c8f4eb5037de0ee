"""analysis.forked: each item in a process of its own, answers by item, failures raised."""

from __future__ import annotations

import os

import pytest

from analysis.errors import AnalysisError
from analysis.forked import can_fork, run_forked

pytestmark = pytest.mark.skipif(not can_fork(), reason="fork only")


def _pid_and_square(n: int) -> tuple[int, int]:
    return os.getpid(), n * n


def _fails_on_three(n: int) -> int:
    if n == 3:
        raise ValueError("three is refused")
    return n


def _dies(n: int) -> int:
    os._exit(7)


def test_every_item_answers_from_a_process_of_its_own():
    answers = run_forked(_pid_and_square, [4, 1, 3, 2], processes=2)
    assert {k: v[1] for k, v in answers.items()} == {1: 1, 2: 4, 3: 9, 4: 16}
    pids = {v[0] for v in answers.values()}
    assert len(pids) == 4 and os.getpid() not in pids


def test_an_exception_in_an_item_is_raised_in_the_parent():
    with pytest.raises(ValueError, match=r"^three is refused$"):
        run_forked(_fails_on_three, [1, 2, 3, 4], processes=1)


def test_a_process_that_dies_is_an_analysis_error_naming_the_item():
    with pytest.raises(AnalysisError, match=r"^the analysis of cell x ended without an answer"
                       r" \(its process exited with code 7\)$"):
        run_forked(_dies, ["x"], processes=2, what="cell")
