"""The root of cellseq's one error tree, in a module that imports nothing.

Every package raises under :class:`CellseqError` (``ProtocolError``, ``DriverError``,
``StoreError``, ``AnalysisError``, ...), so the command line tells a user's problem from a bug
by one ``except``. It lives in the bottom layer so that no package has to import another (the
instrument interfaces, trio, numpy) to raise it.
"""

from __future__ import annotations


class CellseqError(Exception):
    """Anything cellseq reports to a user as a problem with their input, station or instruments."""
