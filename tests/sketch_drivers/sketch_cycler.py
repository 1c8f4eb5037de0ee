"""A sketch of a new instrument, as its own driver module would declare it: ``sketch.cycler``,
an in-process simulated cycler rated by one option. Nothing else in cellseq names it; the
test that adds this folder to the ``drivers`` package's path shows station validation,
pre-flight and a run on a station of it picking it up. (Not a test module: pytest does not
collect it, and it is imported only as ``drivers.sketch_cycler``.)"""

from __future__ import annotations

from pydantic import Field

from drivers.interfaces import ChannelCapabilities
from drivers.spec import Bench, InstrumentSpec, Options, Setup


class SketchOptions(Options):
    max_current_A: float = Field(default=0.02, gt=0, le=1.0)


def _capabilities(options: SketchOptions) -> ChannelCapabilities:
    return ChannelCapabilities(max_current_A=options.max_current_A, min_voltage_V=0.0,
                               max_voltage_V=5.0,
                               techniques=frozenset({"OpenCircuit", "ConstantCurrent"}))


def _build(setup: Setup, bench: Bench):   # the simulated lab's cycler, rated as configured
    return bench.lab.add_cycler(setup.name, setup.channels, _capabilities(setup.options))


INSTRUMENTS = (InstrumentSpec(name="sketch.cycler", kind="cycler", build=_build,
                              options=SketchOptions, capabilities=_capabilities, simulated=True,
                              description="a sketch of a new instrument"),)
