"""The one error the analysis raises.

Not under ``CellseqError`` (:mod:`core.errors`): the command lines that run an analysis catch
it by name where they catch the root, and a pure function's bad argument stays a
``ValueError`` for scripts that call the analysis directly.
"""

from __future__ import annotations


class AnalysisError(ValueError):
    """Data that cannot give the asked-for result (missing columns, NaN, too few points).

    A ``ValueError``, because every such case is a bad argument to a pure function.
    """
