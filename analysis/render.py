"""Rendering the report's figures to PNG on every available core.

Drawing is most of a report's time (text layout and rasterising in matplotlib's Agg), and
each figure draws on its own: the figures (built by :mod:`analysis.plots` in this process) are
handed to forked worker processes and come back as PNG bytes, in order; only this process's
own objects cross, nothing read from a file. On one core, or for a single figure, they
are drawn here.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import struct
import zlib
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import numpy.typing as npt
from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg
from matplotlib.figure import Figure

#: The report's figures' resolution (dots per inch).
FIGURE_DPI = 120
#: zlib's level for the PNGs: the same pixels as matplotlib's default (6) in files about 10 %
#: larger, written in about a third of the time (level 6 took a sixth of a figure's time).
PNG_COMPRESS_LEVEL = 1
#: Renderers kept for reuse, one per image size (the report's figures come in a few sizes).
_MAX_RENDERERS = 8
_RENDERERS: dict[tuple[int, int, float], RendererAgg] = {}


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


def warm_up() -> None:
    """Draw a small figure once, so that processes forked after this call start with what the
    first drawing in a process sets up (matplotlib's lazily imported modules, the font lookup
    cache) instead of each setting it up again."""
    fig = Figure(figsize=(1.0, 1.0))
    ax = fig.add_subplot()
    ax.plot([0.0, 1.0], [0.0, 1.0], label="x")
    ax.set_title("x")
    ax.legend()
    _png(fig, FIGURE_DPI)


def _png(fig: Figure, dpi: float) -> bytes:
    """The figure drawn at ``dpi`` as PNG bytes: the pixels ``Figure.savefig`` draws (the same
    Agg drawing, the figure's own face colour), encoded by :func:`encode_png`."""
    canvas = _Canvas(fig)
    dpi_before = fig.dpi
    # the cyclic collector would walk the figure's thousands of new objects over and over
    # while they are being drawn; they are all still in use, so it would find nothing
    collecting = gc.isenabled()
    gc.disable()
    try:
        fig.dpi = dpi
        canvas.draw()
        return encode_png(np.asarray(canvas.buffer_rgba()), dpi)
    finally:
        fig.dpi = dpi_before
        if collecting:
            gc.enable()


class _Canvas(FigureCanvasAgg):
    """An Agg canvas that draws with a renderer kept for the image's size, not a new one per
    figure: matplotlib caches the measured size of each text per renderer, so the tick labels,
    axis labels and legend texts that recur from figure to figure are measured once."""

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


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_INCHES_PER_METRE = 1 / 0.0254
_FILTER_UP = 2


def encode_png(rgba: npt.NDArray[np.uint8], dpi: float) -> bytes:
    """An 8-bit RGBA image (rows top to bottom) as PNG bytes, lossless, with its resolution.

    Why not Pillow's encoder: it tries every PNG row filter on every row to pick one, which
    took most of its time on the report's figures (about 8 ms a figure, against 3 ms here).
    Each row here is filtered by "Up" (the difference with the row above), which suits plots:
    mostly white space and lines that run on from row to row.
    """
    if rgba.ndim != 3 or rgba.shape[2] != 4 or rgba.dtype != np.uint8:
        raise ValueError(f"need an 8-bit RGBA image, got {rgba.dtype} of shape {rgba.shape}")
    height, width, _ = rgba.shape
    pixels = rgba.reshape(height, width * 4)
    rows = np.empty((height, width * 4 + 1), dtype=np.uint8)
    rows[:, 0] = _FILTER_UP
    rows[:1, 1:] = pixels[:1]   # above the first row: zeros
    np.subtract(pixels[1:], pixels[:-1], out=rows[1:, 1:])   # modulo 256, as PNG wants
    per_metre = round(dpi * _INCHES_PER_METRE)
    return b"".join((
        _PNG_SIGNATURE,
        _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)),
        _chunk(b"pHYs", struct.pack(">IIB", per_metre, per_metre, 1)),
        _chunk(b"IDAT", zlib.compress(rows.tobytes(), PNG_COMPRESS_LEVEL)),
        _chunk(b"IEND", b""),
    ))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
