"""The command's way out: what is left is frozen before the interpreter's exit, so that the exit
does not run the cyclic collector over everything the command imported and made."""

from __future__ import annotations

import gc
import sys

import pytest

from sequencer import cli


def test_the_command_leaves_everything_frozen_as_it_exits(monkeypatch: pytest.MonkeyPatch):
    gc.unfreeze()
    monkeypatch.setattr(sys, "argv", ["cellseq", "--help"])
    try:
        with pytest.raises(SystemExit) as done:
            cli.main()
        assert done.value.code == 0
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
