"""Derived results from exported run data: pure functions over arrays and DataFrames.

The analysis reads only what the run store exports; it knows nothing of instruments or protocols.
"""

from analysis.cycling import capacity_retention, cycle_table
from analysis.eis import (
    BOLTZMANN_eV_PER_K,
    arrhenius_fit,
    bulk_resistance,
    conductivity_S_per_m,
)
from analysis.errors import AnalysisError
from analysis.results import QUANTITY_NAMES, Result

__all__ = [
    "QUANTITY_NAMES",
    "AnalysisError",
    "BOLTZMANN_eV_PER_K",
    "Result",
    "arrhenius_fit",
    "bulk_resistance",
    "capacity_retention",
    "conductivity_S_per_m",
    "cycle_table",
]
