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


_KEPT: list[bytearray] = []


def _grows(n: int) -> int:
    _KEPT.append(bytearray(b"x" * (16 << 20)))   # 16 MB written: resident, and kept
    return os.getpid()


def _dies_on_three(n: int) -> int:
    if n == 3:
        os._exit(9)
    return n


def test_with_a_growth_limit_a_process_takes_item_after_item():
    answers = run_forked(_pid_and_square, [4, 1, 3, 2], processes=1, grow_limit_mb=1000)
    assert {k: v[1] for k, v in answers.items()} == {1: 1, 2: 4, 3: 9, 4: 16}
    pids = {v[0] for v in answers.values()}
    assert len(pids) == 1 and os.getpid() not in pids


def test_a_process_grown_past_the_limit_ends_and_a_fresh_one_takes_the_next_item():
    answers = run_forked(_grows, [1, 2, 3], processes=1, grow_limit_mb=8)
    assert len(set(answers.values())) == 3
    assert len(set(run_forked(_grows, [1, 2, 3, 4], processes=1, grow_limit_mb=40).values())) \
        == 2   # 16 MB, 32 MB, then past 40: two items and two


def test_an_item_failing_in_a_process_that_took_others_before_is_raised_and_named():
    with pytest.raises(ValueError, match=r"^three is refused$"):
        run_forked(_fails_on_three, [1, 2, 3, 4], processes=1, grow_limit_mb=1000)
    with pytest.raises(AnalysisError, match=r"^the analysis of cell 3 ended without an answer"
                       r" \(its process exited with code 9\)$"):
        run_forked(_dies_on_three, [1, 2, 3, 4], processes=2, grow_limit_mb=1000, what="cell")


@pytest.mark.parametrize("grow_limit_mb", [None, 1e6])   # a process per item, or one for all
def test_once_more_items_says_no_no_item_is_handed_out_and_those_begun_finish(grow_limit_mb):
    asked: list[int] = []

    def more() -> bool:   # asked before each item: yes for the first two only
        asked.append(1)
        return len(asked) <= 2

    answers = run_forked(_pid_and_square, [5, 6, 7, 8], processes=1,
                         grow_limit_mb=grow_limit_mb, more_items=more)
    assert {k: v[1] for k, v in answers.items()} == {5: 25, 6: 36}
