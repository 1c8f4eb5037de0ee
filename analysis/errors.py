"""The one error the analysis raises.

Not (yet) under ``CellseqError``: that root lives in ``drivers.errors``, and importing it runs
``drivers/__init__`` (trio, instrument interfaces), which the analysis must not depend on. When the
root moves to a dependency-free module, derive from it as well.
"""

from __future__ import annotations


class AnalysisError(ValueError):
    """Data that cannot give the asked-for result (missing columns, NaN, too few points).

    A ``ValueError``, because every such case is a bad argument to a pure function.
    """
