"""Rendering the report's figures to PNG on every available core.

Drawing is most of a report's time (text layout and rasterising in matplotlib's Agg), and
each figure draws on its own: the figures (built by :mod:`analysis.plots` in this process) are
handed to forked worker processes and come back as PNG bytes, in order; only this process's
own objects cross, nothing read from a file. On one core, or for a single figure, they
are drawn here.
"""

from __future__ import annotations

import functools
import gc
import io
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TYPE_CHECKING

if TYPE_CHECKING:   # matplotlib once a figure is drawn: not for the numbers alone
    from matplotlib.backends.backend_agg import RendererAgg
    from matplotlib.figure import Figure

#: The report's figures' resolution (dots per inch).
FIGURE_DPI = 120
#: zlib's level for the PNGs: the same pixels as matplotlib's default (6) in files about 10 %
#: larger, written in about a third of the time (level 6 took a sixth of a figure's time).
PNG_COMPRESS_LEVEL = 1
#: Renderers kept for reuse, one per image size (the report's figures come in a few sizes).
_MAX_RENDERERS = 8
_RENDERERS: dict[tuple[int, int, float], RendererAgg] = {}
_CANVAS: type | None = None


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


@functools.cache   # once a process: what it sets up stays
def warm_up() -> None:
    """Draw a small figure once, so that processes forked after this call start with what the
    first drawing in a process sets up (matplotlib's lazily imported modules, the font lookup
    cache) instead of each setting it up again."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1.0, 1.0))
    ax = fig.add_subplot()
    ax.plot([0.0, 1.0], [0.0, 1.0], label="x")
    ax.set_title("x")
    ax.legend()
    _png(fig, FIGURE_DPI)


def _png(fig: Figure, dpi: float) -> bytes:
    """The figure drawn at ``dpi`` as PNG bytes: the pixels ``Figure.savefig`` draws (the same
    Agg drawing, the figure's own face colour), encoded by Pillow as ``savefig`` does."""
    from PIL import Image

    canvas = _canvas_class()(fig)
    dpi_before = fig.dpi
    # the cyclic collector would walk the figure's thousands of new objects over and over
    # while they are being drawn; they are all still in use, so it would find nothing
    collecting = gc.isenabled()
    gc.disable()
    try:
        fig.dpi = dpi
        canvas.draw()
        image = Image.frombuffer("RGBA", canvas.get_width_height(physical=True),
                                 canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
        buffer = io.BytesIO()
        image.save(buffer, format="png", dpi=(dpi, dpi), compress_level=PNG_COMPRESS_LEVEL)
        return buffer.getvalue()
    finally:
        fig.dpi = dpi_before
        if collecting:
            gc.enable()


def _canvas_class() -> type:
    """An Agg canvas that draws with a renderer kept for the image's size, not a new one per
    figure: matplotlib caches the measured size of each text per renderer, so the tick labels,
    axis labels and legend texts that recur from figure to figure are measured once. Made on
    first use: matplotlib is imported only where a figure is drawn."""
    global _CANVAS
    if _CANVAS is not None:
        return _CANVAS
    from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg

    class _Canvas(FigureCanvasAgg):
        def get_renderer(self) -> RendererAgg:
            width, height = self.get_width_height(physical=True)
            key = (width, height, self.figure.dpi)
            renderer = _RENDERERS.get(key)
            if renderer is None:
                if len(_RENDERERS) >= _MAX_RENDERERS:
                    _RENDERERS.clear()
                renderer = _RENDERERS[key] = RendererAgg(width, height, self.figure.dpi)
            self.renderer = renderer
            return renderer

    _CANVAS = _Canvas
    return _CANVAS
