"""Rendering the report's figures to PNG on every available core.

Drawing is most of a report's time (text layout and rasterising in matplotlib's Agg), and
each figure draws on its own: the figures (built by :mod:`analysis.plots` in this process) are
handed to forked worker processes and come back as PNG bytes, in order; only this process's
own objects cross, nothing read from a file. On one core, or for a single figure, they
are drawn here.
"""

from __future__ import annotations

import io
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TYPE_CHECKING

if TYPE_CHECKING:   # matplotlib once a figure is drawn: not for the numbers alone
    from matplotlib.figure import Figure

#: The report's figures' resolution (dots per inch).
FIGURE_DPI = 120
#: zlib's level for the PNGs: the same pixels as matplotlib's default (6) in files about 10 %
#: larger, written in about a third of the time (level 6 took a sixth of a figure's time).
PNG_COMPRESS_LEVEL = 1


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:   # not on Linux
        return os.cpu_count() or 1


def render_png(figures: Sequence[Figure], dpi: float, workers: int | None = None
               ) -> list[bytes]:
    """Each figure as PNG bytes, in the order given."""
    workers = min(workers or cores(), len(figures))
    if workers < 2:
        return [_png(fig, dpi) for fig in figures]
    # fork where there is one: the workers start with matplotlib already imported
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        jobs = [pool.submit(_png, fig, dpi) for fig in figures]
        return [job.result() for job in jobs]


def _png(fig: Figure, dpi: float) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, pil_kwargs={"compress_level": PNG_COMPRESS_LEVEL})
    return buffer.getvalue()
