"""Derived results from exported run data: pure functions over arrays and DataFrames.

The analysis reads only what the run store exports; it knows nothing of instruments or protocols.

The names below load their modules when first used: the executor imports the pure cycle
functions (:mod:`analysis.cycles`) for loop conditions, and ``cellseq validate`` must not pay
for pandas and SciPy to get them.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_WHERE = {
    "capacity_retention": "analysis.cycling",
    "cycle_table": "analysis.cycling",
    "BOLTZMANN_eV_PER_K": "analysis.eis",
    "arrhenius_fit": "analysis.eis",
    "bulk_resistance": "analysis.eis",
    "conductivity_S_per_m": "analysis.eis",
    "AnalysisError": "analysis.errors",
    "QUANTITY_NAMES": "analysis.results",
    "Result": "analysis.results",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'analysis' has no attribute {name!r}")
