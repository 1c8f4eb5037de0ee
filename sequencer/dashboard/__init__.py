"""The live dashboard (`cellseq dashboard`): runs in the browser as they record.

- :mod:`~sequencer.dashboard.source`: what the web layer asks of runs (``RunSource``);
- :mod:`~sequencer.dashboard.local`: that, for local run directories (found by
  :mod:`~sequencer.dashboard.run_dirs`);
- :mod:`~sequencer.dashboard.loading`: a source made in the background while the page is
  already served;
- :mod:`~sequencer.dashboard.envelope`: min/max per pixel for millions of points;
- :mod:`~sequencer.dashboard.app`: the Starlette application; ``serve``: uvicorn.

Starlette and uvicorn (the ``dashboard`` extra) are imported by ``app`` and ``serve`` only.
"""
