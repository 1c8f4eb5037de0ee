"""The ``cellseq`` command's entry point.

``cellseq dashboard`` on local run directories starts without the full command line (typer
and rich are a tenth of a second of imports, and a dashboard's first paint counts from the
command's start: :mod:`sequencer.dashboard.start`). Every other command, and any dashboard
command line the quick start does not read (``--help``, ``--db``, a mistake), goes to
:mod:`sequencer.cli`.
"""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:2] == ["dashboard"]:
        from sequencer.dashboard.start import quick

        if quick(sys.argv[2:]):
            return
    from sequencer.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
