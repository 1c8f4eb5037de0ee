"""The live dashboard (`cellseq dashboard`): runs in the browser as they record.

- :mod:`~sequencer.dashboard.source`: what the web layer asks of runs (``RunSource``);
- :mod:`~sequencer.dashboard.local`: that, for local run directories;
- :mod:`~sequencer.dashboard.envelope`: min/max per pixel for millions of points;
- :mod:`~sequencer.dashboard.app`: the Starlette application; ``serve``: uvicorn.

Starlette and uvicorn (the ``dashboard`` extra) are imported by ``app`` and ``serve`` only.
"""
